// The admission policy of fleet.each: a sliding window of at most `at_once` hosts in flight, in the
// given order, that stops admitting once failures exceed the budget or an operator asks it to.
// The counting layer of the Rollout (rollout.hpp), which chooses the hosts.
#pragma once
#include <cstddef>
#include <optional>
#include <string>

namespace engine::fleet {

// "30%" or "5": a count, or a percentage of the hosts.
struct Amount {
  double value = 0;
  bool percent = false;
};

// Parses "30%", "5"; nullopt when malformed or negative.
std::optional<Amount> parse_amount(const std::string& text);

// at_once: a percentage rounds down, but never below one host (Ansible's `serial`).
size_t at_once_count(Amount a, size_t total);
// max_failures: how many failed hosts are tolerated; a percentage rounds down (max_fail_percentage).
size_t failure_budget(Amount a, size_t total);

class Window {
 public:
  Window(size_t total, size_t at_once, size_t max_failures);

  // True while another host may start now (at_once, the budget, a stop, batches).
  bool can_admit() const;
  // Counts a start (which host is the Rollout's choice). Only when can_admit().
  void admit();
  // strategy = "batch": a new batch of at_once starts only once the last one has finished.
  void set_batch(bool on) { batch_ = on; }
  void finish(bool ok);
  // Ctrl-C or an exceeded budget: no new host starts; running ones finish.
  void stop_admitting() { stopped_ = true; }

  bool done() const { return running_ == 0 && (next_ == total_ || stopped_ || over_budget()); }
  bool over_budget() const { return failed_ > max_failures_; }
  size_t running() const { return running_; }
  size_t started() const { return next_; }
  size_t failed() const { return failed_; }
  size_t peak() const { return peak_; }

 private:
  size_t total_, at_once_, max_failures_;
  size_t next_ = 0, running_ = 0, failed_ = 0, peak_ = 0;
  bool stopped_ = false, batch_ = false;
  mutable size_t batch_left_ = 0;
};

}  // namespace engine::fleet
