#include "engine/http/client.hpp"
#include "engine/core/seconds.hpp"
#include "engine/http/curl_loader.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <cmath>
#include <mutex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace engine::http {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;


double retry_after(const Response& r) {
  auto it = r.headers.find("retry-after");
  if (it == r.headers.end()) return -1;
  try {
    return std::max(0.0, std::stod(it->second));
  } catch (...) {
    return 1;  // an HTTP date: wait a moment rather than parse calendars
  }
}

struct Transfer {
  uint64_t id;
  Request req;
  std::function<void(Response)> done;
  Response resp;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  curl_slist* connect_to = nullptr;  // Tls::server_name: the URL names it, the socket goes to the URL's host
  std::string header_line;
  bool cancelled = false, stopped_by_reader = false;
  int attempts = 0;
  Clock::time_point queued;  // when it began to wait for the rate limit
  char errbuf[CURL_ERROR_SIZE] = {0};
  std::string url;  // the URL curl was given, when it differs from req.url
};

struct Socket {
  asio::posix::stream_descriptor sd;
  int what = 0;  // CURL_POLL_*
  bool reading = false, writing = false;
  explicit Socket(asio::io_context& io, int fd) : sd(io, fd) {}
};

struct Client::Impl {
  Client& owner;
  asio::io_context& io;
  Options opts;
  CURLM* multi = nullptr;
  asio::steady_timer timer;
  std::map<curl_socket_t, std::unique_ptr<Socket>> sockets;
  std::map<uint64_t, std::shared_ptr<Transfer>> active;
  uint64_t next_id = 1;
  // Token bucket.
  double tokens;
  Clock::time_point refilled = Clock::now();
  std::vector<std::shared_ptr<Transfer>> waiting;  // for a token
  asio::steady_timer token_timer;
  bool token_timer_armed = false;
  Client::Throttled throttled;
  bool unlimited = false;  // stop_limiting()
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  Impl(Client& c, asio::io_context& io_, Options o)
      : owner(c), io(io_), opts(o), timer(io_), tokens(o.burst), token_timer(io_) {
    load_curl();  // opened at the first client (throws, saying what is missing, when it cannot be)
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
    // A drain evicts every pod at once: over HTTP/1.1 that would be one TLS handshake per pod.
    // Requests beyond the cap wait inside curl for a connection; HTTP/2 multiplexes over one.
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 32L);
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  }

  ~Impl() {
    *alive = false;
    for (auto& [_, t] : active) {
      curl_multi_remove_handle(multi, t->easy);
      cleanup(*t);
    }
    for (auto& [_, s] : sockets) {
      boost::system::error_code ec;
      s->sd.cancel(ec);
      s->sd.release();  // curl owns and closes its sockets
    }
    curl_multi_cleanup(multi);
  }

  static void cleanup(Transfer& t) {
    if (t.easy) curl_easy_cleanup(t.easy);
    if (t.headers) curl_slist_free_all(t.headers);
    if (t.connect_to) curl_slist_free_all(t.connect_to);
    t.easy = nullptr;
    t.headers = nullptr;
    t.connect_to = nullptr;
  }

  static bool debugging() {
    static const bool on = std::getenv("ENGINE_HTTP_DEBUG") != nullptr;
    return on;
  }

  // --- rate limit -------------------------------------------------------------------------
  void refill() {
    auto now = Clock::now();
    double dt = std::chrono::duration<double>(now - refilled).count();
    tokens = std::min(opts.burst, tokens + dt * opts.qps);
    refilled = now;
  }

  void admit(std::shared_ptr<Transfer> t) {
    if (!t->req.rate_limited || unlimited) return start(t);
    t->queued = Clock::now();
    Transfer* fresh = t.get();
    waiting.push_back(std::move(t));
    drain_waiting(fresh);
  }

  // fresh: the request just queued, which goes now if a token is there without having waited.
  void drain_waiting(const Transfer* fresh = nullptr) {
    refill();
    while (!waiting.empty() && (tokens >= 1 || unlimited)) {
      auto t = waiting.front();
      waiting.erase(waiting.begin());
      if (t->cancelled) continue;  // gone while it waited: it takes no token
      tokens -= 1;
      if (t.get() != fresh) {  // it waited for a token
        ++throttled.requests;
        throttled.seconds += std::chrono::duration<double>(refilled - t->queued).count();
      }
      start(t);
    }
    if (!waiting.empty() && !token_timer_armed) {
      token_timer_armed = true;
      if (debugging())  // why a run's API calls slowed down
        std::fprintf(stderr, "* client-side rate limit (qps %g, burst %g): %zu waiting\n", opts.qps, opts.burst,
                     waiting.size());
      token_timer.expires_after(steady_seconds((1 - tokens) / opts.qps));
      std::weak_ptr<bool> a = alive;
      token_timer.async_wait([this, a](const boost::system::error_code& ec) {
        if (ec || a.expired()) return;
        token_timer_armed = false;
        drain_waiting();
      });
    }
  }

  // --- one attempt ------------------------------------------------------------------------
  // ENGINE_HTTP_DEBUG's trace: curl's verbose lines, with credentials (Authorization and
  // Proxy-Authorization headers, cookies, user:password in URLs) replaced by <redacted>, and bodies
  // shown by their size only.
  static int debug_trace(CURL*, curl_infotype type, char* data, size_t size, void*) {
    static const char* const kPrefix[] = {"* ", "< ", "> ", "", "", "", ""};
    if (type == CURLINFO_DATA_IN || type == CURLINFO_DATA_OUT) {
      std::fprintf(stderr, "%s %zu bytes of body\n", type == CURLINFO_DATA_IN ? "<=" : "=>", size);
      return 0;
    }
    if (type != CURLINFO_TEXT && type != CURLINFO_HEADER_IN && type != CURLINFO_HEADER_OUT) return 0;
    std::string text(data, size);
    std::string out;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      std::string line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      pos = end == std::string::npos ? text.size() : end + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      std::string lower = line;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      for (const char* h : {"authorization:", "proxy-authorization:", "cookie:", "set-cookie:"}) {
        if (lower.rfind(h, 0) == 0) line = line.substr(0, std::strlen(h)) + " <redacted>";
      }
      // scheme://user:password@host
      if (auto at = line.find('@'), scheme = line.find("://"); scheme != std::string::npos && at != std::string::npos &&
                                                                 at > scheme && line.find('/', scheme + 3) > at)
        line = line.substr(0, scheme + 3) + "<redacted>" + line.substr(at);
      if (!line.empty()) out += std::string(kPrefix[type]) + line + "\n";
    }
    std::fputs(out.c_str(), stderr);
    return 0;
  }

  static size_t on_body(char* p, size_t size, size_t n, void* ud) {
    auto* t = static_cast<Transfer*>(ud);
    size_t len = size * n;
    if (t->req.on_data && t->resp.status == 0) {
      long code = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
      t->resp.status = code;
    }
    // Stream only a successful body; an error body is kept for the message.
    if (t->req.on_data && t->resp.status >= 200 && t->resp.status < 300) {
      if (!t->req.on_data(std::string_view(p, len))) {
        t->stopped_by_reader = true;
        return 0;
      }
      return len;
    }
    t->resp.body.append(p, len);
    return len;
  }

  static size_t on_header(char* p, size_t size, size_t n, void* ud) {
    auto* t = static_cast<Transfer*>(ud);
    std::string line(p, size * n);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      std::string value = line.substr(colon + 1);
      while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
      size_t b = value.find_first_not_of(' ');
      t->resp.headers[name] = b == std::string::npos ? "" : value.substr(b);
    } else if (line.rfind("HTTP/", 0) == 0) {
      t->resp.headers.clear();  // a new response (after 100-continue or a redirect)
    }
    return size * n;
  }

  static void blob(CURL* e, CURLoption opt, const std::string& data) {
    curl_blob b{const_cast<char*>(data.data()), data.size(), CURL_BLOB_COPY};
    curl_easy_setopt(e, opt, &b);
  }

  void start(std::shared_ptr<Transfer> t) {
    t->resp = Response{};
    CURL* e = curl_easy_init();
    t->easy = e;
    const Request& r = t->req;
    if (!r.tls.server_name.empty()) {
      // https://HOST:PORT/p → https://SERVER_NAME:PORT/p, connected to HOST:PORT: curl then sends
      // SERVER_NAME as SNI and checks the certificate against it.
      std::string url = r.url;
      auto hs = url.find("://");
      hs = hs == std::string::npos ? 0 : hs + 3;
      auto pe = url.find_first_of("/?#", hs);
      std::string hostport = url.substr(hs, pe == std::string::npos ? std::string::npos : pe - hs);
      std::string host = hostport, port = url.rfind("http://", 0) == 0 ? "80" : "443";
      auto colon = hostport.rfind(':');
      if (colon != std::string::npos && hostport.find(']', colon) == std::string::npos) {
        host = hostport.substr(0, colon);
        port = hostport.substr(colon + 1);
      }
      std::string target = r.tls.server_name;
      target.append(":").append(port).append(":").append(host).append(":").append(port);
      t->connect_to = curl_slist_append(nullptr, target.c_str());
      curl_easy_setopt(e, CURLOPT_CONNECT_TO, t->connect_to);
      std::string rewritten = url.substr(0, hs);
      rewritten.append(r.tls.server_name).append(":").append(port);
      if (pe != std::string::npos) rewritten.append(url.substr(pe));
      t->url = rewritten;
      curl_easy_setopt(e, CURLOPT_URL, t->url.c_str());
    } else {
      curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    }
    if (!r.proxy.empty()) {  // as kubectl's proxy-url: that proxy for every request, no_proxy not consulted
      curl_easy_setopt(e, CURLOPT_PROXY, r.proxy.c_str());
      curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    }
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    if (r.method == "HEAD") curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH") {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
    }
    for (const auto& [k, v] : r.headers) t->headers = curl_slist_append(t->headers, (k + ": " + v).c_str());
    if (!r.bearer.empty()) t->headers = curl_slist_append(t->headers, ("Authorization: Bearer " + r.bearer).c_str());
    t->headers = curl_slist_append(t->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, reinterpret_cast<void*>(t->id));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    if (!r.keep_alive) curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (r.timeout > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout * 1000));
    if (r.idle_timeout > 0) {
      // Below 1 byte/s for idle_timeout seconds: curl reports CURLE_OPERATION_TIMEDOUT.
      curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, std::max(1L, static_cast<long>(std::ceil(r.idle_timeout))));
    }
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    static const bool verbose = debugging();  // curl's trace, on stderr, redacted
    if (verbose) {
      curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, &debug_trace);
      curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    }
    const Tls& tls = r.tls;
    if (tls.insecure) {
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!tls.ca_data.empty()) blob(e, CURLOPT_CAINFO_BLOB, tls.ca_data);
    else if (!tls.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, tls.ca_file.c_str());
    if (!tls.cert_data.empty()) blob(e, CURLOPT_SSLCERT_BLOB, tls.cert_data);
    else if (!tls.cert_file.empty()) curl_easy_setopt(e, CURLOPT_SSLCERT, tls.cert_file.c_str());
    if (!tls.key_data.empty()) blob(e, CURLOPT_SSLKEY_BLOB, tls.key_data);
    else if (!tls.key_file.empty()) curl_easy_setopt(e, CURLOPT_SSLKEY, tls.key_file.c_str());
    active[t->id] = t;
    ++owner.sent_;
    curl_multi_add_handle(multi, e);
  }

  void finished(CURL* e, CURLcode code) {
    void* priv = nullptr;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    auto it = active.find(reinterpret_cast<uint64_t>(priv));
    if (it == active.end()) return;
    auto t = it->second;
    active.erase(it);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &t->resp.status);
    if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && t->stopped_by_reader)) {
      t->resp.error = t->errbuf[0] ? t->errbuf : curl_easy_strerror(code);
      t->resp.timed_out = code == CURLE_OPERATION_TIMEDOUT;
      std::string said = certificate_problem(code, t->resp.error);
      if (!said.empty()) {
        t->resp.certificate = true;
        t->resp.error = std::move(said);
      }
    }
    curl_multi_remove_handle(multi, e);
    cleanup(*t);
    t->resp.attempts = ++t->attempts;
    if (t->cancelled) return;
    double wait = retry_delay(*t);
    if (wait >= 0) {
      auto timer = std::make_shared<asio::steady_timer>(io, steady_seconds(wait));
      std::weak_ptr<bool> a = alive;
      timer->async_wait([this, a, t, timer](const boost::system::error_code& ec) {
        if (ec || a.expired() || t->cancelled) return;
        admit(t);
      });
      return;
    }
    auto done = std::move(t->done);
    asio::post(io, [done = std::move(done), resp = std::move(t->resp)]() mutable { done(std::move(resp)); });
  }

  // "" when no certificate ended the handshake; else the error, beginning with whose certificate
  // it was in words an operator acts on. curl's own text says "certificate has expired" for the
  // server's and for ours alike (ours comes back as the server's TLS alert, read as a receive
  // error); which one it was decides which file to renew.
  static std::string certificate_problem(CURLcode code, const std::string& text) {
    switch (code) {
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return "the server's certificate is not trusted: " + text;
      case CURLE_SSL_CERTPROBLEM:
        return "the client certificate cannot be used: " + text;
      case CURLE_SSL_CACERT_BADFILE:
        return "the CA certificate cannot be read: " + text;
      default:
        break;
    }
    // A refusal's alert name says it all; OpenSSL's "SSL_read: ... error:0A000415" around it does
    // not (it made doctor's finding three lines long).
    // OpenSSL's names of the alerts a server sends about the client's certificate (RFC 8446 6.2).
    static const char* const refused[] = {"alert bad certificate", "alert certificate expired", "alert certificate revoked",
                                          "alert certificate unknown", "alert unknown ca", "alert unsupported certificate",
                                          "alert certificate required"};
    if (code == CURLE_RECV_ERROR || code == CURLE_SEND_ERROR || code == CURLE_SSL_CONNECT_ERROR)
      for (const char* a : refused)
        if (text.find(a) != std::string::npos) return std::string("the server refused the client certificate: TLS ") + a;
    return "";
  }

  // Seconds to wait before the next attempt, or -1 to give up and report.
  double retry_delay(Transfer& t) {
    const Response& r = t.resp;
    if (t.attempts > t.req.max_retries || t.req.on_data || r.certificate) return -1;
    double ra = retry_after(r);
    bool idempotent = t.req.method == "GET" || t.req.method == "HEAD" || t.req.method == "PUT" || t.req.method == "DELETE";
    bool retry = r.status == 429 || r.status == 502 || r.status == 503 || r.status == 504 ||
                 (r.status >= 500 && ra >= 0) || (r.status == 0 && !r.timed_out && idempotent);
    if (!retry) return -1;
    double backoff = std::min(5.0, 0.2 * std::pow(2.0, t.attempts - 1));
    static std::mt19937 rng{std::random_device{}()};
    backoff *= 0.5 + std::uniform_real_distribution<double>(0, 0.5)(rng);  // jitter
    return ra >= 0 ? std::min(ra, 60.0) : backoff;
  }

  void check_done() {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left))
      if (m->msg == CURLMSG_DONE) finished(m->easy_handle, m->data.result);
  }

  void act(curl_socket_t fd, int flags) {
    int running = 0;
    curl_multi_socket_action(multi, fd, flags, &running);
    check_done();
  }

  // curl says which directions it wants on a socket; asio waits on exactly those.
  static int on_socket(CURL*, curl_socket_t fd, int what, void* userp, void*) {
    auto* self = static_cast<Impl*>(userp);
    if (what == CURL_POLL_REMOVE) {
      auto it = self->sockets.find(fd);
      if (it != self->sockets.end()) {
        boost::system::error_code ec;
        it->second->sd.cancel(ec);
        it->second->sd.release();
        // The descriptor object lives on until its cancelled waits have run.
        asio::post(self->io, [s = std::shared_ptr<Socket>(std::move(it->second))] {});
        self->sockets.erase(it);
      }
      return 0;
    }
    auto& slot = self->sockets[fd];
    if (!slot) slot = std::make_unique<Socket>(self->io, fd);
    slot->what = what;
    self->watch(fd);
    return 0;
  }

  void watch(curl_socket_t fd) {
    auto it = sockets.find(fd);
    if (it == sockets.end()) return;
    Socket& s = *it->second;
    std::weak_ptr<bool> a = alive;
    if ((s.what & CURL_POLL_IN) && !s.reading) {
      s.reading = true;
      s.sd.async_wait(asio::posix::stream_descriptor::wait_read, [this, a, fd, sp = &s](const boost::system::error_code& ec) {
        if (a.expired()) return;
        auto it = sockets.find(fd);
        if (it == sockets.end() || it->second.get() != sp) return;
        sp->reading = false;
        if (ec) return;
        act(fd, CURL_CSELECT_IN);
        watch(fd);
      });
    }
    if ((s.what & CURL_POLL_OUT) && !s.writing) {
      s.writing = true;
      s.sd.async_wait(asio::posix::stream_descriptor::wait_write, [this, a, fd, sp = &s](const boost::system::error_code& ec) {
        if (a.expired()) return;
        auto it = sockets.find(fd);
        if (it == sockets.end() || it->second.get() != sp) return;
        sp->writing = false;
        if (ec) return;
        act(fd, CURL_CSELECT_OUT);
        watch(fd);
      });
    }
  }

  static int on_timer(CURLM*, long ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    self->timer.cancel();
    if (ms < 0) return 0;
    self->timer.expires_after(std::chrono::milliseconds(ms));
    std::weak_ptr<bool> a = self->alive;
    self->timer.async_wait([self, a](const boost::system::error_code& ec) {
      if (ec || a.expired()) return;
      self->act(CURL_SOCKET_TIMEOUT, 0);
    });
    return 0;
  }
};

Client::Client(asio::io_context& io, Options opts) : impl_(std::make_unique<Impl>(*this, io, opts)) {}
Client::~Client() = default;

size_t Client::in_flight() const { return impl_->active.size() + impl_->waiting.size(); }

Client::Throttled Client::throttled() const { return impl_->throttled; }

void Client::stop_limiting() {
  if (impl_->unlimited) return;
  impl_->unlimited = true;
  impl_->drain_waiting();
}

bool Client::limiting() const { return !impl_->unlimited; }

const Options& Client::options() const { return impl_->opts; }

std::function<void()> Client::send(Request req, std::function<void(Response)> done) {
  auto t = std::make_shared<Transfer>();
  t->id = impl_->next_id++;
  t->req = std::move(req);
  t->done = std::move(done);
  impl_->admit(t);
  std::weak_ptr<Transfer> weak = t;
  Impl* impl = impl_.get();
  std::weak_ptr<bool> a = impl_->alive;
  return [weak, impl, a] {
    auto t = weak.lock();
    if (!t || a.expired() || t->cancelled) return;
    t->cancelled = true;
    auto it = impl->active.find(t->id);
    if (it != impl->active.end()) {
      curl_multi_remove_handle(impl->multi, t->easy);
      Impl::cleanup(*t);
      impl->active.erase(it);
    }
    if (auto d = std::move(t->done)) {
      Response r;
      r.error = "cancelled";
      asio::post(impl->io, [d = std::move(d), r] { d(r); });
    }
  };
}

}  // namespace engine::http
