// engine/fleet's rollout policy on its own, on a made-up clock: which host next, and when.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/fleet/rollout.hpp"

using namespace engine::fleet;
using namespace std::chrono_literals;

namespace {

// Starts every host the rollout lets start now; returns them in order. The answer that was not
// "start" is in *last (an ask_gate must be acted on: the rollout counts the gate as asked).
std::vector<size_t> start_all(Rollout& r, Clock::time_point now, bool paused = false, Decision* last = nullptr) {
  std::vector<size_t> out;
  for (int guard = 0; guard < 1000; ++guard) {
    auto d = r.next(now, paused);
    if (last) *last = d;
    if (d.kind != Decision::start) break;
    r.started(d.host, now);
    out.push_back(d.host);
  }
  return out;
}

const Clock::time_point t0{};

// When the rollout, asked at `now`, says to wait: until when (a time point of its own otherwise).
Clock::time_point waits_until(Rollout& r, Clock::time_point now) {
  auto d = r.next(now);
  return d.kind == Decision::wait ? d.when : Clock::time_point::max();
}

}  // namespace

TEST_CASE("hosts start in the given order, at_once at a time") {
  Policy p;
  p.at_once = 2;
  Rollout r(4, p, {}, {3, 1, 0, 2});
  CHECK(start_all(r, t0) == std::vector<size_t>{3, 1});
  CHECK(r.next(t0).kind == Decision::hold);
  r.finished(1, true);
  CHECK(start_all(r, t0) == std::vector<size_t>{0});
  r.finished(3, true);
  r.finished(0, true);
  CHECK(start_all(r, t0) == std::vector<size_t>{2});
  r.finished(2, true);
  CHECK(r.next(t0).kind == Decision::done);
}

TEST_CASE("max_per skips ahead to a host whose group has room; hosts without the variable are not capped") {
  Policy p;
  p.at_once = 10;
  p.caps = {{"zone", 1}};
  Rollout r(5, p, {{"a"}, {"a"}, {"b"}, {""}, {"b"}});
  CHECK(start_all(r, t0) == std::vector<size_t>{0, 2, 3});
  r.finished(0, true);
  CHECK(start_all(r, t0) == std::vector<size_t>{1});
  r.finished(2, false);
  CHECK(start_all(r, t0).empty());  // a failure beyond the budget (0) stops admissions
  CHECK(r.over_budget());
  r.finished(1, true);
  r.finished(3, true);
  CHECK(r.next(t0).kind == Decision::done);
}

TEST_CASE("pause spaces the starts; the first goes at once") {
  Policy p;
  p.at_once = 5;
  p.pause = 30;
  Rollout r(3, p);
  CHECK(start_all(r, t0) == std::vector<size_t>{0});
  CHECK(waits_until(r, t0 + 10s) == t0 + 30s);
  CHECK(start_all(r, t0 + 30s) == std::vector<size_t>{1});
  CHECK(r.next(t0 + 59s).kind == Decision::wait);
  CHECK(start_all(r, t0 + 60s) == std::vector<size_t>{2});
}

TEST_CASE("the gate is asked before each start after the first, and must pass N times in a row") {
  Policy p;
  p.at_once = 5;
  p.gated = true;
  p.gate_passes = 2;
  p.gate_interval = 5;
  p.gate_timeout = 60;
  Rollout r(3, p);
  Decision d;
  CHECK(start_all(r, t0, false, &d) == std::vector<size_t>{0});
  REQUIRE(d.kind == Decision::ask_gate);
  CHECK(d.host == 1);
  CHECK(r.next(t0).kind == Decision::hold);  // one question at a time
  CHECK(r.gate_result(true, "", t0) == Rollout::Gate::again);
  CHECK(waits_until(r, t0 + 1s) == t0 + 5s);
  CHECK(r.next(t0 + 5s).kind == Decision::ask_gate);
  CHECK(r.gate_result(false, "etcd unhealthy", t0 + 5s) == Rollout::Gate::again);  // the streak starts over
  // A no is asked again after gate_retry (1 s by default), not the whole interval...
  CHECK(waits_until(r, t0 + 5s + 500ms) == t0 + 6s);
  CHECK(r.next(t0 + 6s).kind == Decision::ask_gate);
  CHECK(r.gate_result(false, "etcd unhealthy", t0 + 6s) == Rollout::Gate::again);
  CHECK(r.next(t0 + 7s).kind == Decision::ask_gate);
  CHECK(r.gate_result(true, "", t0 + 7s) == Rollout::Gate::again);
  // ...while the passes in a row stay gate_interval apart.
  CHECK(r.next(t0 + 11s).kind == Decision::wait);
  CHECK(r.next(t0 + 12s).kind == Decision::ask_gate);
  CHECK(r.gate_result(true, "", t0 + 12s) == Rollout::Gate::passed);
  CHECK(start_all(r, t0 + 12s, false, &d) == std::vector<size_t>{1});
  CHECK(d.kind == Decision::ask_gate);  // and again for the next host
}

TEST_CASE("a gate that never passes in time stops admissions and says why") {
  Policy p;
  p.gated = true;
  p.at_once = 5;
  p.gate_interval = 5;
  p.gate_retry = 30;  // a retry after a no is at most the interval
  p.gate_timeout = 12;
  Rollout r(3, p);
  Decision d;
  start_all(r, t0, false, &d);
  REQUIRE(d.kind == Decision::ask_gate);
  CHECK(r.gate_result(false, "alert firing", t0) == Rollout::Gate::again);
  CHECK(waits_until(r, t0 + 1s) == t0 + 5s);
  REQUIRE(r.next(t0 + 5s).kind == Decision::ask_gate);
  CHECK(r.gate_result(false, "alert firing", t0 + 5s) == Rollout::Gate::again);
  REQUIRE(r.next(t0 + 12s).kind == Decision::ask_gate);
  CHECK(r.gate_result(false, "alert still firing", t0 + 12s) == Rollout::Gate::timed_out);
  CHECK(r.gate_failure() == "the gate between hosts did not pass 1 time(s) in a row within 12s; last answer: alert still firing");
  CHECK(r.next(t0 + 13s).kind == Decision::hold);  // host 0 still runs
  r.finished(0, true);
  CHECK(r.next(t0 + 13s).kind == Decision::done);
}

TEST_CASE("an operator's pause holds, skip settles a host without running it, stop ends admissions") {
  Policy p;
  p.at_once = 1;
  Rollout r(4, p);
  CHECK(start_all(r, t0, true).empty());
  CHECK(r.next(t0, true).kind == Decision::hold);
  CHECK(r.skip(1));
  CHECK(start_all(r, t0) == std::vector<size_t>{0});
  CHECK_FALSE(r.skip(0));  // already started
  r.finished(0, true);
  CHECK(start_all(r, t0) == std::vector<size_t>{2});
  r.stop();
  r.finished(2, true);
  CHECK(r.next(t0).kind == Decision::done);
  CHECK_FALSE(r.is_started(3));
}

TEST_CASE("batch: a new batch starts once the last one has finished") {
  Policy p;
  p.at_once = 2;
  p.batch = true;
  Rollout r(4, p);
  CHECK(start_all(r, t0) == std::vector<size_t>{0, 1});
  r.finished(0, true);
  CHECK(start_all(r, t0).empty());
  r.finished(1, true);
  CHECK(start_all(r, t0) == std::vector<size_t>{2, 3});
  CHECK(r.peak() == 2);
}

TEST_CASE("canaries go one at a time, then the window opens to at_once") {
  Policy p;
  p.at_once = 3;
  p.canary = 2;
  Rollout r(6, p);
  CHECK(start_all(r, t0) == std::vector<size_t>{0});
  CHECK(r.next(t0).kind == Decision::hold);
  r.finished(0, true);
  CHECK(start_all(r, t0) == std::vector<size_t>{1});
  r.finished(1, true);
  CHECK(start_all(r, t0) == std::vector<size_t>{2, 3, 4});
  r.finished(2, true);
  CHECK(start_all(r, t0) == std::vector<size_t>{5});
  for (size_t h : {3, 4, 5}) r.finished(h, true);
  CHECK(r.next(t0).kind == Decision::done);
  CHECK_FALSE(r.failed_canary());
}

TEST_CASE("a failed canary stops everything, whatever max_failures allows") {
  Policy p;
  p.at_once = 3;
  p.canary = 1;
  p.max_failures = 5;
  Rollout r(4, p, {}, {2, 0, 1, 3});
  CHECK(start_all(r, t0) == std::vector<size_t>{2});
  r.finished(2, false);
  CHECK(start_all(r, t0).empty());
  CHECK(r.next(t0).kind == Decision::done);
  REQUIRE(r.failed_canary());
  CHECK(*r.failed_canary() == 2);
  CHECK_FALSE(r.over_budget());
}
