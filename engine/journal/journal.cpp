#include "engine/journal/journal.hpp"

#include <chrono>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
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

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
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
  // On disk before the step's side effect starts (INTENT), or before the next one (DONE).
  if (::fdatasync(fd_) != 0) throw std::runtime_error("journal " + path_ + ": fsync: " + std::strerror(errno));
  ++records_;
  if (mirror) {
    uint64_t seq = handed_ = records_;
    mirror(seq, line.substr(0, line.size() - 1), [this, seq](const std::string& error) { answered(seq, error); });
  }
}

void Journal::answered(uint64_t seq, const std::string& error) {
  if (!error.empty() && !failed_at_) failed_at_ = seq, failed_ = error;
  if (error.empty() && seq > mirrored_) mirrored_ = seq;
  // Callbacks may append (a resumed step goes on): take the ones due before calling any.
  std::vector<Sent> due;
  for (auto it = waiting_.begin(); it != waiting_.end() && it->first <= seq;) {
    due.push_back(std::move(it->second));
    it = waiting_.erase(it);
  }
  for (auto& cb : due) cb(failed_at_ && failed_at_ <= seq ? failed_ : std::string());
}

std::optional<std::string> Journal::mirrored(uint64_t seq) const {
  if (!mirror || seq > handed_) return std::string();  // no copy, or not a record handed over
  if (failed_at_ && seq >= failed_at_) return failed_;
  if (seq <= mirrored_) return std::string();
  return std::nullopt;
}

void Journal::when_mirrored(uint64_t seq, Sent cb) {
  if (auto state = mirrored(seq)) return cb(*state);
  waiting_.emplace(seq, std::move(cb));
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
