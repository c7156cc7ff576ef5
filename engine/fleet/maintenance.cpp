#include "engine/fleet/maintenance.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "engine/core/errors.hpp"

namespace engine::fleet {

namespace {

constexpr int64_t kDay = 86400;
const char* const kDays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

[[noreturn]] void bad(const std::string& spec, const std::string& why) {
  throw ConfigError("maintenance window '" + spec + "': " + why);
}

int day_index(const std::string& spec, const std::string& word) {
  std::string w = lower(word);
  for (int i = 0; i < 7; ++i) {
    static const char* const full[] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};
    if (w == kDays[i] || w == full[i]) return i;
  }
  bad(spec, "'" + word + "' is not a day (Mon, Tue, ... Sun, a range such as Mon-Fri, or daily)");
}

std::bitset<7> parse_days(const std::string& spec, const std::string& text) {
  std::string t = lower(text);
  if (t == "daily" || t == "*" || t == "any") return std::bitset<7>().set();
  std::bitset<7> days;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    auto dash = item.find('-');
    if (dash == std::string::npos) {
      days.set(day_index(spec, item));
      continue;
    }
    int a = day_index(spec, item.substr(0, dash)), b = day_index(spec, item.substr(dash + 1));
    for (int d = a;; d = (d + 1) % 7) {  // Fri-Mon wraps over the weekend
      days.set(d);
      if (d == b) break;
    }
  }
  if (days.none()) bad(spec, "no day named");
  return days;
}

// "22:00" or "22:00:30" → seconds into the day; "24:00" only as an end.
int parse_clock(const std::string& spec, const std::string& text, bool is_end) {
  int h = -1, m = -1, s = 0;
  char tail = 0;
  int n = std::sscanf(text.c_str(), "%2d:%2d:%2d%c", &h, &m, &s, &tail);
  bool shape = text.size() == 5 ? n == 2 : text.size() == 8 ? n == 3 : false;
  if (!shape || m < 0 || m > 59 || s < 0 || s > 59 || h < 0 || h > 24 || (h == 24 && (m || s || !is_end)))
    bad(spec, "'" + text + "' is not a time of day (HH:MM or HH:MM:SS, 24-hour" + (is_end ? ", 24:00 for midnight)" : ")"));
  return h * 3600 + m * 60 + s;
}

void check_zone(const std::string& spec, const std::string& zone) {
  if (zone == "UTC") return;
  bool name_ok = !zone.empty() && zone.find("..") == std::string::npos && zone.front() != '/' &&
                 std::all_of(zone.begin(), zone.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' || c == '+'; });
  std::error_code ec;
  if (!name_ok || !std::filesystem::is_regular_file("/usr/share/zoneinfo/" + zone, ec))
    bad(spec, "unknown time zone '" + zone + "' (a name from the tz database, such as Europe/Berlin or UTC; " +
                  "not in /usr/share/zoneinfo)");
}

// The process's TZ set to a zone for the length of a scope (localtime_r and mktime read it). One
// at a time: the engine's Lua runs on one thread, the mutex keeps any other caller out too.
class ZoneScope {
 public:
  explicit ZoneScope(const std::string& zone) : lock_(mutex()) {
    const char* old = std::getenv("TZ");
    had_ = old != nullptr;
    if (had_) saved_ = old;
    ::setenv("TZ", zone.c_str(), 1);
    ::tzset();
  }
  ~ZoneScope() {
    if (had_) ::setenv("TZ", saved_.c_str(), 1);
    else ::unsetenv("TZ");
    ::tzset();
  }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  std::lock_guard<std::mutex> lock_;
  bool had_ = false;
  std::string saved_;
};

}  // namespace

MaintenanceWindow MaintenanceWindow::parse(const std::string& spec_in) {
  MaintenanceWindow w;
  w.text_ = trim(spec_in);
  const std::string& spec = w.text_;
  if (spec.empty()) bad(spec, "empty (e.g. \"Mon-Fri 22:00-04:00 Europe/Berlin\")");
  std::stringstream parts(spec);
  std::string part;
  while (std::getline(parts, part, ';')) {
    std::stringstream ws(trim(part));
    std::vector<std::string> words;
    for (std::string x; ws >> x;) words.push_back(x);
    if (words.empty()) bad(spec, "an empty part between ';'");
    Range r;
    size_t i = 0;
    if (words[0].find(':') == std::string::npos) r.days = parse_days(spec, words[i++]);
    else r.days.set();  // no days: every day
    if (i >= words.size()) bad(spec, "'" + trim(part) + "' names no time (HH:MM-HH:MM)");
    auto dash = words[i].find('-');
    if (dash == std::string::npos) bad(spec, "'" + words[i] + "' is not a start and an end (HH:MM-HH:MM)");
    r.start = parse_clock(spec, words[i].substr(0, dash), false);
    r.end = parse_clock(spec, words[i].substr(dash + 1), true);
    if (r.start == r.end) bad(spec, "'" + words[i] + "' starts and ends at the same time (a whole day is 00:00-24:00)");
    ++i;
    r.zone = i < words.size() ? words[i++] : "UTC";
    if (r.zone == "Z" || r.zone == "Etc/UTC") r.zone = "UTC";
    check_zone(spec, r.zone);
    if (i < words.size()) bad(spec, "'" + words[i] + "' is left over (each part: DAYS HH:MM-HH:MM [ZONE])");
    w.ranges_.push_back(r);
  }
  return w;
}

std::vector<std::pair<int64_t, int64_t>> MaintenanceWindow::intervals(int64_t t) const {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const auto& r : ranges_) {
    ZoneScope zone(r.zone);
    time_t from = static_cast<time_t>(t - kDay);
    std::tm base{};
    ::localtime_r(&from, &base);
    // The local clock time on day k after base (mktime works out daylight saving time for that
    // date and moment; the fields are set as a clock shows them, not as seconds after midnight).
    auto local = [&base](int k, int secs) {
      std::tm x = base;
      x.tm_mday += k + secs / static_cast<int>(kDay);
      secs %= static_cast<int>(kDay);
      x.tm_hour = secs / 3600, x.tm_min = secs / 60 % 60, x.tm_sec = secs % 60;
      x.tm_isdst = -1;
      time_t at = std::mktime(&x);
      return std::pair<time_t, int>(at, x.tm_wday);
    };
    for (int k = 0; k <= 8; ++k) {
      auto [start, wday] = local(k, r.start);
      if (!r.days.test(wday)) continue;
      auto [end, ignored] = local(k + (r.end <= r.start ? 1 : 0), r.end);
      if (end > start) out.emplace_back(start, end);
    }
  }
  std::sort(out.begin(), out.end());
  std::vector<std::pair<int64_t, int64_t>> merged;
  for (const auto& iv : out) {
    if (!merged.empty() && iv.first <= merged.back().second) merged.back().second = std::max(merged.back().second, iv.second);
    else merged.push_back(iv);
  }
  return merged;
}

bool MaintenanceWindow::open_at(int64_t t) const {
  for (const auto& [a, b] : intervals(t))
    if (a <= t && t < b) return true;
  return false;
}

std::optional<int64_t> MaintenanceWindow::closes_at(int64_t t) const {
  for (const auto& [a, b] : intervals(t))
    if (a <= t && t < b) return b < t + 7 * kDay ? std::optional<int64_t>(b) : std::nullopt;
  return std::nullopt;
}

std::optional<int64_t> MaintenanceWindow::opens_at(int64_t t) const {
  for (const auto& [a, b] : intervals(t))
    if (a > t && a <= t + 8 * kDay) return a;
  return std::nullopt;
}

std::string utc_text(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace engine::fleet
