// The step journal of a run: append-only, one record per line, each with a CRC32 of its JSON and
// its sequence number (a record missing in the middle is a gap, and refuses the journal).
// INTENT is fsynced before a step's first side effect, DONE (with the step's result) or FAILED
// after. Reopening it for `engine resume` reads every record; a torn or corrupt last record is
// reported and ignored, never trusted; a corrupt record before the last one refuses the journal.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace engine::journal {

struct Entry {
  enum State { intent, done, failed } state = intent;
  nlohmann::json result;  // DONE: the step's results (a JSON array)
  std::string error;      // FAILED: why
  // Wall-clock milliseconds since the epoch of the step's INTENT and of its DONE or FAILED (0: not
  // recorded, as in journals written before timings were). Each record also carries the monotonic
  // clock ("mono", ms), for ordering within one run.
  int64_t started_ms = 0, ended_ms = 0;
};

class Journal {
 public:
  // Opens (creating it if needed) and reads the journal. `warnings` gets what was wrong with its
  // tail, which is then cut off so new records follow the last good one (read_only: left as is,
  // for `engine show`). Throws std::runtime_error when a record in the middle is corrupt.
  Journal(const std::string& path, std::vector<std::string>& warnings, bool read_only = false);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  std::optional<Entry> lookup(const std::string& key) const;
  void intent(const std::string& key);  // fsynced before returning
  void done(const std::string& key, const nlohmann::json& result);
  void failed(const std::string& key, const std::string& error);
  size_t records() const { return records_; }
  // Called with each record's number and line (no newline) before it is written here: a copy kept
  // elsewhere (the cluster, engine/run/cluster_store). When it throws, the record is not written
  // and the step does not start.
  std::function<void(uint64_t seq, const std::string& line)> mirror;
  // Every step with its latest state, in the order the steps first appear (for `engine show`).
  std::vector<std::pair<std::string, Entry>> steps() const;

 private:
  void append(const nlohmann::json& record);
  Entry& slot(const std::string& key);  // the step's entry, remembering the order steps first appear
  int fd_ = -1;
  std::string path_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;  // keys, first appearance first
  size_t records_ = 0;
};

uint32_t crc32(std::string_view data);

}  // namespace engine::journal
