#include "engine/run/lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "engine/core/errors.hpp"

namespace engine::run {

namespace {

long read_pid(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  return n > 0 ? std::strtol(buf, nullptr, 10) : 0;
}

}  // namespace

RunLock::RunLock(const std::filesystem::path& run_dir) {
  auto path = run_dir / "lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0) throw ConfigError("cannot open " + path.string() + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    long pid = read_pid(fd_);
    ::close(fd_);
    fd_ = -1;
    throw ConfigError("run " + run_dir.filename().string() + " is running (pid " + std::to_string(pid) +
                      "): steer it with engine ctl, or wait for it to end");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    throw ConfigError("cannot write " + path.string() + ": " + std::strerror(errno));
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the flock
}

std::optional<long> running_pid(const std::filesystem::path& run_dir) {
  int fd = ::open((run_dir / "lock").c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::optional<long> out;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) out = read_pid(fd);
  ::close(fd);
  return out;
}

}  // namespace engine::run
