#include "engine/ssh/pool.hpp"

#include <array>

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "engine/core/seconds.hpp"
#include "engine/ssh/forward.hpp"

namespace engine::ssh {

namespace {

using tcp = boost::asio::ip::tcp;

Error classify(const boost::system::error_code& ec) {
  namespace e = boost::asio::error;
  if (ec == e::connection_refused) return Error::refused;
  if (ec == e::timed_out || ec == e::operation_aborted) return Error::timeout;
  return Error::unreachable;  // no route, unresolvable name, network down
}

// The target of the last hop before `t`: a jump host is reached through the hops before it.
Target hop_target(const Target& t, size_t i) {
  Target h;
  h.name = t.jumps[i].host;
  h.at = t.jumps[i];
  h.jumps.assign(t.jumps.begin(), t.jumps.begin() + static_cast<long>(i));
  h.known_hosts_file = t.known_hosts_file;
  h.more_known_hosts = t.more_known_hosts;
  h.agent_socket = t.agent_socket;
  h.policy = t.policy;
  h.connect_timeout = t.connect_timeout;
  h.passphrase = t.passphrase;
  h.legacy_crypto = t.legacy_crypto;
  h.alive_interval = t.alive_interval;
  h.alive_count = t.alive_count;
  return h;
}

}  // namespace

Pool::~Pool() { close_all(); }

void Pool::get(std::shared_ptr<const Target> t, Ready ready) {
  const std::string key = t->key();
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.session && !it->second.session->alive()) {
    entries_.erase(it);  // a dead session is never reused: the next call reconnects
    it = entries_.end();
  }
  if (it != entries_.end()) {
    auto& e = it->second;
    if (e.session->ready()) {
      boost::asio::post(io_, [s = e.session, ready = std::move(ready)] { ready(s, std::nullopt); });
    } else {
      e.waiting.push_back(std::move(ready));
    }
    return;
  }
  auto& e = entries_[key];
  e.session = std::make_shared<Session>(io_, std::move(t), opts_);
  // A session that ends (its idle timeout, a failure, its server closing it) leaves the pool then,
  // not at this host's next call or the run's end: its memory (libssh2's ~52 KB structure, its
  // buffers) is freed for the next host's. A fan-out to 1,000 hosts with a short idle_timeout
  // otherwise held every closed session's to the end. During the handshake, settle() does this.
  std::weak_ptr<Session> ended = e.session;
  e.session->on_end([this, key, ended, open = open_] {
    boost::asio::post(io_, [this, key, ended, open] {
      if (!*open) return;
      auto it = entries_.find(key);
      if (it == entries_.end() || !it->second.waiting.empty()) return;
      // The same session, not a newer one for the same host (owner_before: no address reuse).
      if (ended.owner_before(it->second.session) || it->second.session.owner_before(ended)) return;
      entries_.erase(it);
    });
  });
  e.waiting.push_back(std::move(ready));
  queued_.push_back([this, key] { connect(key); });
  admit();
}

void Pool::admit() {
  while (handshaking_ < max_handshakes_ && !queued_.empty()) {
    auto next = std::move(queued_.front());
    queued_.pop_front();
    ++handshaking_;
    peak_handshakes_ = std::max(peak_handshakes_, handshaking_);
    next();
  }
}

void Pool::connect(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    --handshaking_;
    admit();
    return;
  }
  auto s = it->second.session;  // holds the target the calls below read
  const Target& t = s->target();
  if (t.jumps.empty()) connect_direct(t, key, s);
  else connect_via_jump(t, s);
}

void Pool::connect_direct(const Target& t, const std::string& key, std::shared_ptr<Session> s) {
  struct Attempt {
    tcp::resolver resolver;
    tcp::socket socket;
    boost::asio::steady_timer timer;
    bool timed_out = false;
    bool connected = false;  // from then on the timer is the handshake's deadline
    std::string key, where;  // held here, not copied into each handler (asio moves them along)
    Attempt(boost::asio::io_context& io, std::string k, std::string w)
        : resolver(io), socket(io), timer(io), key(std::move(k)), where(std::move(w)) {}
  };
  auto a = std::make_shared<Attempt>(io_, key, t.at.host + ":" + std::to_string(t.at.port));
  a->timer.expires_after(steady_seconds(t.connect_timeout));
  // One timer for the connection and the handshake after it (and authentication): they share the
  // connect timeout. It is cancelled when the session is ready or has failed.
  std::weak_ptr<Session> weak = s;
  a->timer.async_wait([a, weak](const boost::system::error_code& ec) {
    if (ec) return;
    if (a->connected) {
      auto s = weak.lock();
      if (s && !s->ready()) s->fail(Error::timeout, "handshake with " + a->where + " timed out");
      return;
    }
    a->timed_out = true;
    a->resolver.cancel();
    boost::system::error_code ignore;
    a->socket.close(ignore);
  });
  auto connect = [this, a, s](const auto& endpoints) {
    boost::asio::async_connect(a->socket, endpoints, [this, a, s](const boost::system::error_code& ec, const tcp::endpoint&) {
      if (ec || a->timed_out) {  // timed out: the timer closed the socket, whatever came first
        a->timer.cancel();
        settle(a->key, Failure{a->timed_out ? Error::timeout : classify(ec), "connect " + a->where + ": " +
                                                                                 (a->timed_out ? "timed out" : ec.message())});
        return;
      }
      a->connected = true;  // the timer goes on as the handshake's deadline
      a->socket.set_option(tcp::no_delay(true));
      int fd = a->socket.release();
      s->start(fd, [this, a](Result r) {
        a->timer.cancel();
        settle(a->key, std::move(r));
      });
    });
  };
  // An address (inventories often give one: ansible_host=10.0.0.5) needs no resolver: asking it
  // costs a hand-off to its thread and back and getaddrinfo's reads of /etc files, per connection.
  boost::system::error_code not_numeric;
  auto address = boost::asio::ip::make_address(t.at.host, not_numeric);
  if (!not_numeric) {
    connect(std::array<tcp::endpoint, 1>{tcp::endpoint(address, static_cast<unsigned short>(t.at.port))});
    return;
  }
  // A name is resolved on asio's resolver thread, never blocking the loop.
  a->resolver.async_resolve(t.at.host, std::to_string(t.at.port),
      [this, a, connect](const boost::system::error_code& ec, tcp::resolver::results_type results) {
        if (ec) {
          a->timer.cancel();
          settle(a->key, Failure{a->timed_out ? Error::timeout : Error::unreachable, "resolve " + a->where + ": " + ec.message()});
          return;
        }
        connect(results);
      });
}

void Pool::connect_via_jump(const Target& t, std::shared_ptr<Session> s, bool again) {
  const std::string key = t.key();
  Target hop = hop_target(t, t.jumps.size() - 1);
  // The jump host's own handshake is admitted separately; this slot waits for it.
  --handshaking_;
  get(hop, [this, t, s, key, again](std::shared_ptr<Session> jump, Result r) {
    ++handshaking_;
    if (r) {
      settle(key, Failure{r->kind == Error::host_key_unknown || r->kind == Error::host_key_changed ? r->kind : r->kind,
                          "jump host " + t.jumps.back().host + ": " + r->detail});
      return;
    }
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      settle(key, Failure{Error::failed, "socketpair: " + std::string(std::strerror(errno))});
      return;
    }
    boost::asio::generic::stream_protocol::socket local(io_, boost::asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), fds[0]);
    int inner = fds[1];
    bridge(jump, t.at.host, t.at.port, std::move(local), [this, s, key, inner, t, again, open = open_](Result r) {
      if (r && r->not_sent && !again && *open) {
        // The jump host's session was gone before the channel to this host opened (a firewall
        // forgot it while it sat idle): it has failed and left the pool; once more on a new one.
        ::close(inner);
        connect_via_jump(t, s, true);
        return;
      }
      if (r) {
        ::close(inner);
        settle(key, Failure{r->kind, "through jump host " + t.jumps.back().host + ": " + r->detail});
        return;
      }
      s->start(inner, [this, key](Result r) { settle(key, std::move(r)); });
    });
  });
}

void Pool::settle(const std::string& key, Result r) {
  if (handshaking_ > 0) --handshaking_;
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    auto session = it->second.session;
    auto waiting = std::move(it->second.waiting);
    it->second.waiting.clear();
    if (r) {
      session->fail(r->kind, r->detail);
      entries_.erase(it);
    }
    for (auto& w : waiting)
      boost::asio::post(io_, [w = std::move(w), session, r] { w(r ? nullptr : session, r); });
  }
  admit();
}

void Pool::close_all() {
  *open_ = false;
  for (auto& [_, e] : entries_)
    if (e.session) e.session->close();
  entries_.clear();
  queued_.clear();
}

}  // namespace engine::ssh
