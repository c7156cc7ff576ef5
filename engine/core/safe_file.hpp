// Files the engine writes on this machine (as root, often: snapshots hold every Secret of a
// cluster): a temporary beside the destination that nothing placed there in advance can redirect,
// then fsync, rename, and an fsync of the directory so the rename survives a crash.
#pragma once
#include <sys/types.h>

#include <string>

namespace engine {

// Creates `part` with O_CREAT|O_EXCL|O_NOFOLLOW and `mode`. A regular file an earlier run left at
// `part` is removed first; a symlink or anything but a regular file at `part` or at `path` is
// refused ("refusing to write through the symlink at ..."). Returns the fd, or -1 with `error`.
int create_part(const std::string& path, const std::string& part, mode_t mode, std::string& error);

// fsyncs and closes fd, renames part to path (refusing a symlink that appeared at path meanwhile,
// and removing part then), fsyncs the directory. false with `error` on any failure.
bool commit_part(int fd, const std::string& part, const std::string& path, std::string& error);

}  // namespace engine
