#include "engine/ssh/crypto_policy.hpp"

#include <arpa/inet.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/core/seconds.hpp"

namespace engine::ssh {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

const CryptoPolicy& modern_crypto() {
  static const CryptoPolicy p{
      "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
      "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256",
      "aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr",
      "hmac-sha2-256,hmac-sha2-512"};
  return p;
}

namespace {

// libssh2 drops the names it does not know; GCM appears once the library has it.
void prefer(LIBSSH2_SESSION* s, int type, const char* list) { libssh2_session_method_pref(s, type, list); }

}  // namespace

const std::vector<std::string>& host_key_algorithms(LIBSSH2_SESSION* s) {
  static const std::vector<std::string> algs = [s] {
    std::vector<std::string> out;
    const char** list = nullptr;
    int n = libssh2_session_supported_algs(s, LIBSSH2_METHOD_HOSTKEY, &list);
    for (int i = 0; i < n; ++i)
      if (std::strcmp(list[i], "ssh-dss") != 0) out.emplace_back(list[i]);
    if (list) libssh2_free(s, list);
    return out;
  }();
  return algs;
}

void apply_crypto_policy(LIBSSH2_SESSION* s, bool legacy) {
  static const std::string hostkeys = [s] {
    std::string out;
    for (const auto& a : host_key_algorithms(s)) out += (out.empty() ? "" : ",") + a;
    return out;
  }();
  if (!hostkeys.empty()) prefer(s, LIBSSH2_METHOD_HOSTKEY, hostkeys.c_str());
  if (legacy) return;
  const auto& p = modern_crypto();
  prefer(s, LIBSSH2_METHOD_KEX, p.kex);
  prefer(s, LIBSSH2_METHOD_CRYPT_CS, p.ciphers);
  prefer(s, LIBSSH2_METHOD_CRYPT_SC, p.ciphers);
  prefer(s, LIBSSH2_METHOD_MAC_CS, p.macs);
  prefer(s, LIBSSH2_METHOD_MAC_SC, p.macs);
}

namespace {

struct Probe : std::enable_shared_from_this<Probe> {
  explicit Probe(asio::io_context& io) : resolver(io), socket(io), timer(io) {}
  tcp::resolver resolver;
  tcp::socket socket;
  asio::steady_timer timer;
  std::string buf;
  std::function<void(std::string)> done;

  void finish(std::string what) {
    if (!done) return;
    auto d = std::move(done);
    done = nullptr;
    timer.cancel();
    boost::system::error_code ignore;
    socket.close(ignore);
    d(std::move(what));
  }

  // SSH_MSG_KEXINIT: byte 20, 16 bytes of cookie, then name-lists (uint32 length + text).
  void parse(size_t at) {
    std::vector<std::string> lists;
    size_t p = at + 1 + 16;
    for (int i = 0; i < 10 && p + 4 <= buf.size(); ++i) {
      uint32_t n = 0;
      std::memcpy(&n, buf.data() + p, 4);
      n = ntohl(n);
      p += 4;
      if (p + n > buf.size()) break;
      lists.emplace_back(buf.substr(p, n));
      p += n;
    }
    if (lists.size() < 10) return finish("its key exchange message could not be read");
    finish("kex " + lists[0] + "; host keys " + lists[1] + "; ciphers " + lists[2] + "; macs " + lists[4]);
  }

  void read_more() {
    auto self = shared_from_this();
    auto chunk = std::make_shared<std::array<char, 4096>>();
    socket.async_read_some(asio::buffer(*chunk), [self, chunk](const boost::system::error_code& ec, size_t n) {
      if (ec) return self->finish("it closed the connection before its key exchange message (" + ec.message() + ")");
      self->buf.append(chunk->data(), n);
      // The identification line first ("SSH-2.0-...\r\n"), then the first binary packet.
      size_t eol = self->buf.find("\n");
      if (eol != std::string::npos && self->buf.size() >= eol + 1 + 6) {
        size_t pkt = eol + 1;
        uint32_t len = 0;
        std::memcpy(&len, self->buf.data() + pkt, 4);
        len = ntohl(len);
        if (len > 256 * 1024) return self->finish("its first packet is not a key exchange message");
        if (self->buf.size() >= pkt + 4 + len) {
          if (static_cast<unsigned char>(self->buf[pkt + 5]) != 20) return self->finish("its first packet is not a key exchange message");
          return self->parse(pkt + 5);
        }
      }
      if (self->buf.size() > 512 * 1024) return self->finish("it sent no key exchange message");
      self->read_more();
    });
  }
};

}  // namespace

void probe_server_offer(asio::io_context& io, const std::string& host, int port, double timeout,
                        std::function<void(std::string)> done) {
  auto p = std::make_shared<Probe>(io);
  p->done = std::move(done);
  p->timer.expires_after(steady_seconds(timeout));
  p->timer.async_wait([p](const boost::system::error_code& ec) {
    if (!ec) p->finish("it did not show its offer in time");
  });
  p->resolver.async_resolve(host, std::to_string(port), [p](const boost::system::error_code& ec, tcp::resolver::results_type rs) {
    if (ec) return p->finish("resolve: " + ec.message());
    asio::async_connect(p->socket, rs, [p](const boost::system::error_code& ec, const tcp::endpoint&) {
      if (ec) return p->finish("connect: " + ec.message());
      auto hello = std::make_shared<std::string>("SSH-2.0-engine_probe\r\n");
      asio::async_write(p->socket, asio::buffer(*hello), [p, hello](const boost::system::error_code& ec, size_t) {
        if (ec) return p->finish("write: " + ec.message());
        p->read_more();
      });
    });
  });
}

}  // namespace engine::ssh
