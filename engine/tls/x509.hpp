// X.509 certificates as runbooks need them: who, for what names, until when, signed by whom,
// parsed by OpenSSL (not by reading `openssl x509 -text` or kubeadm's tables).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

typedef struct x509_st X509;

namespace engine::tls {

struct CertInfo {
  std::string subject, issuer;          // RFC 2253, "CN=kube-apiserver" / "CN=kubernetes"
  std::string common_name;              // the subject's CN, "" when none
  std::vector<std::string> dns_names;   // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries, as text
  std::string serial;                   // lowercase hex, no colons
  int64_t not_before = 0, not_after = 0;  // seconds since the epoch (UTC)
  std::string key_algorithm;            // "RSA 2048", "ECDSA P-256", "Ed25519"
  bool is_ca = false;                   // basicConstraints CA:TRUE
  std::string sha256;                   // the DER's SHA-256 fingerprint, lowercase hex
  std::string pem;
};

CertInfo inspect(X509* cert);

// Every certificate in a PEM text, in order (other PEM blocks, such as keys, are skipped). Throws
// std::invalid_argument when there is none or one is malformed.
std::vector<CertInfo> inspect_pem(std::string_view pem);

// "2026-12-01T08:30:00Z".
std::string rfc3339(int64_t epoch);

}  // namespace engine::tls
