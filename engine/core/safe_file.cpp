#include "engine/core/safe_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace engine {

namespace {

// "" when nothing is at p or a regular file is; else why we will not write there.
std::string not_regular(const std::string& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return "";
  if (S_ISLNK(st.st_mode)) return "refusing to write through the symlink at " + p;
  if (!S_ISREG(st.st_mode)) return "refusing to write over " + p + ": it is not a regular file";
  return "";
}

}  // namespace

int create_part(const std::string& path, const std::string& part, mode_t mode, std::string& error) {
  if (auto why = not_regular(path); !why.empty()) return error = why, -1;
  if (auto why = not_regular(part); !why.empty()) return error = why, -1;
  ::unlink(part.c_str());  // a regular file left by an earlier run
  int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    // EEXIST: someone put something there between the unlink and the open.
    error = "cannot create " + part + ": " + std::strerror(errno);
    return -1;
  }
  ::fchmod(fd, mode);  // the umask does not decide who reads a snapshot
  return fd;
}

bool commit_part(int fd, const std::string& part, const std::string& path, std::string& error) {
  bool synced = ::fsync(fd) == 0;
  int sync_errno = errno;
  ::close(fd);
  if (!synced) {
    ::unlink(part.c_str());
    return error = "fsync " + part + ": " + std::strerror(sync_errno), false;
  }
  if (auto why = not_regular(path); !why.empty()) {
    ::unlink(part.c_str());
    return error = why, false;
  }
  if (::rename(part.c_str(), path.c_str()) != 0) {
    error = "rename " + part + " to " + path + ": " + std::strerror(errno);
    ::unlink(part.c_str());
    return false;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) ::fsync(dfd), ::close(dfd);
  return true;
}

}  // namespace engine
