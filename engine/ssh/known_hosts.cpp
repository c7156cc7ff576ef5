#include "engine/ssh/known_hosts.hpp"

#include <openssl/evp.h>
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

namespace {

// OpenSSL 3 deprecates SHA1_Init and friends for EVP, whose contexts cannot be copied without an
// allocation; a hashed line's check is two of these blocks, for every host of a fan-out.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
void hmac_key(const std::string& salt, SHA_CTX& inner, SHA_CTX& outer) {
  unsigned char key[SHA_CBLOCK] = {0};
  if (salt.size() > SHA_CBLOCK) SHA1(reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), key);
  else std::memcpy(key, salt.data(), salt.size());
  unsigned char ipad[SHA_CBLOCK], opad[SHA_CBLOCK];
  for (size_t i = 0; i < SHA_CBLOCK; ++i) ipad[i] = key[i] ^ 0x36, opad[i] = key[i] ^ 0x5c;
  SHA1_Init(&inner);
  SHA1_Update(&inner, ipad, SHA_CBLOCK);
  SHA1_Init(&outer);
  SHA1_Update(&outer, opad, SHA_CBLOCK);
}

// HMAC-SHA1(salt, name) from the key's two states.
void hmac(const SHA_CTX& inner, const SHA_CTX& outer, const std::string& name, unsigned char out[SHA_DIGEST_LENGTH]) {
  unsigned char mid[SHA_DIGEST_LENGTH];
  SHA_CTX c = inner;
  SHA1_Update(&c, name.data(), name.size());
  SHA1_Final(mid, &c);
  c = outer;
  SHA1_Update(&c, mid, sizeof mid);
  SHA1_Final(out, &c);
}
#pragma GCC diagnostic pop

}  // namespace

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
      if (e.salt.empty() || e.hash.size() != SHA_DIGEST_LENGTH) continue;
      hmac_key(e.salt, e.inner, e.outer);
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
    unsigned char out[SHA_DIGEST_LENGTH];
    hmac(e.inner, e.outer, name, out);
    return std::memcmp(out, e.hash.data(), SHA_DIGEST_LENGTH) == 0;
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

std::vector<uint32_t> KnownHosts::lines_for(const std::string& name) const {
  // A connection asks twice (its preferred key types, then the key presented): matched once.
  std::lock_guard lock(memo_mu_);
  if (auto it = memo_.find(name); it != memo_.end()) return it->second;
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < entries_.size(); ++i)
    if (!entries_[i].revoked && matches(entries_[i], name)) out.push_back(i);
  if (memo_.size() >= kMemo) memo_.clear();
  return memo_[name] = out;
}

std::vector<KnownKey> KnownHosts::keys_for(const std::string& host, int port) const {
  std::vector<KnownKey> out;
  for (uint32_t i : lines_for(known_hosts_name(host, port))) out.push_back(entries_[i].key);
  return out;
}

KeyCheck KnownHosts::check(const std::string& host, int port, const KnownKey& presented) const {
  for (const auto& e : entries_)
    if (e.revoked && e.key.blob == presented.blob) return KeyCheck::revoked;
  bool known = false, same = false;
  for (uint32_t i : lines_for(known_hosts_name(host, port))) {
    const Entry& e = entries_[i];
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
