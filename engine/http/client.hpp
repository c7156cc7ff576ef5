// The project's one HTTP client: libcurl's multi interface driven by Boost.Asio (curl tells us which
// sockets to watch and when to wake; asio does the waiting). HTTP/1.1 and HTTP/2, TLS with
// certificates and keys as files or held in memory (never written to disk), bearer tokens,
// streamed bodies, timeouts, retries on 429 and 5xx that honour Retry-After with capped backoff,
// a client-side rate limit, and at most 32 connections per host (HTTP/2 multiplexes over one).
// The Kubernetes API, etcd, Pushgateway and Prometheus all use it.
#pragma once
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace engine::http {

struct Tls {
  std::string ca_file, ca_data;      // PEM; data wins over file
  std::string cert_file, cert_data;  // client certificate
  std::string key_file, key_data;    // client key: data stays in memory
  bool insecure = false;             // no verification at all (kubeconfig insecure-skip-tls-verify)
  // The name the server's certificate is checked against (and sent as SNI) when it differs from
  // the URL's host: the API reached through a tunnel on 127.0.0.1 still presents a certificate for
  // "kubernetes" (kubeconfig tls-server-name).
  std::string server_name;
};

struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string bearer;
  std::string proxy;  // a proxy URL (kubeconfig proxy-url); "": libcurl's own *_proxy environment
  Tls tls;
  double timeout = 30;  // seconds for the whole exchange; 0: none (watches)
  // Seconds without a byte received (or sent) before the exchange is given up as "timeout": a peer
  // that stalls mid-body (a snapshot stream stopped half way) ends here even without a total
  // timeout. 0: none (watches, and calls whose server answers only when done, e.g. defragment).
  double idle_timeout = 60;
  // Streamed bodies: called with each chunk as it arrives instead of collecting it; return false
  // to stop the transfer.
  std::function<bool(std::string_view)> on_data;
  // Retries on 429 and on 502/503/504 (or any 5xx carrying Retry-After), honouring Retry-After,
  // with capped exponential backoff. Connection failures are retried for GET/HEAD/PUT/DELETE only,
  // except a certificate's (Response::certificate).
  int max_retries = 5;
  // false: sent at once, past the client-side rate limit (Options). For requests whose lateness
  // costs more than their load: a lease's renewal queued behind a burst of the runbook's own calls
  // would lose the lease; a journal record is waited for, as an fsync is.
  bool rate_limited = true;
  // false: the connection is closed once the exchange ends instead of kept for the next one. For
  // servers this engine restarts: an idle HTTP/2 connection (libcurl reads none while no exchange
  // runs on it) leaves a Go server's GOAWAY unread, and the server's shutdown waits a second for
  // it (x/net/http2's goAwayTimeout): every etcd member a runbook restarts stopped a second later.
  bool keep_alive = true;
};

struct Response {
  long status = 0;  // 0: no HTTP answer; see error
  std::string body;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string error;    // "" or what went wrong below HTTP
  bool timed_out = false;
  // A certificate stopped the TLS handshake: the server's was not trusted, or the server refused
  // ours (expired, unknown CA). Not retried, since asking again gets the same answer; `error`
  // then says whose certificate it was.
  bool certificate = false;
  int attempts = 0;
};

struct Options {
  double qps = 50;    // sustained requests per second
  double burst = 100; // requests that may go at once
};

class Client {
 public:
  Client(boost::asio::io_context& io, Options opts = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends the request (after the rate limit and between retries); `done` runs once, on the loop.
  // Returns a function that cancels it (done then gets error "cancelled").
  std::function<void()> send(Request req, std::function<void(Response)> done);

  uint64_t requests_sent() const { return sent_; }
  size_t in_flight() const;

  // What the client-side rate limit held back so far: how many requests waited, for how long in all.
  struct Throttled {
    size_t requests = 0;
    double seconds = 0;
  };
  Throttled throttled() const;
  const Options& options() const;
  // From now on requests go at once, and those waiting for a token go now: the server limits its
  // clients itself (the Kubernetes API's Priority and Fairness, k8s::Api).
  void stop_limiting();
  bool limiting() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t sent_ = 0;
  friend struct Impl;
};

// Parses Retry-After (seconds; an HTTP date is treated as 1 s). Returns a negative value if absent.
double retry_after(const Response& r);

}  // namespace engine::http
