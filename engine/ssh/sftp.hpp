// Files over SFTP, each operation on an SFTP channel of its own. Uploads are atomic: the data goes
// to a temporary name beside the destination, is fsynced, and is renamed over it by the node
// (`mv -f`, since OpenSSH's SFTP rename refuses to replace an existing file).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/ssh/error.hpp"

namespace engine::ssh {

class Session;

struct FileInfo {
  uint64_t size = 0;
  unsigned mode = 0;  // permission bits
  unsigned uid = 0, gid = 0;
  uint64_t mtime = 0;
  std::string type;  // "file", "dir", "link", "other"
};

// Writes `data` (or the local file `local_path` when data is nullopt) to remote_tmp over SFTP,
// fsyncs it and sets its mode. The caller renames it into place.
// `cancelled`, when given and set, stops the transfer at its next step (kick the session): it then
// reports Error::failed "cancelled", and a download leaves nothing at local_path.
void sftp_put(const std::shared_ptr<Session>& s, std::optional<std::string> data, std::string local_path,
              std::string remote_tmp, unsigned mode, std::function<void(uint64_t bytes, Result)> done,
              std::shared_ptr<const bool> cancelled = nullptr);

// Reads a remote file into memory (at most max_bytes) or into local_path (through local_path.part,
// created with local_mode whatever the umask, fsynced and renamed, so a cut transfer leaves nothing
// at local_path).
void sftp_get(const std::shared_ptr<Session>& s, std::string remote, std::string local_path, uint64_t max_bytes,
              std::function<void(std::string data, uint64_t bytes, Result)> done,
              std::shared_ptr<const bool> cancelled = nullptr, unsigned local_mode = 0600);

// stat (lstat when follow is false); a missing file is Error::not_found.
void sftp_stat(const std::shared_ptr<Session>& s, std::string remote, bool follow,
               std::function<void(FileInfo, Result)> done);

}  // namespace engine::ssh
