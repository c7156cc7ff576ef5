// An etcd snapshot taken over the v3 JSON gateway: the stream of {"result":{"blob":"<base64>"}}
// objects is decoded into PATH.part as it arrives, the sha256 trailer etcd appends is checked,
// the file is fsynced, renamed to PATH and the directory fsynced. A cut stream or a bad trailer
// leaves nothing at PATH.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/http/client.hpp"

namespace engine::etcd {

struct SnapshotResult {
  uint64_t size = 0;       // bytes written, trailer included (as etcdctl writes it)
  std::string sha256;      // hex, of the whole file
  std::string error;       // "" on success
  std::string error_word;  // "timeout", "unreachable", "cut", "corrupt", "failed"
};

// Streams /v3/maintenance/snapshot from `endpoint` (https://host:2379) into `path` (mode 0600,
// created without following anything placed at PATH.part). A stream with no byte for
// idle_timeout seconds fails as "timeout"; there is no total timeout.
std::function<void()> snapshot(http::Client& client, const std::string& endpoint, const http::Tls& tls, const std::string& path,
                               std::function<void(SnapshotResult)> done, double idle_timeout = 60);

// A snapshot file on this machine, read whole: the sha256 of everything before its last 32 bytes
// must be those bytes (the trailer etcd appends, which etcdutl snapshot restore checks). error_word
// "not found" (cannot be opened: message says why) or "corrupt" (too short, or the trailer does
// not match: a cut copy, a file that is no snapshot, or a database file copied out of a data
// directory, which carries no trailer).
SnapshotResult check_snapshot_file(const std::string& path);

}  // namespace engine::etcd
