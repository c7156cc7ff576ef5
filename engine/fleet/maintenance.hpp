// Maintenance windows, as kured and system-upgrade-controller have them (days, start, end, time
// zone): "Mon-Fri 22:00-04:00 Europe/Berlin", several joined by ";" ("Sat,Sun 10:00-16:00 UTC;
// daily 02:00-04:00 Asia/Tokyo"). A window that ends at or before its start runs past midnight
// into the next day; the days name the day it opens. fleet.each admits no new host while every
// window is closed (bindings/fleet.cpp).
#pragma once
#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace engine::fleet {

class MaintenanceWindow {
 public:
  // Throws ConfigError naming the part that is wrong (a day, a time, an unknown time zone).
  static MaintenanceWindow parse(const std::string& spec);

  bool open_at(int64_t t) const;
  // Open at t: when it closes (nullopt: not within a week, a window that never closes).
  std::optional<int64_t> closes_at(int64_t t) const;
  // Closed at t: when one opens next (nullopt: not within a week, which a valid spec cannot be).
  std::optional<int64_t> opens_at(int64_t t) const;
  const std::string& text() const { return text_; }

  struct Range {
    std::bitset<7> days;  // 0 = Sunday, as struct tm
    int start = 0, end = 0;  // seconds into the local day
    std::string zone;        // a tz database name, "UTC" by default
  };

 private:
  // The windows' instants from a day before t to eight days after, merged: [open, close).
  std::vector<std::pair<int64_t, int64_t>> intervals(int64_t t) const;
  std::vector<Range> ranges_;
  std::string text_;
};

// "2026-12-02T03:00:00Z"
std::string utc_text(int64_t t);

}  // namespace engine::fleet
