// engine/ssh/known_hosts: hashed lines (|1|salt|hash, what Debian's ssh writes by default) match
// exactly the names OpenSSL's own HMAC-SHA1 says they do, salts of every length included.
#include <openssl/hmac.h>

#include <catch2/catch.hpp>

#include "engine/ssh/known_hosts.hpp"

using engine::ssh::KeyCheck;
using engine::ssh::KnownHosts;
using engine::ssh::KnownKey;

namespace {
std::string hashed_line(const std::string& salt, const std::string& name, const std::string& blob) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), salt.data(), static_cast<int>(salt.size()), reinterpret_cast<const unsigned char*>(name.data()),
       name.size(), out, &len);
  return "|1|" + engine::ssh::base64_encode(reinterpret_cast<const unsigned char*>(salt.data()), salt.size()) + "|" +
         engine::ssh::base64_encode(out, len) + " ssh-ed25519 " + blob + "\n";
}
}  // namespace

TEST_CASE("hashed known_hosts lines match the names their HMAC was made of, and only those") {
  // OpenSSH's salts are 20 bytes; longer than SHA-1's 64-byte block, the key is hashed first.
  for (size_t salt_len : {1, 20, 63, 64, 65, 200}) {
    std::string salt;
    for (size_t i = 0; i < salt_len; ++i) salt += static_cast<char>((i * 37 + salt_len) & 0xff);
    std::string text;
    for (int i = 0; i < 50; ++i) text += hashed_line(salt, "10.0.0." + std::to_string(i), "KEY" + std::to_string(i));
    text += hashed_line(salt, "[node.example]:2222", "PORTKEY");
    auto kh = KnownHosts::parse(text);
    INFO("salt of " << salt_len << " bytes");
    auto k = kh->keys_for("10.0.0.7", 22);
    REQUIRE(k.size() == 1);
    CHECK(k[0].blob == "KEY7");
    CHECK(kh->check("10.0.0.49", 22, {"ssh-ed25519", "KEY49"}) == KeyCheck::match);
    CHECK(kh->check("10.0.0.49", 22, {"ssh-ed25519", "KEY48"}) == KeyCheck::changed);
    CHECK(kh->keys_for("10.0.0.50", 22).empty());
    CHECK(kh->keys_for("10.0.0.7", 2222).empty());  // "[10.0.0.7]:2222" is another name
    CHECK(kh->keys_for("node.example", 2222).size() == 1);
    CHECK(kh->keys_for("node.example", 22).empty());
  }
  // A line whose hash is not SHA-1's length is malformed: skipped, as OpenSSH does.
  auto kh = KnownHosts::parse("|1|c2FsdA==|c2hvcnQ= ssh-ed25519 KEY\n");
  CHECK(kh->keys_for("anything", 22).empty());
}
