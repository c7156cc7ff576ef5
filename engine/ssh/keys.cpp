#include "engine/ssh/keys.hpp"

#include <libssh2.h>
#include <openssl/evp.h>

#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "engine/ssh/known_hosts.hpp"

namespace engine::ssh {

namespace {

// Reads SSH wire strings and integers out of a buffer; any overrun makes ok false.
struct Reader {
  const std::string& b;
  size_t pos = 0;
  bool ok = true;
  uint32_t u32() {
    if (pos + 4 > b.size()) return ok = false, 0;
    auto p = reinterpret_cast<const unsigned char*>(b.data() + pos);
    pos += 4;
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
  }
  std::string str() {
    uint32_t n = u32();
    if (!ok || pos + n > b.size()) return ok = false, std::string();
    std::string s = b.substr(pos, n);
    pos += n;
    return s;
  }
};

std::shared_ptr<const LoadedKey> parse(const std::string& text) {
  const std::string begin = "-----BEGIN OPENSSH PRIVATE KEY-----", end = "-----END OPENSSH PRIVATE KEY-----";
  auto b = text.find(begin), e = text.find(end);
  if (b == std::string::npos || e == std::string::npos) return nullptr;
  std::string body;
  for (char c : text.substr(b + begin.size(), e - b - begin.size()))
    if (!std::isspace(static_cast<unsigned char>(c))) body += c;
  std::string raw = base64_decode(body);
  static const char magic[] = "openssh-key-v1";
  if (raw.size() < sizeof magic || std::memcmp(raw.data(), magic, sizeof magic) != 0) return nullptr;
  Reader r{raw, sizeof magic};
  std::string cipher = r.str(), kdf = r.str();
  r.str();  // kdf options
  uint32_t nkeys = r.u32();
  if (!r.ok || cipher != "none" || kdf != "none" || nkeys != 1) return nullptr;  // encrypted: libssh2's loader
  std::string pub = r.str();
  std::string priv = r.str();
  if (!r.ok) return nullptr;
  Reader p{priv};
  uint32_t c1 = p.u32(), c2 = p.u32();
  std::string type = p.str();
  if (!p.ok || c1 != c2 || type != "ssh-ed25519") return nullptr;
  std::string pk = p.str(), sk = p.str();
  if (!p.ok || pk.size() != 32 || sk.size() != 64) return nullptr;
  auto key = std::make_shared<LoadedKey>();
  key->public_blob = pub;
  key->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(sk.data()), 32);
  if (!key->pkey) return nullptr;
  return key;
}

}  // namespace

LoadedKey::~LoadedKey() {
  if (pkey) EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey));
}

std::shared_ptr<const LoadedKey> load_fast_key(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const LoadedKey>> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(path); it != cache.end()) return it->second;
  std::ifstream f(path);
  if (!f) return nullptr;
  std::stringstream ss;
  ss << f.rdbuf();
  auto key = parse(ss.str());
  cache[path] = key;
  return key;
}

int sign_with_loaded_key(void* session, unsigned char** sig, size_t* sig_len, const unsigned char* data,
                         size_t data_len, void** abstract) {
  auto* key = static_cast<const LoadedKey*>(*abstract);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 64;
  // libssh2 frees the signature with its allocator, which is malloc/free for our sessions.
  auto* out = static_cast<unsigned char*>(std::malloc(len));
  bool ok = ctx && out && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key->pkey)) == 1 &&
            EVP_DigestSign(ctx, out, &len, data, data_len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    std::free(out);
    return -1;
  }
  *sig = out;
  *sig_len = len;
  (void)session;
  return 0;
}

}  // namespace engine::ssh
