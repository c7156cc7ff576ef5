// A live run holds DIR/lock (an flock, with its pid written in it) for as long as its process
// lives: the kernel drops the lock when the process ends, however it ends, so `engine runs` and
// `engine ctl` tell a running run from a stopped one without trusting a file left behind.
#pragma once
#include <filesystem>
#include <optional>

namespace engine::run {

class RunLock {
 public:
  // Takes the run's lock; throws ConfigError naming the pid when another process holds it.
  explicit RunLock(const std::filesystem::path& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// The pid of the process running the run in `run_dir`, or nullopt when none is.
std::optional<long> running_pid(const std::filesystem::path& run_dir);

}  // namespace engine::run
