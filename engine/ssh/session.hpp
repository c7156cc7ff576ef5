// One authenticated libssh2 session to one host, driven by Boost.Asio. Everything that waits on the
// session (the handshake, authentication, each channel) is an Op; the session steps every Op
// whenever its socket is ready, and then waits on exactly the directions libssh2 reported for the
// Ops still blocked. A session that dies aborts every Op on it with "closed".
#pragma once
#include <libssh2.h>

#include <chrono>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/ssh/error.hpp"
#include "engine/ssh/target.hpp"

namespace engine::ssh {

namespace asio = boost::asio;

struct Options {
  size_t channels_per_host = 8;  // sshd's MaxSessions is 10 by default
  // OpenSSH's ServerAliveInterval x ServerAliveCountMax: a keepalive every `keepalive` seconds;
  // when `keepalive_count` intervals in a row pass with no byte from the server, it is gone
  // ("unreachable"), even if nothing fails to send (a blackholed link, a frozen sshd).
  double keepalive = 15;  // 0 turns them off; less than 1 s counts as 1 s
  int keepalive_count = 3;
  // Seconds a session may sit with nothing running on it before it is closed (the next call on the
  // host reconnects), as OpenSSH's ControlPersist does; 0 keeps it to the end of the run. Each live
  // session holds a file descriptor here and an sshd process on the node.
  double idle_timeout = 60;
};

class Session;

// Something in progress on a session.
class Op {
 public:
  enum class Step { done, progressed, blocked };
  virtual ~Op() = default;
  // Makes what progress it can without blocking. Blocked means a libssh2 call said EAGAIN (or the
  // Op waits for something else that will kick the session, such as a timer or a channel slot).
  virtual Step step(Session& s) = 0;
  // The session died under it.
  virtual void abort(const Failure& f) = 0;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  // The target is shared with the pool's callbacks and the bindings' retry, not copied: a Target
  // holds a dozen strings and paths, and a fan-out made four copies of one per host.
  Session(asio::io_context& io, std::shared_ptr<const Target> target, Options opts);
  ~Session();

  // Takes an fd connected to the SSH server (a TCP socket, or one end of a socketpair bridged
  // through a jump host), then handshakes, checks the host key, authenticates. `done` runs once.
  void start(int fd, std::function<void(Result)> done);

  // Adds an Op; it is stepped at once and whenever the socket is ready, until it is done.
  void add(std::shared_ptr<Op> op);
  // Steps every Op again (a timer fired, a channel slot freed, a local socket became ready).
  void kick();

  // Kills the session: every Op is aborted with `e`. Safe to call more than once.
  void fail(Error e, const std::string& detail);
  // Ends it politely (disconnect message) when nothing runs on it.
  void close();
  // Called once, from fail(), when the session has ended (the pool lets it go then).
  void on_end(std::function<void()> f) { on_end_ = std::move(f); }

  // For Ops: classifies a libssh2 return code. EAGAIN → blocked; a transport error kills the
  // session (and returns false); anything else is the caller's to interpret.
  bool fatal(int rc);
  bool would_block(int rc) const { return rc == LIBSSH2_ERROR_EAGAIN; }
  std::string last_error() const;

  // At most channels_per_host channels at once; Ops wait for a slot.
  bool take_channel();
  void give_channel();

  LIBSSH2_SESSION* raw() const { return session_; }
  asio::io_context& io() { return io_; }
  const Target& target() const { return *target_; }
  bool alive() const { return !dead_; }
  bool ready() const { return ready_; }
  size_t channels_open() const { return channels_; }

 private:
  void pump();
  void arm(int directions);
  void read_ahead();  // a read into ahead_'s free end, unless one is on its way or the stream ended
  void authenticated();
  void idle();
  // The session's one timer, for its next keepalive and its idle deadline, whichever comes first.
  void schedule();
  void on_timer();
  bool keepalive_check();  // false: the session failed
  // libssh2 reads through this, so the session knows when the server last sent anything. Bytes the
  // session's wait for the socket read (arm) or a short read took (libssh2 takes the server's
  // identification line a byte per call) are served from ahead_ first; libssh2 is told EAGAIN
  // without a system call while that wait is on its way or the socket was found empty since the
  // last time it was readable (drained_): the kernel signals every arrival after that (epoll's edge),
  // and the next wait reads it.
  static ssize_t recv_counting(libssh2_socket_t fd, void* buf, size_t len, int flags, void** abstract);
  // libssh2 writes through this; both refuse the session's own descriptor once it has failed.
  static ssize_t send_checked(libssh2_socket_t fd, const void* buf, size_t len, int flags, void** abstract);
  uint64_t heard();  // bytes received so far, read by libssh2 or still waiting in the socket

  asio::io_context& io_;
  std::shared_ptr<const Target> target_;
  Options opts_;
  LIBSSH2_SESSION* session_ = nullptr;
  asio::posix::stream_descriptor sock_;
  int fd_ = -1;  // sock_'s descriptor number, kept after fail() closed it (send_checked, recv_counting)
  // One timer, not one for keepalives and one for idleness: with 1,000 sessions kept, asio's timer
  // heap held 2,000, and each insertion and removal writes into other sessions' memory.
  asio::steady_timer timer_;
  bool timer_armed_ = false;  // timer_ has a wait on its way
  std::chrono::steady_clock::time_point keepalive_due_ = std::chrono::steady_clock::time_point::max();  // max: off
  std::chrono::steady_clock::duration keepalive_every_{};
  std::chrono::steady_clock::time_point idle_since_;  // the last command's end
  bool idle_counts_ = false;  // idle_since_ is a deadline's start (nothing ran since; the next command clears it)
  std::vector<std::shared_ptr<Op>> ops_;
  bool pumping_ = false, again_ = false;
  bool read_armed_ = false, write_armed_ = false;
  bool dead_ = false, ready_ = false;
  std::function<void()> on_end_;
  size_t channels_ = 0;
  uint64_t bytes_in_ = 0;
  bool drained_ = false;    // the socket was found empty and the session has not waited for it since
  bool read_ended_ = false;  // the wait's read met the connection's end (read_errno_ 0) or an error
  int read_errno_ = 0;
  // Big enough for a key exchange's packets in one read; libssh2 reads longer runs directly.
  static constexpr size_t kAhead = 2048;
  unsigned char ahead_[kAhead];
  size_t ahead_at_ = 0, ahead_end_ = 0;  // what libssh2 has not taken yet: ahead_[at, end)
  uint64_t heard_at_check_ = 0;
  int missed_ = 0;  // keepalive intervals in a row with nothing from the server
};

// An Op made of two functions, for the short steps of connecting.
class FnOp : public Op {
 public:
  FnOp(std::function<Step(Session&)> step, std::function<void(const Failure&)> abort)
      : step_(std::move(step)), abort_(std::move(abort)) {}
  Step step(Session& s) override { return step_(s); }
  void abort(const Failure& f) override { abort_(f); }

 private:
  std::function<Step(Session&)> step_;
  std::function<void(const Failure&)> abort_;
};

// libssh2_init once per process.
void init_library();

}  // namespace engine::ssh
