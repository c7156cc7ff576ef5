// engine/fleet: the admission window on its own, driven by plain asio timers.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <random>

#include "engine/fleet/window.hpp"

using namespace engine::fleet;

namespace {
// Runs `total` tasks through a window; task i fails when fails(i). Returns the peak in flight.
struct Sim {
  boost::asio::io_context io;
  Window w;
  std::function<bool(size_t)> fails;
  std::vector<int> started;
  size_t in_flight = 0, peak = 0;
  std::optional<size_t> started_when_over;  // how many had started when the budget was exceeded
  std::mt19937 rng{42};

  Sim(size_t total, size_t at_once, size_t budget, std::function<bool(size_t)> f) : w(total, at_once, budget), fails(std::move(f)) {}

  void pump() {
    while (w.can_admit()) {
      size_t i = w.started();
      w.admit();
      started.push_back(static_cast<int>(i));
      peak = std::max(peak, ++in_flight);
      auto t = std::make_shared<boost::asio::steady_timer>(io, std::chrono::microseconds(rng() % 500));
      t->async_wait([this, t, i](auto) {
        --in_flight;
        w.finish(!fails(i));
        if (w.over_budget() && !started_when_over) started_when_over = started.size();
        if (w.over_budget()) w.stop_admitting();
        pump();
      });
    }
  }
  void run() {
    pump();
    io.run();
  }
};
}  // namespace

TEST_CASE("at_once is never exceeded and every host runs once, in order") {
  Sim s(200, 13, 0, [](size_t) { return false; });
  s.run();
  CHECK(s.peak == 13);
  CHECK(s.w.peak() == 13);
  REQUIRE(s.started.size() == 200);
  for (int i = 0; i < 200; ++i) CHECK(s.started[i] == i);
  CHECK(s.w.done());
}

TEST_CASE("once failures exceed max_failures no new host starts; running ones finish") {
  // Hosts 3, 5 and 8 fail; a budget of 1 is exceeded at the second failure.
  Sim s(100, 4, 1, [](size_t i) { return i == 3 || i == 5 || i == 8; });
  s.run();
  CHECK(s.w.over_budget());
  CHECK(s.w.running() == 0);
  REQUIRE(s.started_when_over);
  CHECK(s.started.size() == *s.started_when_over);  // nothing started after the budget ran out
  CHECK(s.started.size() < 100);
  CHECK(s.w.done());
}

TEST_CASE("stop_admitting lets running work finish") {
  Window w(10, 3, 0);
  w.admit();
  w.admit();
  w.stop_admitting();
  CHECK_FALSE(w.can_admit());
  CHECK_FALSE(w.done());
  w.finish(true);
  w.finish(true);
  CHECK(w.done());
}

TEST_CASE("amounts: counts and percentages, as Ansible's serial and max_fail_percentage") {
  CHECK(at_once_count(*parse_amount("30%"), 10) == 3);
  CHECK(at_once_count(*parse_amount("1%"), 10) == 1);  // never below one host
  CHECK(at_once_count(*parse_amount("50"), 10) == 10);
  CHECK(failure_budget(*parse_amount("25%"), 10) == 2);
  CHECK(failure_budget(*parse_amount("0"), 10) == 0);
  CHECK_FALSE(parse_amount("abc"));
  CHECK_FALSE(parse_amount("-1"));
  CHECK_FALSE(parse_amount("150%"));
  CHECK_FALSE(parse_amount("1.5"));
}
