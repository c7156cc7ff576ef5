// What the engine derives from files and may keep between runs on this machine (the static
// check's findings): a small file per entry, named by the SHA-256 of everything it was derived
// from. Best effort: an entry that cannot be read, written or trusted is a miss, never an error.
// The directory: $ENGINE_CACHE_DIR (set and empty: no cache), else $XDG_CACHE_HOME/engine, else
// $HOME/.cache/engine; made 0700, and used only when it is ours and not a symlink.
#pragma once
#include <optional>
#include <string>

namespace engine::file_cache {

// "" when there is no cache (ENGINE_CACHE_DIR empty, no HOME).
std::string dir();
// The entry `kind`-`key` (key: lowercase hex), or nullopt.
std::optional<std::string> get(const std::string& kind, const std::string& key);
// Replaces the entry atomically (a temporary renamed over it). Past kMaxEntries, the oldest go.
void put(const std::string& kind, const std::string& key, const std::string& value);
constexpr size_t kMaxEntries = 256;

// What a file is now, for a key or an entry's check of what it depended on: its size and
// modification time in nanoseconds ("size:mtime"), or "-" when nothing is there.
std::string stat_signature(const std::string& path);

}  // namespace engine::file_cache
