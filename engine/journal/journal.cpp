#include "engine/journal/journal.hpp"

#include <chrono>

#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>
#include <sstream>
#include <stdexcept>

namespace engine::journal {

uint32_t crc32(std::string_view data) {
  static uint32_t table[256];
  static bool ready = false;
  if (!ready) {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = true;
  }
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

Journal::Journal(const std::string& path, std::vector<std::string>& warnings, bool read_only) : path_(path) {
  std::string text;
  {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  std::vector<std::string> lines;
  size_t start = 0;
  bool torn = false;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {  // no newline: the write was cut
      torn = true;
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  size_t good_bytes = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    bool ok = line.size() > 9 && line[8] == ' ';
    nlohmann::json rec;
    if (ok) {
      char* end = nullptr;
      uint32_t want = static_cast<uint32_t>(std::strtoul(line.substr(0, 8).c_str(), &end, 16));
      std::string body = line.substr(9);
      ok = crc32(body) == want;
      if (ok) {
        rec = nlohmann::json::parse(body, nullptr, false);
        ok = !rec.is_discarded() && rec.is_object() && rec.contains("t") && rec.contains("step");
      }
    }
    if (!ok) {
      if (i + 1 == lines.size()) {
        warnings.push_back("journal " + path + ": the last record (line " + std::to_string(i + 1) +
                           ") is corrupt; ignored, not trusted");
        torn = false;
        break;
      }
      throw std::runtime_error("journal " + path + ": record " + std::to_string(i + 1) + " of " +
                               std::to_string(lines.size()) + " is corrupt; the journal cannot be trusted");
    }
    // Each record carries its place: a record missing in the middle (a lost DONE that would make a
    // finished step run twice) is a gap, and the journal is not trusted. Older journals have none.
    if (rec.contains("seq") && rec["seq"] != records_ + 1)
      throw std::runtime_error("journal " + path + ": record " + std::to_string(i + 1) + " is number " + rec["seq"].dump() +
                               " where " + std::to_string(records_ + 1) + " was expected: records are missing; the journal cannot be trusted");
    good_bytes += line.size() + 1;
    ++records_;
    std::string key = rec["step"].get<std::string>(), t = rec["t"].get<std::string>();
    Entry& e = slot(key);
    int64_t at = rec.contains("at") && rec["at"].is_number_integer() ? rec["at"].get<int64_t>() : 0;
    if (t == "INTENT") e = Entry{Entry::intent, nullptr, "", at, 0};
    else if (t == "DONE") e = Entry{Entry::done, rec.value("result", nlohmann::json::array()), "", e.started_ms, at};
    else if (t == "FAILED") e = Entry{Entry::failed, nullptr, rec.value("error", ""), e.started_ms, at};
  }
  if (torn) warnings.push_back("journal " + path + ": the last record is torn (written partly before the run stopped); ignored");
  if (read_only) return;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) throw std::runtime_error("journal " + path + ": " + std::strerror(errno));
  // The untrusted tail goes, so new records follow the last good one.
  if (::ftruncate(fd_, static_cast<off_t>(good_bytes)) != 0 || ::lseek(fd_, 0, SEEK_END) < 0)
    throw std::runtime_error("journal " + path + ": " + std::strerror(errno));
}

// The thread that fdatasyncs for a journal with a loop. `want` is the last record written, `done`
// the last one a finished fdatasync covers; `error` the first failure's (kept for finish_sync when
// its answer could not reach the loop).
struct Journal::Syncer {
  std::mutex m;
  std::condition_variable cv;
  uint64_t want = 0, done = 0;
  bool stop = false;
  std::string error;
  std::thread thread;
};

Journal::~Journal() {
  finish_sync();
  *alive_ = false;
  if (fd_ >= 0) ::close(fd_);
}

void Journal::sync_in_background(Loop loop) {
  if (fd_ < 0 || syncer_) return;
  syncer_ = std::make_unique<Syncer>();
  Syncer* s = syncer_.get();
  s->want = s->done = synced_ = records_;
  holding_hook_ = loop.hold;
  s->thread = std::thread([this, s, loop = std::move(loop), alive = alive_, fd = fd_, path = path_] {
    std::unique_lock lk(s->m);
    for (;;) {
      s->cv.wait(lk, [s] { return s->stop || s->want > s->done; });
      if (s->want <= s->done) return;  // stopped, nothing left
      uint64_t target = s->want;  // every record written by now: one fdatasync for them all
      lk.unlock();
      std::string error;
      if (::fdatasync(fd) != 0) error = "journal " + path + ": fsync: " + std::strerror(errno);
      lk.lock();
      s->done = target;
      if (!error.empty() && s->error.empty()) s->error = error;
      loop.post([this, alive, target, error] {
        if (*alive) synced(target, error);
      });
    }
  });
}

std::string Journal::finish_sync() {
  if (!syncer_) return sync_failed_;
  {
    std::lock_guard lk(syncer_->m);
    syncer_->stop = true;
  }
  syncer_->cv.notify_one();
  syncer_->thread.join();
  std::string error = syncer_->error;
  syncer_.reset();
  holding_.reset();
  // What the thread synced but could not tell the loop (the run was over), and what came after.
  if (error.empty() && synced_ < records_ && ::fdatasync(fd_) != 0)
    error = "journal " + path_ + ": fsync: " + std::strerror(errno);
  if (!error.empty() && !sync_failed_at_) sync_failed_at_ = synced_ + 1, sync_failed_ = error;
  if (error.empty()) synced_ = records_;
  return sync_failed_;
}

void Journal::synced(uint64_t seq, const std::string& error) {
  if (!error.empty() && !sync_failed_at_) sync_failed_at_ = synced_ + 1, sync_failed_ = error;
  if (error.empty() && seq > synced_) synced_ = seq;
  if (synced_ >= records_ || sync_failed_at_) holding_.reset();
  wake();
}

Entry& Journal::slot(const std::string& key) {
  auto [it, added] = entries_.try_emplace(key);
  if (added) order_.push_back(key);
  return it->second;
}

std::vector<std::pair<std::string, Entry>> Journal::steps() const {
  std::vector<std::pair<std::string, Entry>> out;
  out.reserve(order_.size());
  for (const auto& k : order_) out.emplace_back(k, entries_.at(k));
  return out;
}

std::optional<Entry> Journal::lookup(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void Journal::append(const nlohmann::json& record) {
  if (fd_ < 0) throw std::runtime_error("journal " + path_ + " was opened read-only");
  std::string body = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  char crc[10];
  std::snprintf(crc, sizeof crc, "%08x ", crc32(body));
  std::string line = crc + body + "\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
    if (n < 0) throw std::runtime_error("journal " + path_ + ": write: " + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
  ++records_;
  // On disk before the step's side effect starts (INTENT), or before the next one (DONE): here,
  // or by the journal's thread while the step waits (committed()).
  if (syncer_) {
    if (!holding_ && holding_hook_) holding_ = holding_hook_();
    {
      std::lock_guard lk(syncer_->m);
      syncer_->want = records_;
    }
    syncer_->cv.notify_one();
  } else {
    if (::fdatasync(fd_) != 0) {
      std::string error = "journal " + path_ + ": fsync: " + std::strerror(errno);
      if (!sync_failed_at_) sync_failed_at_ = records_, sync_failed_ = error;
      throw std::runtime_error(error);
    }
    synced_ = records_;
  }
  if (mirror) {
    uint64_t seq = handed_ = records_;
    mirror(seq, line.substr(0, line.size() - 1), [this, seq](const std::string& error) { answered(seq, error); });
  }
}

void Journal::answered(uint64_t seq, const std::string& error) {
  if (!error.empty() && !failed_at_) failed_at_ = seq, failed_ = error;
  if (error.empty() && seq > mirrored_) mirrored_ = seq;
  wake();
}

std::optional<std::string> Journal::committed(uint64_t seq) const {
  if (sync_failed_at_ && seq >= sync_failed_at_) return sync_failed_;
  if (mirror && seq <= handed_) {  // a record handed to the copy
    if (failed_at_ && seq >= failed_at_) return failed_;
    if (seq > mirrored_) return std::nullopt;
  }
  if (seq > synced_) return std::nullopt;
  return std::string();
}

void Journal::when_committed(uint64_t seq, Sent cb) {
  if (auto state = committed(seq)) return cb(*state);
  waiting_.emplace(seq, std::move(cb));
}

void Journal::wake() {
  // Callbacks may append (a resumed step goes on): take the ones due before calling any.
  std::vector<std::pair<Sent, std::string>> due;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (auto state = committed(it->first)) {
      due.emplace_back(std::move(it->second), *state);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [cb, error] : due) cb(error);
}

namespace {
int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}
int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void Journal::intent(const std::string& key) {
  int64_t at = wall_ms();
  append({{"t", "INTENT"}, {"step", key}, {"seq", records_ + 1}, {"at", at}, {"mono", mono_ms()}});
  slot(key) = Entry{Entry::intent, nullptr, "", at, 0};
}

void Journal::done(const std::string& key, const nlohmann::json& result) {
  int64_t at = wall_ms();
  append({{"t", "DONE"}, {"step", key}, {"result", result}, {"seq", records_ + 1}, {"at", at}, {"mono", mono_ms()}});
  Entry& e = slot(key);
  e = Entry{Entry::done, result, "", e.started_ms, at};
}

void Journal::failed(const std::string& key, const std::string& error) {
  int64_t at = wall_ms();
  append({{"t", "FAILED"}, {"step", key}, {"error", error}, {"seq", records_ + 1}, {"at", at}, {"mono", mono_ms()}});
  Entry& e = slot(key);
  e = Entry{Entry::failed, nullptr, error, e.started_ms, at};
}

}  // namespace engine::journal
