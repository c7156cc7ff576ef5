#include "engine/etcd/retention.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <tuple>

namespace engine::etcd {

Pruned prune_snapshots(const std::string& dir, size_t keep, const std::string& newest, bool remove) {
  namespace fs = std::filesystem;
  Pruned out;
  struct Snap {
    std::string path;
    timespec mtime;
  };
  std::vector<Snap> snaps;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.size() < 9 || name.rfind("etcd-", 0) != 0 || name.compare(name.size() - 3, 3, ".db") != 0) continue;
    struct stat st {};
    // lstat: a symlink named like a snapshot is someone else's, never followed nor removed.
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    snaps.push_back({it->path().string(), st.st_mtim});
  }
  if (ec) {
    out.error = "listing " + dir + ": " + ec.message();
    return out;
  }
  std::sort(snaps.begin(), snaps.end(), [](const Snap& a, const Snap& b) {
    return std::tie(a.mtime.tv_sec, a.mtime.tv_nsec, a.path) > std::tie(b.mtime.tv_sec, b.mtime.tv_nsec, b.path);
  });
  auto normal = [](const std::string& p) { return fs::path(p).lexically_normal().string(); };
  std::string just_taken = newest.empty() ? "" : normal(newest);
  bool has_new = std::any_of(snaps.begin(), snaps.end(), [&](const Snap& s) { return normal(s.path) == just_taken; });
  // The one just taken is kept whatever its time (a clock set back), and counts among the keep.
  size_t room = keep;
  if (has_new) {
    out.kept.push_back(newest);
    room = keep > 0 ? keep - 1 : 0;
  }
  for (const auto& s : snaps) {
    if (has_new && normal(s.path) == just_taken) continue;
    if (room > 0) {
      out.kept.push_back(s.path);
      --room;
    } else {
      out.removed.push_back(s.path);
    }
  }
  std::reverse(out.removed.begin(), out.removed.end());
  if (!remove) return out;
  for (size_t i = 0; i < out.removed.size(); ++i) {
    if (::unlink(out.removed[i].c_str()) != 0 && errno != ENOENT) {
      out.error = "removing " + out.removed[i] + ": " + std::strerror(errno);
      out.removed.resize(i);  // what was removed before it
      return out;
    }
  }
  return out;
}

}  // namespace engine::etcd
