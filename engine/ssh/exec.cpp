#include "engine/ssh/exec.hpp"

#include <boost/asio/post.hpp>
#include <chrono>

#include "engine/core/seconds.hpp"
#include "engine/ssh/session.hpp"

namespace engine::ssh {

namespace {

using Clock = std::chrono::steady_clock;

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%gs", s);
  return buf;
}

class ExecOp : public Op, public std::enable_shared_from_this<ExecOp> {
 public:
  ExecOp(Session& s, ExecRequest req, std::function<void(ExecResult, Result)> done)
      : io_(s.io()), req_(std::move(req)), done_(std::move(done)), timer_(s.io()), start_(Clock::now()) {}

  void arm_deadline(const std::shared_ptr<Session>& s) {
    if (req_.timeout <= 0) return;
    timer_.expires_after(steady_seconds(req_.timeout));
    std::weak_ptr<ExecOp> weak = shared_from_this();
    std::weak_ptr<Session> ws = s;
    timer_.async_wait([weak, ws](const boost::system::error_code& ec) {
      auto self = weak.lock();
      auto session = ws.lock();
      if (ec || !self || !session || self->finished_) return;
      self->expire(*session);
    });
  }

  void cancel(const std::shared_ptr<Session>& s) {
    if (finished_ || !s) return;
    expire(*s);
  }

  // The deadline passed (or the caller gave up): the caller hears "timeout" now; closing and
  // freeing the channel go on in the background, holding the channel slot until the server lets go.
  void expire(Session& s) {
    timed_out_ = true;
    complete(Failure{Error::timeout, "still running after " + seconds(req_.timeout) + "; channel closed"});
    s.kick();
  }

  Step step(Session& s) override {
    if (finished_ && stage_ != Stage::freeing) return Step::done;
    auto* raw = s.raw();
    if (stage_ == Stage::slot) {
      if (timed_out_) return Step::done;
      if (!s.take_channel()) return Step::blocked;  // kicked when a slot frees
      has_slot_ = true;
      stage_ = Stage::open;
    }
    if (timed_out_ && stage_ < Stage::closing) {
      if (!ch_) return finish(s, std::nullopt);  // never opened: just give the slot back
      stage_ = Stage::closing;
    }
    if (stage_ == Stage::open) {
      ch_ = libssh2_channel_open_session(raw);
      if (!ch_) {
        int rc = libssh2_session_last_errno(raw);
        if (s.would_block(rc)) return Step::blocked;
        if (s.fatal(rc)) return Step::done;
        return finish(s, Failure{Error::failed, "cannot open a channel: " + s.last_error()});
      }
      stage_ = Stage::start;
    }
    if (stage_ == Stage::start) {
      int rc = libssh2_channel_process_startup(ch_, "exec", 4, req_.command.data(), static_cast<unsigned>(req_.command.size()));
      if (s.would_block(rc)) return Step::blocked;
      if (s.fatal(rc)) return Step::done;
      if (rc != 0) return finish(s, Failure{Error::failed, "exec refused: " + s.last_error()});
      stage_ = Stage::io;
    }
    if (stage_ == Stage::io) {
      bool progress = false;
      // stdin first, as far as the window allows; EOF once it is all sent.
      while (written_ < req_.input.size()) {
        ssize_t n = libssh2_channel_write(ch_, req_.input.data() + written_, req_.input.size() - written_);
        if (n == LIBSSH2_ERROR_EAGAIN) break;
        if (n < 0) {
          if (s.fatal(static_cast<int>(n))) return Step::done;
          written_ = req_.input.size();  // the command closed its stdin early; that is its business
          break;
        }
        written_ += static_cast<size_t>(n);
        progress = true;
      }
      if (written_ >= req_.input.size() && !eof_sent_) {
        int rc = libssh2_channel_send_eof(ch_);
        if (rc == 0) eof_sent_ = true, progress = true;
        else if (!s.would_block(rc) && s.fatal(rc)) return Step::done;
        else if (!s.would_block(rc)) eof_sent_ = true;
      }
      // Both streams every time: a full stderr window must never stall stdout, or the reverse.
      for (int stream : {0, SSH_EXTENDED_DATA_STDERR}) {
        for (;;) {
          ssize_t n = libssh2_channel_read_ex(ch_, stream, buf_, sizeof buf_);
          if (n == LIBSSH2_ERROR_EAGAIN || n == 0) break;
          if (n < 0) {
            if (s.fatal(static_cast<int>(n))) return Step::done;
            break;
          }
          take(stream != 0, std::string_view(buf_, static_cast<size_t>(n)));
          progress = true;
        }
      }
      if (libssh2_channel_eof(ch_)) {
        flush_lines();
        stage_ = Stage::closing;
      } else {
        return progress ? Step::progressed : Step::blocked;
      }
    }
    if (stage_ == Stage::closing) {
      int rc = libssh2_channel_close(ch_);
      if (s.would_block(rc)) return Step::blocked;
      if (s.fatal(rc)) return Step::done;
      stage_ = timed_out_ ? Stage::freeing : Stage::wait_closed;
    }
    if (stage_ == Stage::wait_closed) {
      int rc = libssh2_channel_wait_closed(ch_);
      if (s.would_block(rc)) return Step::blocked;
      if (s.fatal(rc)) return Step::done;
      result_.code = libssh2_channel_get_exit_status(ch_);
      char* sig = nullptr;
      size_t siglen = 0;
      libssh2_channel_get_exit_signal(ch_, &sig, &siglen, nullptr, nullptr, nullptr, nullptr);
      if (sig) {
        result_.signal.assign(sig, siglen);
        result_.code = -1;
        libssh2_free(raw, sig);
      }
      stage_ = Stage::freeing;
    }
    if (stage_ == Stage::freeing) {
      int rc = libssh2_channel_free(ch_);
      if (s.would_block(rc)) return Step::blocked;
      ch_ = nullptr;
      if (finished_) {
        if (has_slot_) s.give_channel(), has_slot_ = false;
        return Step::done;
      }
      return finish(s, std::nullopt);
    }
    return Step::blocked;
  }

  void abort(const Failure& f) override {
    if (finished_) {
      ch_ = nullptr;  // freed with the session
      return;
    }
    ch_ = nullptr;  // freed with the session
    has_slot_ = false;
    Failure g = f;
    // Before the channel's confirmation the command has not been sent (it goes in the request after).
    g.not_sent = stage_ == Stage::slot || stage_ == Stage::open;
    complete(g);
  }

 private:
  enum class Stage { slot, open, start, io, closing, wait_closed, freeing };

  void take(bool is_err, std::string_view data) {
    std::string& dst = is_err ? result_.err : result_.out;
    size_t room = dst.size() < req_.max_output ? req_.max_output - dst.size() : 0;
    if (data.size() > room) result_.truncated = true;
    dst.append(data.substr(0, room));
    if (!req_.on_line) return;
    // Streamed lines obey max_output too (per stream): past it they are counted and dropped, so a
    // command's flood cannot flood the console and the run log. A line longer than kLongLine is
    // shown in pieces, so an endless line cannot grow this buffer either.
    size_t& shown = is_err ? err_shown_ : out_shown_;
    size_t& dropped = is_err ? err_dropped_ : out_dropped_;
    if (shown >= req_.max_output) {
      dropped += data.size();
      return;
    }
    std::string& pending = is_err ? err_line_ : out_line_;
    pending.append(data);
    size_t start = 0;
    for (;;) {
      size_t nl = pending.find('\n', start);
      size_t end = nl == std::string::npos ? pending.size() : nl;
      if (nl == std::string::npos && end - start < kLongLine) break;
      if (end - start > kLongLine) end = start + kLongLine, nl = end - 1;
      if (shown + (end - start) > req_.max_output) {
        result_.truncated = true;
        dropped += pending.size() - start;
        shown = req_.max_output;
        start = pending.size();
        break;
      }
      shown += end - start + 1;
      req_.on_line(is_err, std::string_view(pending).substr(start, end - start));
      start = nl + 1;
    }
    pending.erase(0, start);
  }

  void flush_lines() {
    if (!req_.on_line) return;
    if (!out_line_.empty()) req_.on_line(false, out_line_);
    if (!err_line_.empty()) req_.on_line(true, err_line_);
    out_line_.clear();
    err_line_.clear();
    for (bool is_err : {false, true}) {
      size_t dropped = is_err ? err_dropped_ : out_dropped_;
      if (dropped) req_.on_line(is_err, "[" + std::to_string(dropped) + " more bytes not shown: max_output]");
    }
  }

  static constexpr size_t kLongLine = 64 * 1024;

  Step finish(Session& s, Result failure) {
    if (has_slot_) s.give_channel(), has_slot_ = false;
    if (!finished_) complete(std::move(failure));
    return Step::done;
  }

  void complete(Result failure) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    result_.duration = std::chrono::duration<double>(Clock::now() - start_).count();
    // On the next turn: the caller may start more work on this session from its callback.
    asio::post(io_, [done = std::move(done_), r = std::move(result_), f = std::move(failure)]() mutable {
      done(std::move(r), std::move(f));
    });
  }

  asio::io_context& io_;
  ExecRequest req_;
  std::function<void(ExecResult, Result)> done_;
  asio::steady_timer timer_;
  Clock::time_point start_;
  Stage stage_ = Stage::slot;
  LIBSSH2_CHANNEL* ch_ = nullptr;
  ExecResult result_;
  size_t written_ = 0;
  bool eof_sent_ = false, has_slot_ = false, timed_out_ = false, finished_ = false;
  std::string out_line_, err_line_;
  size_t out_shown_ = 0, err_shown_ = 0, out_dropped_ = 0, err_dropped_ = 0;
  char buf_[32768];
};

}  // namespace

std::function<void()> exec(const std::shared_ptr<Session>& s, ExecRequest req,
                           std::function<void(ExecResult, Result)> done) {
  auto op = std::make_shared<ExecOp>(*s, std::move(req), std::move(done));
  op->arm_deadline(s);
  s->add(op);
  std::weak_ptr<ExecOp> weak = op;
  std::weak_ptr<Session> ws = s;
  return [weak, ws] {
    if (auto o = weak.lock()) o->cancel(ws.lock());
  };
}

std::string shell_quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

}  // namespace engine::ssh
