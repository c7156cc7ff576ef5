#include "engine/tls/x509.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <stdexcept>

namespace engine::tls {

namespace {

std::string name_text(const X509_NAME* name) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

int64_t epoch_of(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += digits[p[i] >> 4], out += digits[p[i] & 15];
  return out;
}

std::string key_algorithm(X509* cert) {
  EVP_PKEY* key = X509_get0_pubkey(cert);
  if (!key) return "unknown";
  int bits = EVP_PKEY_get_bits(key);
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA: return "RSA " + std::to_string(bits);
    case EVP_PKEY_ED25519: return "Ed25519";
    case EVP_PKEY_EC: {
      char curve[64] = {0};
      size_t len = 0;
      std::string name = EVP_PKEY_get_utf8_string_param(key, "group", curve, sizeof curve, &len) ? curve : "";
      if (name == "prime256v1") name = "P-256";
      else if (name == "secp384r1") name = "P-384";
      else if (name == "secp521r1") name = "P-521";
      return "ECDSA " + (name.empty() ? std::to_string(bits) : name);
    }
    default: return OBJ_nid2sn(EVP_PKEY_get_base_id(key));
  }
}

}  // namespace

CertInfo inspect(X509* cert) {
  CertInfo c;
  c.subject = name_text(X509_get_subject_name(cert));
  c.issuer = name_text(X509_get_issuer_name(cert));
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) c.common_name = cn;
  if (auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      if (g->type == GEN_DNS) {
        c.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                                 static_cast<size_t>(ASN1_STRING_length(g->d.dNSName)));
      } else if (g->type == GEN_IPADD) {
        const unsigned char* p = ASN1_STRING_get0_data(g->d.iPAddress);
        int n = ASN1_STRING_length(g->d.iPAddress);
        char buf[64] = {0};
        if (n == 4) {
          std::snprintf(buf, sizeof buf, "%d.%d.%d.%d", p[0], p[1], p[2], p[3]);
        } else if (n == 16) {
          std::string out;
          for (int k = 0; k < 16; k += 2) {
            char part[8];
            std::snprintf(part, sizeof part, "%x", (p[k] << 8) | p[k + 1]);
            if (k) out += ':';
            out.append(part);
          }
          std::snprintf(buf, sizeof buf, "%s", out.c_str());
        }
        c.ip_addresses.emplace_back(buf);
      }
    }
    GENERAL_NAMES_free(sans);
  }
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    char* h = BN_bn2hex(bn);
    c.serial = h;
    for (auto& ch : c.serial) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    OPENSSL_free(h);
    BN_free(bn);
  }
  c.not_before = epoch_of(X509_get0_notBefore(cert));
  c.not_after = epoch_of(X509_get0_notAfter(cert));
  c.key_algorithm = key_algorithm(cert);
  c.is_ca = X509_check_ca(cert) > 0 && (X509_get_extension_flags(cert) & EXFLAG_CA);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (X509_digest(cert, EVP_sha256(), md, &mdlen) == 1) c.sha256 = hex(md, mdlen);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  c.pem.assign(data, static_cast<size_t>(n));
  return c;
}

std::vector<CertInfo> inspect_pem(std::string_view pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::vector<CertInfo> out;
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
      ERR_clear_error();
      break;
    }
    std::string kind = name;
    if (kind == "CERTIFICATE" || kind == "TRUSTED CERTIFICATE" || kind == "X509 CERTIFICATE") {
      const unsigned char* p = data;
      X509* cert = d2i_X509(nullptr, &p, len);
      if (!cert) {
        OPENSSL_free(name), OPENSSL_free(header), OPENSSL_free(data);
        ERR_clear_error();
        throw std::invalid_argument("certificate #" + std::to_string(out.size() + 1) + " of the PEM is malformed");
      }
      out.push_back(inspect(cert));
      X509_free(cert);
    }
    OPENSSL_free(name), OPENSSL_free(header), OPENSSL_free(data);
  }
  if (out.empty()) throw std::invalid_argument("no certificate in the PEM text");
  return out;
}

std::string rfc3339(int64_t epoch) {
  std::time_t t = static_cast<std::time_t>(epoch);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace engine::tls
