// engine/fleet/maintenance: maintenance windows parsed and evaluated, in UTC and across a DST change.
#include <catch2/catch.hpp>

#include <ctime>

#include "engine/core/errors.hpp"
#include "engine/fleet/maintenance.hpp"

using engine::fleet::MaintenanceWindow;
using engine::fleet::utc_text;

namespace {
int64_t utc(int y, int mo, int d, int h, int mi, int s = 0) {
  std::tm tm{};
  tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d, tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = s;
  return ::timegm(&tm);
}
std::string refused(const std::string& spec) {
  try {
    MaintenanceWindow::parse(spec);
  } catch (const engine::ConfigError& e) {
    return e.what();
  }
  return "accepted";
}
}  // namespace

TEST_CASE("a window past midnight belongs to the day it opens", "[maintenance]") {
  auto w = MaintenanceWindow::parse("Fri 22:00-02:00 UTC");  // 2026-12-04 is a Friday
  CHECK_FALSE(w.open_at(utc(2026, 12, 4, 21, 59, 59)));
  CHECK(w.open_at(utc(2026, 12, 4, 22, 0)));
  CHECK(w.open_at(utc(2026, 12, 5, 1, 59, 59)));
  CHECK_FALSE(w.open_at(utc(2026, 12, 5, 2, 0)));
  CHECK_FALSE(w.open_at(utc(2026, 12, 5, 23, 0)));  // Saturday evening: not a Friday
  CHECK(utc_text(*w.closes_at(utc(2026, 12, 4, 23, 0))) == "2026-12-05T02:00:00Z");
  CHECK(utc_text(*w.opens_at(utc(2026, 12, 5, 3, 0))) == "2026-12-11T22:00:00Z");
  CHECK_FALSE(w.closes_at(utc(2026, 12, 5, 3, 0)));
}

TEST_CASE("a window in a time zone follows its daylight saving time", "[maintenance]") {
  // 2026-03-29: Berlin goes from 02:00 CET to 03:00 CEST. 01:00 CET is 00:00Z, 05:00 CEST is 03:00Z.
  auto w = MaintenanceWindow::parse("Sun 01:00-05:00 Europe/Berlin");
  CHECK_FALSE(w.open_at(utc(2026, 3, 28, 23, 59, 59)));
  CHECK(w.open_at(utc(2026, 3, 29, 0, 0)));
  CHECK(utc_text(*w.closes_at(utc(2026, 3, 29, 1, 0))) == "2026-03-29T03:00:00Z");
  // A week later, CEST all along: 01:00 is 23:00Z the day before.
  CHECK(utc_text(*w.opens_at(utc(2026, 3, 30, 0, 0))) == "2026-04-04T23:00:00Z");
  auto tokyo = MaintenanceWindow::parse("daily 02:00-04:00 Asia/Tokyo");
  CHECK(tokyo.open_at(utc(2026, 12, 2, 17, 30)));
  CHECK_FALSE(tokyo.open_at(utc(2026, 12, 2, 19, 0)));
  // The process's own TZ is left as it was.
  CHECK(std::getenv("TZ") == nullptr);
}

TEST_CASE("several windows, day lists and ranges, whole days", "[maintenance]") {
  auto w = MaintenanceWindow::parse("Sat,Sun 10:00-16:00; daily 02:00:00-04:00:30 UTC");
  CHECK(w.open_at(utc(2026, 12, 2, 4, 0, 29)));   // Wednesday, the daily one
  CHECK_FALSE(w.open_at(utc(2026, 12, 2, 10, 0)));
  CHECK(w.open_at(utc(2026, 12, 5, 10, 0)));      // Saturday
  CHECK(utc_text(*w.opens_at(utc(2026, 12, 2, 5, 0))) == "2026-12-03T02:00:00Z");
  auto weekend = MaintenanceWindow::parse("Fri-Mon 00:00-24:00");
  CHECK(weekend.open_at(utc(2026, 12, 7, 12, 0)));         // Monday
  CHECK_FALSE(weekend.open_at(utc(2026, 12, 8, 12, 0)));   // Tuesday
  CHECK(utc_text(*weekend.closes_at(utc(2026, 12, 4, 1, 0))) == "2026-12-08T00:00:00Z");  // merged days
  auto always = MaintenanceWindow::parse("daily 00:00-24:00");
  CHECK(always.open_at(utc(2026, 12, 2, 12, 0)));
  CHECK_FALSE(always.closes_at(utc(2026, 12, 2, 12, 0)));  // never closes
}

TEST_CASE("a bad window names what is wrong", "[maintenance]") {
  CHECK(refused("Mon-Fry 22:00-04:00") == "maintenance window 'Mon-Fry 22:00-04:00': 'Fry' is not a day (Mon, Tue, ... Sun, a range such as Mon-Fri, or daily)");
  CHECK(refused("Mon 25:00-04:00") == "maintenance window 'Mon 25:00-04:00': '25:00' is not a time of day (HH:MM or HH:MM:SS, 24-hour)");
  CHECK(refused("Mon 22:00-22:00").find("starts and ends at the same time") != std::string::npos);
  CHECK(refused("Mon 22:00-04:00 Mars/Olympus").find("unknown time zone 'Mars/Olympus'") != std::string::npos);
  CHECK(refused("Mon 22:00-04:00 ../../etc/passwd").find("unknown time zone") != std::string::npos);
  CHECK(refused("Mon 22:00-04:00 UTC weekly").find("'weekly' is left over") != std::string::npos);
  CHECK(refused("Mon").find("names no time") != std::string::npos);
  CHECK(refused("").find("empty") != std::string::npos);
  CHECK(refused("Mon 22:00-04:00;").find("accepted") != std::string::npos);
}
