// Old etcd snapshots the runbooks took, removed once a new one is kept: a machine or a claim that
// keeps every snapshot fills up (an etcd database is up to its quota, 2 GiB by default, and each
// upgrade or migration takes one), and the next snapshot then fails before anything changes.
#pragma once
#include <string>
#include <vector>

namespace engine::etcd {

struct Pruned {
  std::vector<std::string> removed;  // paths, oldest first (after an error: those removed before it)
  std::vector<std::string> kept;     // paths: the one just taken, then the newest first
  std::string error;                 // "" or what stopped it: removing stops at the first that fails
};

// The snapshots in `dir` (regular files named etcd-*.db directly in it; a .part, a symlink or any
// other file is not one) beyond the `keep` newest (by modification time, then name). `newest`, the
// snapshot just taken, is always kept. remove=false lists without removing (a dry run). keep >= 1.
Pruned prune_snapshots(const std::string& dir, size_t keep, const std::string& newest, bool remove);

}  // namespace engine::etcd
