#include "engine/core/file_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace engine::file_cache {

namespace fs = std::filesystem;

std::string dir() {
  if (const char* d = std::getenv("ENGINE_CACHE_DIR")) return d;  // "" turns the cache off
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x == '/') return std::string(x) + "/engine";
  if (const char* h = std::getenv("HOME"); h && *h == '/') return std::string(h) + "/.cache/engine";
  return "";
}

std::string stat_signature(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "-";
  return std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

namespace {

std::string entry_path(const std::string& d, const std::string& kind, const std::string& key) {
  return d + "/" + kind + "-" + key;
}

// A directory of ours (not a symlink to one somewhere else, not another user's): entries someone
// else could write are not read, and none are written there.
bool ours(const std::string& d) {
  struct stat st {};
  return ::lstat(d.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid();
}

// Keeps the directory to kMaxEntries files: the least recently written go first.
void prune(const std::string& d) {
  std::error_code ec;
  std::vector<std::pair<fs::file_time_type, fs::path>> files;
  for (auto& e : fs::directory_iterator(d, ec)) {
    if (!e.is_regular_file(ec)) continue;
    files.emplace_back(e.last_write_time(ec), e.path());
  }
  if (files.size() <= kMaxEntries) return;
  std::sort(files.begin(), files.end());
  for (size_t i = 0; i + kMaxEntries < files.size(); ++i) fs::remove(files[i].second, ec);
}

}  // namespace

std::optional<std::string> get(const std::string& kind, const std::string& key) {
  std::string d = dir();
  if (d.empty() || !ours(d)) return std::nullopt;
  int fd = ::open(entry_path(d, kind, key).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[16384];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (n < 0) return std::nullopt;
  return out;
}

void put(const std::string& kind, const std::string& key, const std::string& value) {
  std::string d = dir();
  if (d.empty()) return;
  std::error_code ec;
  fs::create_directories(d, ec);
  if (!ours(d)) return;
  ::chmod(d.c_str(), 0700);
  std::string path = entry_path(d, kind, key);
  std::string part = path + ".part" + std::to_string(::getpid());
  int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;
  size_t off = 0;
  while (off < value.size()) {
    ssize_t n = ::write(fd, value.data() + off, value.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  // No fsync: an entry cut short by a crash does not parse, and is a miss.
  if (off != value.size() || ::rename(part.c_str(), path.c_str()) != 0) {
    ::unlink(part.c_str());
    return;
  }
  prune(d);
}

}  // namespace engine::file_cache
