// engine/tls: certificates made here by openssl, read back by inspect_pem.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "engine/tls/x509.hpp"
#include "scratch.hpp"

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A CA and a leaf it signed, as kubeadm makes them (ECDSA P-256, SANs).
void make_certs(const std::filesystem::path& d) {
  std::filesystem::create_directories(d);
  std::string cmd = "cd '";
  cmd.append(d.string()).append("'").append(
      " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key"
      " -out ca.crt -days 3650 -subj /CN=kubernetes -addext basicConstraints=critical,CA:TRUE 2>/dev/null"
      " && openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj '/O=system:masters/CN=kube-apiserver' 2>/dev/null"
      " && printf 'subjectAltName=DNS:kubernetes,DNS:kubernetes.default,IP:10.96.0.1,IP:::1\\n' > ext"
      " && openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -set_serial 0x1f2e -days 30 -extfile ext -out leaf.crt 2>/dev/null");
  REQUIRE(std::system(cmd.c_str()) == 0);
}

}  // namespace

TEST_CASE("a leaf certificate: names, SANs, serial, validity, key, not a CA") {
  Scratch dir("engine-tls-test");
  make_certs(dir.path);
  auto certs = engine::tls::inspect_pem(slurp(dir.path / "leaf.crt"));
  REQUIRE(certs.size() == 1);
  const auto& c = certs[0];
  CHECK(c.common_name == "kube-apiserver");
  CHECK(c.subject == "CN=kube-apiserver,O=system:masters");
  CHECK(c.issuer == "CN=kubernetes");
  CHECK(c.dns_names == std::vector<std::string>{"kubernetes", "kubernetes.default"});
  CHECK(c.ip_addresses == std::vector<std::string>{"10.96.0.1", "0:0:0:0:0:0:0:1"});
  CHECK(c.serial == "1f2e");
  CHECK(c.key_algorithm == "RSA 2048");
  CHECK_FALSE(c.is_ca);
  auto now = static_cast<int64_t>(std::time(nullptr));
  CHECK(c.not_after - c.not_before == 30 * 86400);
  CHECK(c.not_before <= now + 5);
  CHECK(c.sha256.size() == 64);
  CHECK(engine::tls::rfc3339(0) == "1970-01-01T00:00:00Z");
}

TEST_CASE("a bundle is read in order, keys skipped; a CA is a CA") {
  Scratch dir("engine-tls-bundle");
  make_certs(dir.path);
  auto pem = slurp(dir.path / "leaf.crt") + slurp(dir.path / "leaf.key") + slurp(dir.path / "ca.crt");
  auto certs = engine::tls::inspect_pem(pem);
  REQUIRE(certs.size() == 2);
  CHECK(certs[0].common_name == "kube-apiserver");
  CHECK(certs[1].common_name == "kubernetes");
  CHECK(certs[1].is_ca);
  CHECK(certs[1].key_algorithm == "ECDSA P-256");
  CHECK(certs[1].subject == certs[1].issuer);
}

TEST_CASE("no certificate, or a broken one, is said so") {
  CHECK_THROWS_WITH(engine::tls::inspect_pem("hello"), "no certificate in the PEM text");
  CHECK_THROWS_WITH(engine::tls::inspect_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
                    "certificate #1 of the PEM is malformed");
}
