#include "engine/ssh/keys.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "engine/ssh/agent.hpp"
#include "engine/ssh/known_hosts.hpp"
#include "engine/ssh/wire.hpp"

namespace engine::ssh {

namespace {

using Bn = std::unique_ptr<BIGNUM, decltype(&BN_clear_free)>;

Bn bn(const std::string& mpint) {
  return Bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(mpint.data()), static_cast<int>(mpint.size()), nullptr),
            BN_clear_free);
}

// An SSH mpint: big-endian, with a leading zero byte when the top bit is set (it is positive).
std::string mpint(const BIGNUM* v) {
  std::string out(static_cast<size_t>(BN_num_bytes(v)), '\0');
  BN_bn2bin(v, reinterpret_cast<unsigned char*>(out.data()));
  if (!out.empty() && (static_cast<unsigned char>(out[0]) & 0x80)) out.insert(out.begin(), '\0');
  return out;
}

std::string rsa_blob(const BIGNUM* n, const BIGNUM* e) {
  std::string blob;
  wire::put_str(blob, "ssh-rsa");
  wire::put_str(blob, mpint(e));
  wire::put_str(blob, mpint(n));
  return blob;
}

// An RSA EVP_PKEY from OpenSSH's private fields, with the CRT exponents OpenSSH does not store (a
// signature without them is several times slower).
EVP_PKEY* rsa_from_parts(const std::string& n_, const std::string& e_, const std::string& d_, const std::string& iqmp_,
                         const std::string& p_, const std::string& q_) {
  Bn n = bn(n_), e = bn(e_), d = bn(d_), iqmp = bn(iqmp_), p = bn(p_), q = bn(q_);
  Bn dmp1(BN_new(), BN_clear_free), dmq1(BN_new(), BN_clear_free), t(BN_new(), BN_clear_free);
  BN_CTX* ctx = BN_CTX_new();
  bool ok = n && e && d && iqmp && p && q && dmp1 && dmq1 && t && ctx && BN_sub(t.get(), p.get(), BN_value_one()) &&
            BN_mod(dmp1.get(), d.get(), t.get(), ctx) && BN_sub(t.get(), q.get(), BN_value_one()) &&
            BN_mod(dmq1.get(), d.get(), t.get(), ctx);
  BN_CTX_free(ctx);
  if (!ok) return nullptr;
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  EVP_PKEY* pkey = nullptr;
  EVP_PKEY_CTX* pctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  if (bld && pctx && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n.get()) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e.get()) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d.get()) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p.get()) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q.get()) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dmp1.get()) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dmq1.get()) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, iqmp.get()) &&
      (params = OSSL_PARAM_BLD_to_param(bld)) != nullptr && EVP_PKEY_fromdata_init(pctx) == 1) {
    if (EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1) pkey = nullptr;
  }
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  EVP_PKEY_CTX_free(pctx);
  return pkey;
}

std::shared_ptr<const LoadedKey> parse_openssh(const std::string& text) {
  const std::string begin = "-----BEGIN OPENSSH PRIVATE KEY-----", end = "-----END OPENSSH PRIVATE KEY-----";
  auto b = text.find(begin), e = text.find(end);
  if (b == std::string::npos || e == std::string::npos) return nullptr;
  std::string body;
  for (char c : text.substr(b + begin.size(), e - b - begin.size()))
    if (!std::isspace(static_cast<unsigned char>(c))) body += c;
  std::string raw = base64_decode(body);
  static const char magic[] = "openssh-key-v1";
  if (raw.size() < sizeof magic || std::memcmp(raw.data(), magic, sizeof magic) != 0) return nullptr;
  wire::Reader r{raw, sizeof magic};
  std::string cipher = r.str(), kdf = r.str();
  r.str();  // kdf options
  uint32_t nkeys = r.u32();
  if (!r.ok || cipher != "none" || kdf != "none" || nkeys != 1) return nullptr;  // encrypted: libssh2's loader
  std::string pub = r.str();
  std::string priv = r.str();
  if (!r.ok) return nullptr;
  wire::Reader p{priv};
  uint32_t c1 = p.u32(), c2 = p.u32();
  std::string type = p.str();
  if (!p.ok || c1 != c2) return nullptr;
  auto key = std::make_shared<LoadedKey>();
  key->public_blob = pub;
  if (type == "ssh-ed25519") {
    std::string pk = p.str(), sk = p.str();
    if (!p.ok || pk.size() != 32 || sk.size() != 64) return nullptr;
    key->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(sk.data()), 32);
  } else if (type == "ssh-rsa") {
    std::string n = p.str(), e_ = p.str(), d = p.str(), iqmp = p.str(), pp = p.str(), q = p.str();
    if (!p.ok) return nullptr;
    key->rsa = true;
    key->pkey = rsa_from_parts(n, e_, d, iqmp, pp, q);
  }
  if (!key->pkey) return nullptr;
  return key;
}

// PEM (PKCS#1 "RSA PRIVATE KEY", PKCS#8, encrypted or not): OpenSSL reads it; only RSA is kept here.
std::shared_ptr<const LoadedKey> parse_pem_rsa(const std::string& text, const std::string& passphrase) {
  if (text.find("-----BEGIN RSA PRIVATE KEY-----") == std::string::npos &&
      text.find("-----BEGIN PRIVATE KEY-----") == std::string::npos &&
      text.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") == std::string::npos)
    return nullptr;
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  if (!bio) return nullptr;
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, const_cast<char*>(passphrase.c_str()));
  BIO_free(bio);
  if (!pkey) return nullptr;
  auto key = std::make_shared<LoadedKey>();
  key->pkey = pkey;
  if (!EVP_PKEY_is_a(pkey, "RSA")) return nullptr;  // ECDSA in PEM: libssh2 signs those correctly
  BIGNUM *n = nullptr, *e = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) == 1 && EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1) {
    key->public_blob = rsa_blob(n, e);
    key->rsa = true;
  }
  BN_free(n);
  BN_free(e);
  return key->rsa ? key : nullptr;
}

const EVP_MD* digest_for(const std::string& algorithm) {
  if (algorithm == "rsa-sha2-512") return EVP_sha512();
  if (algorithm == "rsa-sha2-256") return EVP_sha256();
  if (algorithm == "ssh-rsa") return EVP_sha1();
  return nullptr;  // ed25519 hashes internally
}

}  // namespace

LoadedKey::~LoadedKey() {
  if (pkey) EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey));
}

std::vector<std::string> signature_algorithms(const std::string& key_type) {
  if (key_type == "ssh-rsa") return {"rsa-sha2-512", "ssh-rsa"};
  return {key_type};
}

std::string blob_type(const std::string& public_blob) {
  wire::Reader r{public_blob};
  std::string t = r.str();
  return r.ok ? t : std::string();
}

std::string blob_for(const std::string& public_blob, const std::string& algorithm) {
  std::string type = blob_type(public_blob);
  if (type.empty() || type == algorithm) return public_blob;
  std::string out;
  wire::put_str(out, algorithm);
  out += public_blob.substr(4 + type.size());
  return out;
}

std::shared_ptr<const LoadedKey> load_fast_key(const std::string& path, const std::string& passphrase) {
  static std::mutex mu;
  static std::map<std::pair<std::string, std::string>, std::shared_ptr<const LoadedKey>> cache;
  std::lock_guard lock(mu);
  auto at = std::make_pair(path, passphrase);
  if (auto it = cache.find(at); it != cache.end()) return it->second;
  std::ifstream f(path);
  if (!f) return nullptr;
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  auto key = parse_openssh(text);
  if (!key) key = parse_pem_rsa(text, passphrase);
  cache[at] = key;
  return key;
}

int sign_with(void* session, unsigned char** sig, size_t* sig_len, const unsigned char* data, size_t data_len,
              void** abstract) {
  (void)session;
  auto* s = static_cast<Signer*>(*abstract);
  std::string out;
  if (!s->agent_socket.empty()) {
    uint32_t flags = s->algorithm == "rsa-sha2-512" ? kAgentRsaSha2_512 : s->algorithm == "rsa-sha2-256" ? kAgentRsaSha2_256 : 0;
    auto r = agent_sign(s->agent_socket, s->agent_blob, std::string(reinterpret_cast<const char*>(data), data_len), flags,
                        &s->error);
    if (!r) return -1;
    out = std::move(*r);
  } else {
    auto* pkey = static_cast<EVP_PKEY*>(s->key->pkey);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = static_cast<size_t>(EVP_PKEY_get_size(pkey));
    out.resize(len);
    bool ok = ctx && EVP_DigestSignInit(ctx, nullptr, digest_for(s->algorithm), nullptr, pkey) == 1 &&
              EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(out.data()), &len, data, data_len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) return s->error = "signing failed", -1;
    out.resize(len);
  }
  // libssh2 frees the signature with its allocator, which is malloc/free for our sessions.
  auto* buf = static_cast<unsigned char*>(std::malloc(out.size()));
  if (!buf) return -1;
  std::memcpy(buf, out.data(), out.size());
  *sig = buf;
  *sig_len = out.size();
  return 0;
}

}  // namespace engine::ssh
