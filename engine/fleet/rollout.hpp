// The rollout policy of fleet.each: which host starts next, and when. It layers on the Window (at
// most at_once in flight, the failure budget, batches) the rest of the policy: admission order,
// max_per (at most N hosts in flight per value of a variable: one per zone), a pause between
// starts, a gate that must pass N times in a row before each start after the first, operator
// pause and skip, and stop (Ctrl-C, a gate that never passed). It knows nothing of Lua or of what
// a host's work is: the binding asks next(), does what it says, and reports back.
#pragma once
#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/fleet/window.hpp"

namespace engine::fleet {

using Clock = std::chrono::steady_clock;

struct Policy {
  size_t at_once = 1;
  size_t max_failures = 0;
  bool batch = false;
  // max_per: variable -> how many hosts with one value of it may be in flight.
  std::vector<std::pair<std::string, size_t>> caps;
  double pause = 0;  // seconds between one start and the next
  bool gated = false;  // a gate is asked before each start after the first
  int gate_passes = 1;
  double gate_timeout = 600, gate_interval = 5;  // seconds
  // Seconds before a gate that said no is asked again (at most gate_interval): the passes in a
  // row stay gate_interval apart, but a cluster that recovers just after a no starts its streak
  // then, not up to a whole interval later.
  double gate_retry = 1;
  // The first `canary` hosts go one at a time, and the window opens to at_once only once all of
  // them succeeded; a canary that fails stops admissions whatever max_failures allows (kOps'
  // "start with one instance").
  size_t canary = 0;
};

struct Decision {
  enum Kind {
    start,     // start `host` now (then call started())
    ask_gate,  // run the gate for `host` (the next to start), then call gate_result()
    wait,      // nothing before `when`: ask again then
    hold,      // nothing until something changes (a host finishes, the gate answers, continue, skip)
    done,      // every host settled, or admissions stopped and none is in flight
  } kind = hold;
  size_t host = 0;
  Clock::time_point when{};
};

class Rollout {
 public:
  // cap_values[i][c]: host i's value of policy.caps[c] ("" when it has none: it is not capped).
  // order: the admission order, a permutation of 0..total-1 (empty: list order).
  Rollout(size_t total, Policy policy, std::vector<std::vector<std::string>> cap_values = {},
          std::vector<size_t> order = {});

  // What to do now. Keep asking while it says start.
  Decision next(Clock::time_point now, bool paused = false);
  // Each call to next() that said start is followed by this, before the next question.
  void started(size_t host, Clock::time_point now);
  void finished(size_t host, bool ok);
  // An operator skipped the host: settled without running, as a success. False when it had started.
  bool skip(size_t host);
  // Ctrl-C: no new host starts; running ones finish.
  void stop() { window_.stop_admitting(); }

  enum class Gate { passed, again, timed_out };
  // The gate's answer: passed (enough times in a row: the next start may go), again (asked again
  // after gate_interval once it has passed, gate_retry after a no), timed_out (no pass streak
  // within gate_timeout: admissions stop, and gate_failure() says why).
  Gate gate_result(bool passed, const std::string& why, Clock::time_point now);
  const std::string& gate_failure() const { return gate_failure_; }
  int gate_streak() const { return gate_streak_; }

  bool is_started(size_t host) const { return started_[host]; }
  // The canary that failed and stopped the rollout, if one did.
  std::optional<size_t> failed_canary() const { return failed_canary_; }
  bool over_budget() const { return window_.over_budget(); }
  size_t peak() const { return window_.peak(); }
  const Policy& policy() const { return policy_; }

 private:
  bool fits(size_t host) const;
  std::optional<size_t> candidate();
  void count(size_t host, int delta);

  Policy policy_;
  Window window_;
  std::vector<std::vector<std::string>> cap_values_;
  std::map<std::pair<size_t, std::string>, size_t> cap_running_;
  std::vector<size_t> order_;
  std::vector<bool> started_;
  size_t first_open_ = 0;  // every host before order_[first_open_] has started: O(1) per admission
  size_t admitted_ = 0;    // started hosts (not skipped ones): the gate and the pause begin after the first
  std::vector<bool> canary_;  // hosts admitted as canaries
  size_t canary_ok_ = 0;
  std::optional<size_t> failed_canary_;
  Clock::time_point next_allowed_{};
  bool gate_ok_ = false, gate_asked_ = false;
  int gate_streak_ = 0;
  std::optional<Clock::time_point> gate_since_, gate_retry_at_;
  std::string gate_last_, gate_failure_;
};

}  // namespace engine::fleet
