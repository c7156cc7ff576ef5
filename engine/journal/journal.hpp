// The step journal of a run: append-only, one record per line, each with a CRC32 of its JSON and
// its sequence number (a record missing in the middle is a gap, and refuses the journal).
// INTENT is on disk before a step's first side effect, DONE (with the step's result) or FAILED
// after. Reopening it for `engine resume` reads every record; a torn or corrupt last record is
// reported and ignored, never trusted; a corrupt record before the last one refuses the journal.
#pragma once
#include <functional>
#include <map>
#include <memory>
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
  void intent(const std::string& key);  // on disk before returning, or (with a loop) before committed()
  void done(const std::string& key, const nlohmann::json& result);
  void failed(const std::string& key, const std::string& error);
  size_t records() const { return records_; }

  // Where records are made durable. By default each record is fdatasync'ed before append returns,
  // holding the caller. With a loop (`engine run`), the fdatasync runs on a thread of the
  // journal's own instead, and covers every record written by the time it starts: the records of
  // several hosts' steps share one (group commit), and no host waits for another's. A step still
  // goes on only once its record is on disk (committed()/when_committed() below). `post` runs a
  // function on the loop's thread (called from the journal's thread); `hold` keeps the loop from
  // ending while a sync is on its way (released when the journal drops what it returned).
  struct Loop {
    std::function<void(std::function<void()>)> post;
    std::function<std::shared_ptr<void>()> hold;
  };
  void sync_in_background(Loop loop);
  // Stops the thread and syncs what it has not: "" when every record is on disk, else why not.
  std::string finish_sync();

  // A copy kept elsewhere (k8s:// state: the cluster, engine/run/cluster_store). Each record, once
  // written here, is handed over with its number and line (no newline), in order; the copy calls
  // `sent` once it has the record ("") or will not take it (why), in the same order. A step waits
  // for its record's answer before it goes on (bindings/journal.cpp) without holding the event
  // loop, so the copy may send the records of several hosts' steps together.
  using Sent = std::function<void(const std::string& error)>;
  std::function<void(uint64_t seq, const std::string& line, Sent sent)> mirror;
  // Record seq committed: on disk here and in the copy (if there is one). "" when it is, why not
  // when it will not be (a failed fsync, the copy's refusal), nullopt while it is on its way.
  std::optional<std::string> committed(uint64_t seq) const;
  // cb(error) once record seq is committed or will not be (at once when that is known).
  void when_committed(uint64_t seq, Sent cb);
  // The run is over: no more records go to the copy, and no step waits for an answer any more.
  void stop_mirror() {
    mirror = nullptr;
    waiting_.clear();
  }
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
  // The copy's answers: every record up to mirrored_ is in it; from failed_at_ on (0: none) none
  // will be, for failed_.
  void answered(uint64_t seq, const std::string& error);
  uint64_t handed_ = 0, mirrored_ = 0, failed_at_ = 0;
  std::string failed_;
  // The disk's: every record up to synced_ is on it; from sync_failed_at_ on, none is trusted to
  // be (an fsync that failed once may not say so again), for sync_failed_.
  void synced(uint64_t seq, const std::string& error);
  uint64_t synced_ = 0, sync_failed_at_ = 0;
  std::string sync_failed_;
  struct Syncer;
  std::unique_ptr<Syncer> syncer_;
  std::function<std::shared_ptr<void>()> holding_hook_;
  std::shared_ptr<void> holding_;  // the loop's, while a sync is on its way
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for answers posted after the journal is gone
  void wake();  // calls back the steps whose records are now committed (or will not be)
  std::multimap<uint64_t, Sent> waiting_;
};

uint32_t crc32(std::string_view data);

}  // namespace engine::journal
