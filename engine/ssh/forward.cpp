#include "engine/ssh/forward.hpp"

#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "engine/ssh/session.hpp"

namespace engine::ssh {

namespace {

using Local = boost::asio::generic::stream_protocol::socket;

class BridgeOp : public Op, public std::enable_shared_from_this<BridgeOp> {
 public:
  BridgeOp(std::shared_ptr<Session> s, std::string host, int port, Local local, std::function<void(Result)> opened)
      : session_(s), host_(std::move(host)), port_(port), local_(std::move(local)), opened_(std::move(opened)) {}

  Step step(Session& s) override {
    if (done_) return Step::done;
    if (!ch_) {
      // No exec slot: sshd's MaxSessions counts sessions, not direct-tcpip channels, and a jump
      // host carries a bridge for every host behind it for as long as that session lives.
      ch_ = libssh2_channel_direct_tcpip_ex(s.raw(), host_.c_str(), port_, "127.0.0.1", 0);
      if (!ch_) {
        int rc = libssh2_session_last_errno(s.raw());
        if (s.would_block(rc)) return Step::blocked;
        if (s.fatal(rc)) return Step::done;
        Failure f{rc == LIBSSH2_ERROR_CHANNEL_FAILURE ? Error::refused : Error::failed,
                  "forward to " + host_ + ":" + std::to_string(port_) + " via " + s.target().name + ": " + s.last_error()};
        notify(f);
        return shutdown(s);
      }
      notify(std::nullopt);
      read_local();
    }
    bool progress = false;
    // Channel → local: one write in flight at a time, the rest waits in to_local_.
    if (!channel_eof_) {
      for (;;) {
        if (to_local_.size() > (1 << 20)) break;  // back-pressure: the channel window stays closed
        ssize_t n = libssh2_channel_read(ch_, buf_, sizeof buf_);
        if (n == LIBSSH2_ERROR_EAGAIN) break;
        if (n < 0) {
          if (s.fatal(static_cast<int>(n))) return Step::done;
          channel_eof_ = true;
          break;
        }
        if (n == 0) {
          if (libssh2_channel_eof(ch_)) channel_eof_ = true;
          break;
        }
        to_local_.append(buf_, static_cast<size_t>(n));
        progress = true;
      }
      if (!channel_eof_ && libssh2_channel_eof(ch_)) channel_eof_ = true;
    } else if (!local_eof_) {
      // The remote end is done but the local client keeps its end open (curl's pooled connection
      // to an etcd member that restarted): the server's CHANNEL_CLOSE and anything else for this
      // session still arrive. A read processes them (libssh2 reads the transport first); without
      // one they would sit in the socket, every wait for it to be readable would return at once,
      // and the event loop would spin at 100% of a core until the client let go.
      ssize_t n = libssh2_channel_read(ch_, buf_, sizeof buf_);
      if (n < 0 && n != LIBSSH2_ERROR_EAGAIN && s.fatal(static_cast<int>(n))) return Step::done;
    }
    write_local();
    // Local → channel.
    while (!from_local_.empty()) {
      ssize_t n = libssh2_channel_write(ch_, from_local_.data(), from_local_.size());
      if (n == LIBSSH2_ERROR_EAGAIN) break;
      if (n < 0) {
        if (s.fatal(static_cast<int>(n))) return Step::done;
        from_local_.clear();
        local_eof_ = true;
        break;
      }
      from_local_.erase(0, static_cast<size_t>(n));
      progress = true;
    }
    if (from_local_.empty() && !reading_ && !local_eof_) read_local();
    if (local_eof_ && from_local_.empty() && !eof_sent_) {
      int rc = libssh2_channel_send_eof(ch_);
      if (rc == 0 || !s.would_block(rc)) eof_sent_ = true;
    }
    if (channel_eof_ && to_local_.empty() && !writing_ && local_eof_) return shutdown(s);
    if (channel_eof_ && to_local_.empty() && !writing_ && !local_shut_) {
      boost::system::error_code ec;
      local_.shutdown(Local::shutdown_send, ec);
      local_shut_ = true;
    }
    return progress ? Step::progressed : Step::blocked;
  }

  void abort(const Failure& f) override {
    Failure g = f;
    g.not_sent = !ch_;  // the channel never opened: nothing of the local client's was sent
    notify(g);
    ch_ = nullptr;
    done_ = true;
    close_local();
  }

 private:
  // Closed as asio leaves it registered with epoll otherwise: asio's close() skips the
  // EPOLL_CTL_DEL (closing a descriptor removes it), but the local end may be a duplicate
  // (ssh.tunnel keeps the client's connection to try again on a new session), and while another
  // descriptor holds the connection open the registration would outlive this socket and report its
  // events to freed memory. release() deregisters first.
  void close_local() {
    boost::system::error_code ec;
    int fd = local_.is_open() ? local_.release(ec) : -1;
    if (fd >= 0) ::close(fd);
  }

  void notify(Result r) {
    if (auto o = std::move(opened_)) {
      opened_ = nullptr;
      o(std::move(r));
    }
  }

  Step shutdown(Session& s) {
    if (ch_) {
      int rc = libssh2_channel_free(ch_);
      if (s.would_block(rc)) return Step::blocked;
      ch_ = nullptr;
    }
    done_ = true;
    close_local();
    return Step::done;
  }

  void kick() {
    if (auto s = session_.lock()) s->kick();
  }

  void read_local() {
    if (reading_ || local_eof_ || done_) return;
    reading_ = true;
    auto self = shared_from_this();
    local_.async_read_some(boost::asio::buffer(in_buf_), [self](const boost::system::error_code& ec, size_t n) {
      self->reading_ = false;
      if (self->done_) return;
      if (ec) self->local_eof_ = true;
      else self->from_local_.append(self->in_buf_, n);
      self->kick();
    });
  }

  void write_local() {
    if (writing_ || to_local_.empty() || done_) return;
    writing_ = true;
    out_buf_ = std::move(to_local_);
    to_local_.clear();
    auto self = shared_from_this();
    boost::asio::async_write(local_, boost::asio::buffer(out_buf_), [self](const boost::system::error_code& ec, size_t) {
      self->writing_ = false;
      if (self->done_) return;
      if (ec) self->local_eof_ = true, self->channel_eof_ = true, self->to_local_.clear();
      self->kick();
    });
  }

  std::weak_ptr<Session> session_;
  std::string host_;
  int port_;
  Local local_;
  std::function<void(Result)> opened_;
  LIBSSH2_CHANNEL* ch_ = nullptr;
  bool done_ = false, reading_ = false, writing_ = false;
  bool channel_eof_ = false, local_eof_ = false, eof_sent_ = false, local_shut_ = false;
  std::string to_local_, out_buf_, from_local_;
  char buf_[32768];
  char in_buf_[32768];
};

}  // namespace

void bridge(const std::shared_ptr<Session>& s, const std::string& host, int port, Local local,
            std::function<void(Result)> opened) {
  s->add(std::make_shared<BridgeOp>(s, host, port, std::move(local), std::move(opened)));
}

}  // namespace engine::ssh
