#include "engine/ssh/known_hosts.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "engine/core/text.hpp"

namespace engine::ssh {

std::string base64_encode(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
  out.resize(n);
  return out;
}

std::string base64_decode(const std::string& text) {
  if (text.empty() || text.size() % 4 != 0) return {};
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return {};
  size_t pad = (text.size() >= 1 && text.back() == '=') + (text.size() >= 2 && text[text.size() - 2] == '=');
  out.resize(n - pad);
  return out;
}

std::string known_hosts_name(const std::string& host, int port) {
  return port == 22 || port == 0 ? host : "[" + host + "]:" + std::to_string(port);
}

std::shared_ptr<const KnownHosts> KnownHosts::parse(const std::string& text) {
  auto kh = std::make_shared<KnownHosts>();
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string first;
    if (!(ls >> first) || first[0] == '#') continue;
    Entry e;
    if (first[0] == '@') {
      if (first == "@revoked") e.revoked = true;
      else continue;  // @cert-authority: certificates are not supported; such lines do not vouch for keys
      if (!(ls >> first)) continue;
    }
    if (!(ls >> e.key.type >> e.key.blob)) continue;
    if (text::starts_with(first, "|1|")) {
      auto parts = text::split(first.substr(3), '|');
      if (parts.size() != 2) continue;
      e.hashed = true;
      e.salt = base64_decode(parts[0]);
      e.hash = base64_decode(parts[1]);
      if (e.salt.empty() || e.hash.empty()) continue;
    } else {
      e.patterns = text::split(first, ',');
    }
    kh->entries_.push_back(std::move(e));
  }
  return kh;
}

std::shared_ptr<const KnownHosts> KnownHosts::load(const std::string& path) {
  // Parsed once per file version: a fan-out to 1,000 hosts reads it once, not 1,000 times.
  static std::mutex mu;
  static std::map<std::string, std::pair<std::pair<time_t, long>, std::shared_ptr<const KnownHosts>>> cache;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::make_shared<KnownHosts>();
  std::lock_guard lock(mu);
  auto stamp = std::make_pair(st.st_mtim.tv_sec, st.st_mtim.tv_nsec ^ st.st_size);
  auto it = cache.find(path);
  if (it != cache.end() && it->second.first == stamp) return it->second.second;
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  auto kh = parse(ss.str());
  cache[path] = {stamp, kh};
  return kh;
}

bool KnownHosts::matches(const Entry& e, const std::string& name) const {
  if (e.hashed) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha1(), e.salt.data(), static_cast<int>(e.salt.size()), reinterpret_cast<const unsigned char*>(name.data()),
         name.size(), out, &len);
    return len == e.hash.size() && std::memcmp(out, e.hash.data(), len) == 0;
  }
  bool hit = false;
  for (const auto& p : e.patterns) {
    if (!p.empty() && p[0] == '!') {
      if (text::glob_match(p.substr(1), name, false)) return false;  // a negated match vetoes the line
    } else if (text::glob_match(p, name, false)) {
      hit = true;
    }
  }
  return hit;
}

std::vector<KnownKey> KnownHosts::keys_for(const std::string& host, int port) const {
  std::vector<KnownKey> out;
  std::string name = known_hosts_name(host, port);
  for (const auto& e : entries_)
    if (!e.revoked && matches(e, name)) out.push_back(e.key);
  return out;
}

KeyCheck KnownHosts::check(const std::string& host, int port, const KnownKey& presented) const {
  std::string name = known_hosts_name(host, port);
  bool known = false, same = false;
  for (const auto& e : entries_) {
    if (e.revoked) {
      if (e.key.blob == presented.blob) return KeyCheck::revoked;
      continue;
    }
    if (!matches(e, name)) continue;
    known = true;
    if (e.key.type == presented.type && e.key.blob == presented.blob) same = true;
  }
  if (same) return KeyCheck::match;
  // Any recorded key for the host, of whatever type, makes a different key a change: a new key
  // type appearing is exactly what a man in the middle would present.
  return known ? KeyCheck::changed : KeyCheck::unknown;
}

std::string KnownHosts::line_for(const std::string& host, int port, const KnownKey& key) {
  return known_hosts_name(host, port) + " " + key.type + " " + key.blob;
}

void KnownHosts::append(const std::string& path, const std::string& line) {
  std::ofstream f(path, std::ios::app);
  if (!f) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  f << line << "\n";
  f.flush();
  if (!f) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  ::chmod(path.c_str(), 0600);
}

}  // namespace engine::ssh
