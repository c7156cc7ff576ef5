#include "engine/tls/served.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>

namespace engine::tls {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

bool is_ip(const std::string& s) {
  boost::system::error_code ec;
  asio::ip::make_address(s, ec);
  return !ec;
}

struct Probe : std::enable_shared_from_this<Probe> {
  asio::io_context& io;
  asio::ssl::context ctx{asio::ssl::context::tls_client};
  tcp::resolver resolver;
  asio::ssl::stream<tcp::socket> stream;
  asio::steady_timer timer;
  std::function<void(Served)> done;
  bool finished = false;

  Probe(asio::io_context& i, std::function<void(Served)> d)
      : io(i), resolver(i), stream(i, ctx), timer(i), done(std::move(d)) {}

  void finish(Served r) {
    if (finished) return;
    finished = true;
    close();
    auto d = std::move(done);
    if (d) d(std::move(r));
  }

  void close() {
    boost::system::error_code ec;
    timer.cancel();
    resolver.cancel();
    stream.lowest_layer().close(ec);
  }

  void fail(const std::string& word, const std::string& message) { finish({{}, word, message}); }

  void take_chain(const boost::system::error_code& ec) {
    Served r;
    if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(stream.native_handle())) {
      for (int i = 0; i < sk_X509_num(chain); ++i) r.chain.push_back(inspect(sk_X509_value(chain, i)));
    }
    ERR_clear_error();
    if (r.chain.empty()) {
      fail("not tls", std::string("no certificate from the server: ") + (ec ? ec.message() : "none sent"));
      return;
    }
    finish(std::move(r));
  }
};

}  // namespace

std::function<void()> served(asio::io_context& io, const std::string& host, uint16_t port, const std::string& server_name,
                             double timeout, std::function<void(Served)> done) {
  auto p = std::make_shared<Probe>(io, std::move(done));
  p->ctx.set_verify_mode(asio::ssl::verify_none);  // we look at what is served; we trust none of it
  std::string sni = server_name.empty() ? host : server_name;
  if (!sni.empty() && !is_ip(sni)) SSL_set_tlsext_host_name(p->stream.native_handle(), sni.c_str());
  p->timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(timeout > 0 ? timeout : 10)));
  p->timer.async_wait([p, host, port](const boost::system::error_code& ec) {
    if (!ec) p->fail("timeout", "no TLS handshake with " + host + ":" + std::to_string(port) + " in time");
  });
  p->resolver.async_resolve(host, std::to_string(port), [p, host](const boost::system::error_code& ec, tcp::resolver::results_type res) {
    if (p->finished) return;
    if (ec) return p->fail("unreachable", "cannot resolve " + host + ": " + ec.message());
    asio::async_connect(p->stream.lowest_layer(), res, [p](const boost::system::error_code& ec, const tcp::endpoint&) {
      if (p->finished) return;
      if (ec == asio::error::connection_refused) return p->fail("refused", "connection refused");
      if (ec) return p->fail("unreachable", ec.message());
      p->stream.async_handshake(asio::ssl::stream_base::client, [p](const boost::system::error_code& ec) {
        if (p->finished) return;
        p->take_chain(ec);
      });
    });
  });
  return [p] {
    p->finished = true;
    p->close();
  };
}

}  // namespace engine::tls
