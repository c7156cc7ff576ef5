#include "engine/ssh/session.hpp"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <boost/asio/post.hpp>
#include <mutex>

#include "engine/core/seconds.hpp"
#include "engine/log/log.hpp"
#include "engine/ssh/auth.hpp"
#include "engine/ssh/crypto_policy.hpp"
#include "engine/ssh/host_key.hpp"

namespace engine::ssh {

void init_library() {
  static std::once_flag once;
  std::call_once(once, [] { libssh2_init(0); });
}

Session::Session(asio::io_context& io, std::shared_ptr<const Target> target, Options opts)
    : io_(io), target_(std::move(target)), opts_(opts), sock_(io), timer_(io) {
  init_library();
  // abstract: for auth callbacks. The memory is malloc's: each session's ~52 KB structure in
  // huge-page slots (tried, 2026-12-03) cost 13-16 % more controller CPU in bench/fanout where the
  // kernel hands out huge pages the hypervisor must back on first touch (docs/benchmarks.md).
  session_ = libssh2_session_init_ex(nullptr, nullptr, nullptr, this);
  libssh2_session_set_blocking(session_, 0);
  libssh2_session_callback_set(session_, LIBSSH2_CALLBACK_RECV, reinterpret_cast<void*>(&Session::recv_counting));
  libssh2_session_callback_set(session_, LIBSSH2_CALLBACK_SEND, reinterpret_cast<void*>(&Session::send_checked));
}

// As libssh2's own send, until the session has failed: fail() closes the socket at once, and its
// number may then belong to a new connection (the next session's, an HTTPS client's) while libssh2
// still writes on this one's behalf (libssh2_session_free closes the open channels: a
// CHANNEL_CLOSE each), which would put stray bytes into that connection.
ssize_t Session::send_checked(libssh2_socket_t fd, const void* buf, size_t len, int flags, void** abstract) {
  auto* s = static_cast<Session*>(*abstract);
  if (s->dead_ && fd == s->fd_) return -EPIPE;
  ssize_t n = ::send(fd, buf, len, flags);
  return n >= 0 ? n : errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

// As libssh2's own recv (errors as -errno, EWOULDBLOCK as -EAGAIN), counting what arrives.
ssize_t Session::recv_counting(libssh2_socket_t fd, void* buf, size_t len, int flags, void** abstract) {
  auto* s = static_cast<Session*>(*abstract);
  if (s->dead_ && fd == s->fd_) return -EPIPE;  // closed by fail(): the number may be another connection's now
  if (fd != s->sock_.native_handle()) {  // libssh2's agent client reads its own socket through here too
    ssize_t n = ::recv(fd, buf, len, flags);
    return n >= 0 ? n : errno == EWOULDBLOCK ? -EAGAIN : -errno;
  }
  if (s->ahead_at_ < s->ahead_end_) {
    size_t n = std::min(len, s->ahead_end_ - s->ahead_at_);
    std::memcpy(buf, s->ahead_ + s->ahead_at_, n);
    s->ahead_at_ += n;
    return static_cast<ssize_t>(n);
  }
  if (s->read_ended_) return -s->read_errno_;  // 0 at the connection's end, as recv says it
  // The wait's read owns ahead_ until it completes; with the socket found empty since the last
  // readable edge, asking the kernel again could only say EAGAIN (libssh2 asks back to back).
  if (s->read_armed_ || s->drained_) return -EAGAIN;
  bool short_read = len < kAhead && (flags & ~MSG_NOSIGNAL) == 0;  // libssh2 passes MSG_NOSIGNAL
  size_t asked = short_read ? kAhead : len;
  ssize_t n = short_read ? ::recv(fd, s->ahead_, kAhead, flags) : ::recv(fd, buf, len, flags);
  if (n < 0) {
    if (errno != EWOULDBLOCK && errno != ENOENT) {
      s->read_ended_ = true;  // as when the wait's read meets it: fatal() then knows the transport went
      s->read_errno_ = errno;
      return -errno;
    }
    s->drained_ = true;
    return -EAGAIN;
  }
  if (n == 0) s->read_ended_ = true, s->read_errno_ = 0;
  // Less than asked for: the socket is empty now (a stream socket's recv takes all it holds).
  s->drained_ = static_cast<size_t>(n) < asked;
  s->bytes_in_ += static_cast<uint64_t>(n);
  if (!short_read) return n;
  size_t k = std::min(len, static_cast<size_t>(n));
  std::memcpy(buf, s->ahead_, k);
  s->ahead_at_ = k;
  s->ahead_end_ = static_cast<size_t>(n);
  return static_cast<ssize_t>(k);
}

uint64_t Session::heard() {
  int pending = 0;  // bytes in the socket that no Op has asked libssh2 to read yet
  if (::ioctl(sock_.native_handle(), FIONREAD, &pending) != 0) pending = 0;
  return bytes_in_ + static_cast<uint64_t>(std::max(0, pending));
}

Session::~Session() {
  if (session_) libssh2_session_free(session_);
  // The descriptor closes its fd.
}

void Session::start(int fd, std::function<void(Result)> done) {
  boost::system::error_code ec;
  sock_.assign(fd, ec);
  if (ec) {
    ::close(fd);
    done(Failure{Error::closed, "socket: " + ec.message()});
    return;
  }
  fd_ = fd;
  apply_crypto_policy(session_, target_->legacy_crypto);
  if (target_->legacy_crypto)
    log::emit(log::Level::warn, target_->name, "legacy SSH cryptography allowed for this host (engine_ssh_legacy_crypto)",
              {{"address", target_->at.host + ":" + std::to_string(target_->at.port)}});
  prefer_known_key_types(*this);
  auto once = std::make_shared<std::function<void(Result)>>(std::move(done));
  auto finish = [once](Result r) {
    if (*once) {
      auto f = std::move(*once);
      *once = nullptr;
      f(std::move(r));
    }
  };
  auto self = shared_from_this();
  // Handshake, then the host key (before anything is sent that authenticates us), then auth.
  auto probing = std::make_shared<bool>(false);
  add(std::make_shared<FnOp>(
      [this, self, fd, finish, probing](Session&) {
        if (*probing) return Op::Step::blocked;
        int rc = libssh2_session_handshake(session_, fd);
        if (would_block(rc)) return Op::Step::blocked;
        if (rc == LIBSSH2_ERROR_KEX_FAILURE && !target_->legacy_crypto) {
          // Nothing in common: before authentication, say what the server offers and what we accept.
          *probing = true;
          const auto& p = modern_crypto();
          std::string where = target_->at.host + ":" + std::to_string(target_->at.port);
          std::string msg = "refused " + where + " before authenticating: no SSH cryptography in common (" + last_error() +
                            "). The engine accepts kex " + p.kex + "; ciphers " + p.ciphers + "; macs " + p.macs +
                            ". Set engine_ssh_legacy_crypto=true for this host to allow older algorithms.";
          if (!target_->jumps.empty()) {
            fail(Error::weak_crypto, msg);
            return Op::Step::blocked;
          }
          std::weak_ptr<Session> weak = self;
          probe_server_offer(io_, target_->at.host, target_->at.port, 5, [weak, msg](std::string offer) {
            if (auto s = weak.lock()) s->fail(Error::weak_crypto, msg + " The server offers: " + offer + ".");
          });
          return Op::Step::blocked;
        }
        if (rc != 0) {
          fail(Error::closed, "handshake with " + target_->at.host + ":" + std::to_string(target_->at.port) + ": " + last_error());
          return Op::Step::done;
        }
        if (auto bad = check_host_key(*this)) {
          fail(bad->kind, bad->detail);
          return Op::Step::done;
        }
        add(make_auth_op(*this, [this, self, finish](Result r) {
          if (r) {
            fail(r->kind, r->detail);
            finish(r);
            return;
          }
          authenticated();
          finish(std::nullopt);
        }));
        return Op::Step::done;
      },
      [finish](const Failure& f) { finish(f); }));
}

void Session::authenticated() {
  ready_ = true;
  double interval = target_->alive_interval.value_or(opts_.keepalive);
  if (interval > 0) {
    // At least 1 s: libssh2 counts keepalive intervals in whole seconds and sends none sooner, and
    // an interval without a keepalive sent must not count as one unanswered.
    interval = std::max(1.0, interval);
    // want_reply: OpenSSH answers every keepalive, so a live server always sends something back.
    libssh2_keepalive_config(session_, 1, static_cast<unsigned>(interval));
    heard_at_check_ = heard();
    keepalive_every_ = steady_seconds(interval);
    keepalive_due_ = std::chrono::steady_clock::now() + keepalive_every_;
  }
  idle();  // a session nobody uses after connecting goes too
  schedule();
}

void Session::schedule() {
  if (dead_) return;
  auto next = keepalive_due_;
  if (idle_counts_) next = std::min(next, idle_since_ + steady_seconds(opts_.idle_timeout));
  if (next == std::chrono::steady_clock::time_point::max()) return;
  // Armed for sooner: it fires then and schedules again. The idle deadline only moves later, so
  // this is the common case, and the heap is not touched.
  if (timer_armed_ && timer_.expiry() <= next) return;
  timer_armed_ = true;
  timer_.expires_at(next);  // a wait on its way ends with operation_aborted, and does nothing
  std::weak_ptr<Session> weak = shared_from_this();
  timer_.async_wait([weak](const boost::system::error_code& ec) {
    auto s = weak.lock();
    if (ec || !s || s->dead_) return;
    s->timer_armed_ = false;
    s->on_timer();
  });
}

void Session::on_timer() {
  auto now = std::chrono::steady_clock::now();
  bool sent = false;
  if (now >= keepalive_due_) {
    if (!keepalive_check()) return;
    keepalive_due_ = now + keepalive_every_;
    sent = true;
  }
  if (idle_counts_ && now >= idle_since_ + steady_seconds(opts_.idle_timeout)) {
    if (ops_.empty() && channels_ == 0) {
      close();  // nothing was running, so nothing is lost; the pool reconnects on the next call
      return;
    }
    idle_counts_ = false;  // in use: the command's end starts the idle clock again
  }
  schedule();
  if (sent) kick();  // the keepalive may have read data an Op is waiting for
}

// OpenSSH's ServerAliveCountMax: `count` intervals in a row with nothing from the server and it is
// gone; otherwise the next keepalive is sent.
bool Session::keepalive_check() {
  uint64_t now_heard = heard();
  missed_ = now_heard != heard_at_check_ ? 0 : missed_ + 1;
  heard_at_check_ = now_heard;
  int count = std::max(1, target_->alive_count.value_or(opts_.keepalive_count));
  if (missed_ >= count) {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%g", std::chrono::duration<double>(keepalive_every_).count() * count);
    fail(Error::unreachable, "no answer from " + target_->name + " for " + secs + "s (" + std::to_string(count) +
                                 " keepalives unanswered): the link or its sshd is gone");
    return false;
  }
  int next = 0;
  int rc = libssh2_keepalive_send(session_, &next);
  if (rc != 0 && !would_block(rc)) {
    fail(Error::closed, "keepalive to " + target_->name + " failed: " + last_error());
    return false;
  }
  return true;
}

void Session::add(std::shared_ptr<Op> op) {
  if (dead_) {
    op->abort(Failure{Error::closed, "connection to " + target_->name + " is closed"});
    return;
  }
  ops_.push_back(std::move(op));
  kick();
}

void Session::kick() {
  if (pumping_) {
    again_ = true;
    return;
  }
  pump();
}

void Session::pump() {
  auto self = shared_from_this();  // an Op may drop the last owner
  pumping_ = true;
  const bool had_ops = !ops_.empty();
  int directions = 0;
  do {
    again_ = false;
    directions = 0;
    for (size_t i = 0; i < ops_.size() && !dead_;) {
      auto op = ops_[i];
      Op::Step st = op->step(*this);
      if (dead_) break;
      if (st == Op::Step::done) {
        auto it = std::find(ops_.begin(), ops_.end(), op);
        if (it != ops_.end()) ops_.erase(it);
        again_ = true;
        continue;
      }
      if (st == Op::Step::progressed) again_ = true;
      else directions |= libssh2_session_block_directions(session_);
      ++i;
    }
  } while (again_ && !dead_);
  pumping_ = false;
  if (!dead_ && !ops_.empty()) arm(directions);
  // Nothing running: the socket is still read, so a server that closes the connection meanwhile
  // (sshd's ClientAlive limits, a reboot, a firewall's idle timeout) is known now, and the next
  // call connects again instead of failing on a connection that is gone.
  if (!dead_ && ready_ && ops_.empty()) read_ahead();
  // The last Op just ended: the idle clock starts (a keepalive's kick with nothing running does not
  // restart it).
  if (!dead_ && had_ops && ops_.empty()) idle();
}

// The idle clock restarts at every command's end, but the timer is not re-armed each time: armed
// for the first deadline (or sooner, for a keepalive), it finds out when it fires what is left
// since the last use. Re-arming meant two operations on asio's timer heap per command, and each
// one writes into other sessions' timers (the heap's swaps, its list's neighbours): with 1,000
// sessions kept, cold memory on every command (bench/fanout).
void Session::idle() {
  if (opts_.idle_timeout <= 0 || !ready_) return;
  idle_since_ = std::chrono::steady_clock::now();
  if (!idle_counts_) {
    idle_counts_ = true;
    schedule();
  }
}

void Session::arm(int directions) {
  std::weak_ptr<Session> weak = shared_from_this();
  // The wait for inbound bytes is a read into ahead_: asio tries it at once and otherwise queues it
  // on the descriptor's registration as it stands (a bare wait re-registers it, an epoll_ctl each
  // time). Bytes still in ahead_ mean nothing here waits for the socket: whoever reads next has them.
  if ((directions & LIBSSH2_SESSION_BLOCK_INBOUND) && ahead_at_ == ahead_end_) read_ahead();
  if ((directions & LIBSSH2_SESSION_BLOCK_OUTBOUND) && !write_armed_) {
    write_armed_ = true;
    sock_.async_wait(asio::posix::stream_descriptor::wait_write, [weak](const boost::system::error_code& ec) {
      auto s = weak.lock();
      if (!s) return;
      s->write_armed_ = false;
      if (!ec && !s->dead_) s->kick();
    });
  }
}

void Session::read_ahead() {
  if (read_armed_ || read_ended_) return;
  if (ahead_at_ == ahead_end_) ahead_at_ = ahead_end_ = 0;
  size_t room = kAhead - ahead_end_;
  if (room == 0) return;  // an idle session's buffer is full (libssh2 takes it at the next call)
  read_armed_ = true;
  std::weak_ptr<Session> weak = shared_from_this();
  sock_.async_read_some(asio::buffer(ahead_ + ahead_end_, room), [weak, room](const boost::system::error_code& ec, size_t n) {
    auto s = weak.lock();
    if (!s) return;
    s->read_armed_ = false;
    if (ec == asio::error::operation_aborted || s->dead_) return;
    if (ec) {
      s->read_ended_ = true;
      s->read_errno_ = ec == asio::error::eof ? 0 : ec.category() == boost::system::system_category() ? ec.value() : EIO;
      if (s->ops_.empty()) {
        std::string why = ec == asio::error::eof ? "end of stream" : ec.message();
        log::emit(log::Level::debug, s->target_->name, "the server closed the idle SSH connection; the next call reconnects",
                  {{"reason", why}});
        s->fail(Error::closed, "the server closed the connection to " + s->target_->name + " while it was idle (" + why + ")");
        return;
      }
    } else {
      s->ahead_end_ += n;
      s->bytes_in_ += n;
      s->drained_ = n < room;
    }
    s->kick();
  });
}

bool Session::fatal(int rc) {
  switch (rc) {
    case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT:
    case LIBSSH2_ERROR_TIMEOUT:
    case LIBSSH2_ERROR_DECRYPT:
    case LIBSSH2_ERROR_BAD_SOCKET:
    case LIBSSH2_ERROR_KEX_FAILURE:
    case LIBSSH2_ERROR_PROTO:
      break;
    default:
      // libssh2's wrappers put their own error over the transport's (libssh2_sftp_init says
      // "Unable to startup channel" for a reset): a read that met the connection's end, with
      // nothing of it left to take, says the transport is gone whatever the code.
      if (rc >= 0 || rc == LIBSSH2_ERROR_EAGAIN || !read_ended_ || ahead_at_ < ahead_end_) return false;
  }
  // libssh2 says "Unexpected error" for a reset or an end of stream its recv met: the read that
  // met it says which.
  fail(Error::closed, "connection to " + target_->name + " lost: " +
                          (!read_ended_ ? last_error()
                           : read_errno_ == 0 ? std::string("the server closed it")
                                              : std::string(std::strerror(read_errno_))));
  return true;
}

std::string Session::last_error() const {
  char* msg = nullptr;
  int len = 0;
  libssh2_session_last_error(session_, &msg, &len, 0);
  return msg ? std::string(msg, len) : "unknown error";
}

void Session::fail(Error e, const std::string& detail) {
  if (dead_) return;
  dead_ = true;
  ready_ = false;
  timer_.cancel();
  boost::system::error_code ec;
  sock_.cancel(ec);
  sock_.close(ec);
  auto ops = std::move(ops_);
  ops_.clear();
  Failure f{e, detail};
  for (auto& op : ops) op->abort(f);
  if (auto end = std::move(on_end_)) {
    on_end_ = nullptr;
    end();
  }
}

void Session::close() {
  if (dead_) return;
  libssh2_session_disconnect(session_, "engine done");  // best effort; non-blocking
  fail(Error::closed, "closed by engine");
}

bool Session::take_channel() {
  if (channels_ >= opts_.channels_per_host) return false;
  ++channels_;
  return true;
}

void Session::give_channel() {
  if (channels_ > 0) --channels_;
  // Ops waiting for a slot are stepped on the next turn.
  std::weak_ptr<Session> weak = shared_from_this();
  asio::post(io_, [weak] {
    if (auto s = weak.lock(); s && !s->dead_) s->kick();
  });
}

}  // namespace engine::ssh
