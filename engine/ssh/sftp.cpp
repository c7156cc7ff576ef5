#include "engine/ssh/sftp.hpp"

#include <fcntl.h>
#include <libssh2_sftp.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cstring>
#include <filesystem>

#include "engine/core/safe_file.hpp"
#include "engine/ssh/session.hpp"

namespace engine::ssh {

namespace {

// What every SFTP operation shares: a slot, the subsystem channel, and its teardown.
class SftpOp : public Op {
 protected:
  enum class Base { slot, init, work, close_handle, shutdown, done };

  // Returns blocked/progressed while setting up; Step::done on failure (already reported).
  std::optional<Step> setup(Session& s) {
    if (base_ == Base::slot) {
      if (!s.take_channel()) return Step::blocked;
      has_slot_ = true;
      base_ = Base::init;
    }
    if (base_ == Base::init) {
      sftp_ = libssh2_sftp_init(s.raw());
      if (!sftp_) {
        int rc = libssh2_session_last_errno(s.raw());
        if (s.would_block(rc)) return Step::blocked;
        if (s.fatal(rc)) return Step::done;
        fail_now(s, Failure{Error::failed, "sftp subsystem refused: " + s.last_error()});
        return Step::done;
      }
      base_ = Base::work;
    }
    return std::nullopt;
  }

  // The caller stopped waiting: nothing more is transferred, renamed or committed.
  bool cancelled() const { return cancelled_ && *cancelled_; }

 public:
  std::shared_ptr<const bool> cancelled_;

 protected:
  Failure sftp_failure(Session& s, const std::string& what) {
    unsigned long code = sftp_ ? libssh2_sftp_last_error(sftp_) : 0;
    if (code == LIBSSH2_FX_NO_SUCH_FILE || code == LIBSSH2_FX_NO_SUCH_PATH) return {Error::not_found, what + ": no such file"};
    if (code == LIBSSH2_FX_PERMISSION_DENIED) return {Error::permission_denied, what + ": permission denied"};
    return {Error::failed, what + ": " + s.last_error() + " (sftp status " + std::to_string(code) + ")"};
  }

  // Closes the handle (if any) and the subsystem, then reports. Call from step() until it is done.
  Step teardown(Session& s) {
    if (base_ == Base::work) base_ = Base::close_handle;
    if (base_ == Base::close_handle) {
      if (handle_) {
        int rc = libssh2_sftp_close_handle(handle_);
        if (s.would_block(rc)) return Step::blocked;
        handle_ = nullptr;
      }
      base_ = Base::shutdown;
    }
    if (base_ == Base::shutdown) {
      if (sftp_) {
        int rc = libssh2_sftp_shutdown(sftp_);
        if (s.would_block(rc)) return Step::blocked;
        sftp_ = nullptr;
      }
      base_ = Base::done;
    }
    if (has_slot_) s.give_channel(), has_slot_ = false;
    report(outcome_);
    return Step::done;
  }

  void fail_now(Session& s, Failure f) {
    outcome_ = std::move(f);
    if (has_slot_) s.give_channel(), has_slot_ = false;
    report(outcome_);
  }

 public:
  void abort(const Failure& f) override {
    sftp_ = nullptr;
    handle_ = nullptr;
    has_slot_ = false;
    Failure g = f;
    // Before the subsystem answered its init, no file request has been sent.
    g.not_sent = base_ == Base::slot || base_ == Base::init;
    report(g);
  }

 protected:
  virtual void report(Result r) = 0;

  Base base_ = Base::slot;
  LIBSSH2_SFTP* sftp_ = nullptr;
  LIBSSH2_SFTP_HANDLE* handle_ = nullptr;
  bool has_slot_ = false;
  Result outcome_;
};

class PutOp : public SftpOp {
 public:
  PutOp(asio::io_context& io, std::optional<std::string> data, std::string local, std::string remote, unsigned mode,
        std::function<void(uint64_t, Result)> done)
      : io_(io), data_(std::move(data)), local_(std::move(local)), remote_(std::move(remote)), mode_(mode), done_(std::move(done)) {}
  ~PutOp() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Step step(Session& s) override {
    if (!done_) return Step::done;
    if (auto st = setup(s)) return *st;
    if (base_ != Base::work) return teardown(s);
    if (cancelled()) {
      outcome_ = Failure{Error::failed, "cancelled"};
      return teardown(s);
    }
    if (stage_ == Stage::open) {
      if (!data_) {
        fd_ = ::open(local_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) return fail(s, Failure{Error::not_found, "local file " + local_ + ": " + std::strerror(errno)});
      }
      handle_ = libssh2_sftp_open_ex(sftp_, remote_.c_str(), static_cast<unsigned>(remote_.size()),
                                     LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC, 0600, LIBSSH2_SFTP_OPENFILE);
      if (!handle_) {
        int rc = libssh2_session_last_errno(s.raw());
        if (s.would_block(rc)) return Step::blocked;
        if (s.fatal(rc)) return Step::done;
        return fail(s, sftp_failure(s, "create " + remote_));
      }
      stage_ = Stage::write;
    }
    if (stage_ == Stage::write) {
      bool progress = false;
      for (;;) {
        if (pos_ == buf_.size()) {
          if (!fill()) return fail(s, Failure{Error::failed, "read " + local_ + ": " + std::strerror(errno)});
          if (buf_.empty()) break;
        }
        // libssh2 pipelines a large write into many SFTP packets; it must be called again with the
        // same data after EAGAIN.
        ssize_t n = libssh2_sftp_write(handle_, buf_.data() + pos_, buf_.size() - pos_);
        if (n == LIBSSH2_ERROR_EAGAIN) return progress ? Step::progressed : Step::blocked;
        if (n < 0) {
          if (s.fatal(static_cast<int>(n))) return Step::done;
          return fail(s, sftp_failure(s, "write " + remote_));
        }
        pos_ += static_cast<size_t>(n);
        bytes_ += static_cast<uint64_t>(n);
        progress = true;
      }
      stage_ = Stage::fsync;
    }
    if (stage_ == Stage::fsync) {
      int rc = libssh2_sftp_fsync(handle_);
      if (s.would_block(rc)) return Step::blocked;
      if (s.fatal(rc)) return Step::done;
      // A server without fsync@openssh.com: the rename still makes the file appear whole.
      stage_ = Stage::chmod;
    }
    if (stage_ == Stage::chmod) {
      LIBSSH2_SFTP_ATTRIBUTES attrs{};
      attrs.flags = LIBSSH2_SFTP_ATTR_PERMISSIONS;
      attrs.permissions = mode_;
      int rc = libssh2_sftp_fsetstat(handle_, &attrs);
      if (s.would_block(rc)) return Step::blocked;
      if (s.fatal(rc)) return Step::done;
      if (rc != 0) return fail(s, sftp_failure(s, "chmod " + remote_));
      stage_ = Stage::finished;
    }
    return teardown(s);
  }

 private:
  enum class Stage { open, write, fsync, chmod, finished };

  // Refills buf_ from the data or the local file; an empty buffer means the end.
  bool fill() {
    pos_ = 0;
    if (data_) {
      if (data_off_ == 0 && !data_->empty()) {
        buf_ = std::move(*data_);
        data_off_ = 1;
      } else {
        buf_.clear();
      }
      return true;
    }
    buf_.resize(1 << 20);
    ssize_t n = ::read(fd_, buf_.data(), buf_.size());
    if (n < 0) return false;
    buf_.resize(static_cast<size_t>(n));
    return true;
  }

  Step fail(Session& s, Failure f) {
    outcome_ = std::move(f);
    return teardown(s);
  }

  void report(Result r) override {
    if (!done_) return;
    asio::post(io_, [d = std::move(done_), b = bytes_, r = std::move(r)] { d(b, r); });
    done_ = nullptr;
  }

  asio::io_context& io_;
  std::optional<std::string> data_;
  std::string local_, remote_;
  unsigned mode_;
  std::function<void(uint64_t, Result)> done_;
  Stage stage_ = Stage::open;
  int fd_ = -1;
  std::string buf_;
  size_t pos_ = 0, data_off_ = 0;
  uint64_t bytes_ = 0;
};

class GetOp : public SftpOp {
 public:
  GetOp(asio::io_context& io, std::string remote, std::string local, uint64_t max,
        std::function<void(std::string, uint64_t, Result)> done)
      : io_(io), remote_(std::move(remote)), local_(std::move(local)), max_(max), done_(std::move(done)) {}
  ~GetOp() override {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink((local_ + ".part").c_str());
    }
  }

  Step step(Session& s) override {
    if (!done_) return Step::done;
    if (auto st = setup(s)) return *st;
    if (base_ != Base::work) return teardown(s);
    if (cancelled()) {  // the .part goes with this Op (its destructor), never renamed
      outcome_ = Failure{Error::failed, "cancelled"};
      return teardown(s);
    }
    if (!handle_) {
      handle_ = libssh2_sftp_open_ex(sftp_, remote_.c_str(), static_cast<unsigned>(remote_.size()), LIBSSH2_FXF_READ, 0,
                                     LIBSSH2_SFTP_OPENFILE);
      if (!handle_) {
        int rc = libssh2_session_last_errno(s.raw());
        if (s.would_block(rc)) return Step::blocked;
        if (s.fatal(rc)) return Step::done;
        return fail(s, sftp_failure(s, "open " + remote_));
      }
      if (!local_.empty()) {
        std::string why;
        fd_ = create_part(local_, local_ + ".part", local_mode_, why);
        if (fd_ < 0) return fail(s, Failure{Error::failed, why});
      }
    }
    bool progress = false;
    for (;;) {
      ssize_t n = libssh2_sftp_read(handle_, buf_, sizeof buf_);
      if (n == LIBSSH2_ERROR_EAGAIN) return progress ? Step::progressed : Step::blocked;
      if (n < 0) {
        if (s.fatal(static_cast<int>(n))) return Step::done;
        return fail(s, sftp_failure(s, "read " + remote_));
      }
      if (n == 0) break;
      progress = true;
      bytes_ += static_cast<uint64_t>(n);
      if (fd_ >= 0) {
        if (::write(fd_, buf_, static_cast<size_t>(n)) != n)
          return fail(s, Failure{Error::failed, "write " + local_ + ".part: " + std::strerror(errno)});
      } else {
        if (bytes_ > max_) return fail(s, Failure{Error::failed, remote_ + " is larger than " + std::to_string(max_) + " bytes"});
        data_.append(buf_, static_cast<size_t>(n));
      }
    }
    if (fd_ >= 0) {
      int fd = fd_;
      fd_ = -1;
      std::string why;
      if (!commit_part(fd, local_ + ".part", local_, why)) return fail(s, Failure{Error::failed, why});
    }
    return teardown(s);
  }

 private:
  Step fail(Session& s, Failure f) {
    outcome_ = std::move(f);
    return teardown(s);
  }

  void report(Result r) override {
    if (!done_) return;
    asio::post(io_, [d = std::move(done_), data = std::move(data_), b = bytes_, r = std::move(r)]() mutable {
      d(std::move(data), b, r);
    });
    done_ = nullptr;
  }

  asio::io_context& io_;
  std::string remote_, local_;
  uint64_t max_;
  std::function<void(std::string, uint64_t, Result)> done_;

 public:
  unsigned local_mode_ = 0600;

 private:
  int fd_ = -1;
  std::string data_;
  uint64_t bytes_ = 0;
  char buf_[1 << 16];
};

class StatOp : public SftpOp {
 public:
  StatOp(asio::io_context& io, std::string remote, bool follow, std::function<void(FileInfo, Result)> done)
      : io_(io), remote_(std::move(remote)), follow_(follow), done_(std::move(done)) {}

  Step step(Session& s) override {
    if (!done_) return Step::done;
    if (auto st = setup(s)) return *st;
    if (base_ != Base::work) return teardown(s);
    LIBSSH2_SFTP_ATTRIBUTES a{};
    int rc = libssh2_sftp_stat_ex(sftp_, remote_.c_str(), static_cast<unsigned>(remote_.size()),
                                  follow_ ? LIBSSH2_SFTP_STAT : LIBSSH2_SFTP_LSTAT, &a);
    if (s.would_block(rc)) return Step::blocked;
    if (s.fatal(rc)) return Step::done;
    if (rc != 0) {
      outcome_ = sftp_failure(s, "stat " + remote_);
      return teardown(s);
    }
    info_.size = a.filesize;
    info_.mode = a.permissions & 07777;
    info_.uid = static_cast<unsigned>(a.uid);
    info_.gid = static_cast<unsigned>(a.gid);
    info_.mtime = a.mtime;
    auto t = a.permissions & LIBSSH2_SFTP_S_IFMT;
    info_.type = t == LIBSSH2_SFTP_S_IFREG ? "file" : t == LIBSSH2_SFTP_S_IFDIR ? "dir" : t == LIBSSH2_SFTP_S_IFLNK ? "link" : "other";
    return teardown(s);
  }

 private:
  void report(Result r) override {
    if (!done_) return;
    asio::post(io_, [d = std::move(done_), i = info_, r = std::move(r)] { d(i, r); });
    done_ = nullptr;
  }

  asio::io_context& io_;
  std::string remote_;
  bool follow_;
  std::function<void(FileInfo, Result)> done_;
  FileInfo info_;
};

}  // namespace

void sftp_put(const std::shared_ptr<Session>& s, std::optional<std::string> data, std::string local_path,
              std::string remote_tmp, unsigned mode, std::function<void(uint64_t, Result)> done,
              std::shared_ptr<const bool> cancelled) {
  auto op = std::make_shared<PutOp>(s->io(), std::move(data), std::move(local_path), std::move(remote_tmp), mode, std::move(done));
  op->cancelled_ = std::move(cancelled);
  s->add(op);
}

void sftp_get(const std::shared_ptr<Session>& s, std::string remote, std::string local_path, uint64_t max_bytes,
              std::function<void(std::string, uint64_t, Result)> done, std::shared_ptr<const bool> cancelled,
              unsigned local_mode) {
  auto op = std::make_shared<GetOp>(s->io(), std::move(remote), std::move(local_path), max_bytes, std::move(done));
  op->cancelled_ = std::move(cancelled);
  op->local_mode_ = local_mode;
  s->add(op);
}

void sftp_stat(const std::shared_ptr<Session>& s, std::string remote, bool follow, std::function<void(FileInfo, Result)> done) {
  s->add(std::make_shared<StatOp>(s->io(), std::move(remote), follow, std::move(done)));
}

}  // namespace engine::ssh
