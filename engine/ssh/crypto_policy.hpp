// What SSH cryptography the engine offers and accepts: what OpenSSH 9 offers by default that
// libssh2 can do. No CBC ciphers, no SHA-1 key exchange, no MD5/SHA-1 MACs, no arcfour, blowfish
// or ssh-dss. A host whose inventory sets engine_ssh_legacy_crypto=true gets libssh2's full list,
// with a warning on every connection. With CTR ciphers and non-EtM MACs the Terrapin prefix
// truncation (CVE-2023-48795, which needs ChaCha20-Poly1305 or an EtM MAC) does not apply.
#pragma once
#include <libssh2.h>

#include <boost/asio/io_context.hpp>
#include <functional>
#include <string>
#include <vector>

namespace engine::ssh {

struct CryptoPolicy {
  const char* kex;
  const char* ciphers;
  const char* macs;
};
const CryptoPolicy& modern_crypto();

// The host key algorithms this libssh2 offers, ssh-dss left out: the same for every session of a
// libssh2 build, listed once (the first session asked is only used to ask).
const std::vector<std::string>& host_key_algorithms(LIBSSH2_SESSION* s);

// Sets the method preferences on a session before its handshake (legacy: libssh2's defaults but ssh-dss).
void apply_crypto_policy(LIBSSH2_SESSION* s, bool legacy);

// After a handshake that found nothing in common: connects to host:port again, reads the server's
// first key-exchange message and calls done with what it offers ("kex: a,b; ciphers: ...; macs: ..."),
// or with why it could not tell. Bounded by `timeout` seconds; runs on the loop, never blocks it.
void probe_server_offer(boost::asio::io_context& io, const std::string& host, int port, double timeout,
                        std::function<void(std::string)> done);

}  // namespace engine::ssh
