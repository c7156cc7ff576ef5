#include "engine/fleet/rollout.hpp"

#include <algorithm>
#include <cstdio>

#include "engine/core/seconds.hpp"

namespace engine::fleet {

Rollout::Rollout(size_t total, Policy policy, std::vector<std::vector<std::string>> cap_values, std::vector<size_t> order)
    : policy_(std::move(policy)),
      window_(total, policy_.at_once, policy_.max_failures),
      cap_values_(std::move(cap_values)),
      order_(std::move(order)),
      started_(total, false),
      canary_(total, false) {
  window_.set_batch(policy_.batch);
  if (order_.empty())
    for (size_t i = 0; i < total; ++i) order_.push_back(i);
  if (cap_values_.empty() && !policy_.caps.empty()) cap_values_.assign(total, std::vector<std::string>(policy_.caps.size()));
}

bool Rollout::fits(size_t host) const {
  for (size_t c = 0; c < policy_.caps.size(); ++c) {
    const std::string& v = cap_values_[host][c];
    if (v.empty()) continue;
    auto it = cap_running_.find({c, v});
    if (it != cap_running_.end() && it->second >= policy_.caps[c].second) return false;
  }
  return true;
}

std::optional<size_t> Rollout::candidate() {
  while (first_open_ < order_.size() && started_[order_[first_open_]]) ++first_open_;
  for (size_t k = first_open_; k < order_.size(); ++k) {
    size_t i = order_[k];
    if (!started_[i] && fits(i)) return i;
  }
  return std::nullopt;
}

void Rollout::count(size_t host, int delta) {
  for (size_t c = 0; c < policy_.caps.size(); ++c)
    if (!cap_values_[host][c].empty()) cap_running_[{c, cap_values_[host][c]}] += delta;
}

Decision Rollout::next(Clock::time_point now, bool paused) {
  if (window_.done()) return {Decision::done};
  if (paused || !window_.can_admit()) return {Decision::hold};
  // Canary phase: one at a time, each after the last succeeded.
  if (canary_ok_ < policy_.canary && admitted_ > canary_ok_) return {Decision::hold};
  auto host = candidate();
  if (!host) return {Decision::hold};  // every remaining host waits for room in its group
  if (policy_.pause > 0 && admitted_ > 0 && now < next_allowed_) return {Decision::wait, *host, next_allowed_};
  if (policy_.gated && admitted_ > 0 && !gate_ok_) {
    if (gate_asked_) return {Decision::hold, *host};
    if (gate_retry_at_ && now < *gate_retry_at_) return {Decision::wait, *host, *gate_retry_at_};
    gate_asked_ = true;
    if (!gate_since_) gate_since_ = now;
    return {Decision::ask_gate, *host};
  }
  return {Decision::start, *host};
}

void Rollout::started(size_t host, Clock::time_point now) {
  window_.admit();
  started_[host] = true;
  if (admitted_ < policy_.canary) canary_[host] = true;
  ++admitted_;
  count(host, +1);
  gate_ok_ = false;  // the next start asks the gate again
  next_allowed_ = now + steady_seconds(policy_.pause);
}

void Rollout::finished(size_t host, bool ok) {
  count(host, -1);
  window_.finish(ok);
  if (canary_[host]) {
    if (ok) {
      ++canary_ok_;
    } else if (!failed_canary_) {
      failed_canary_ = host;
      window_.stop_admitting();
    }
  }
  if (window_.over_budget()) window_.stop_admitting();
}

bool Rollout::skip(size_t host) {
  if (started_[host]) return false;
  started_[host] = true;
  window_.admit();
  window_.finish(true);
  return true;
}

Rollout::Gate Rollout::gate_result(bool passed, const std::string& why, Clock::time_point now) {
  gate_asked_ = false;
  if (passed) {
    ++gate_streak_;
  } else {
    gate_streak_ = 0;
    gate_last_ = why;
  }
  if (gate_streak_ >= policy_.gate_passes) {
    gate_ok_ = true;
    gate_streak_ = 0;
    gate_since_.reset();
    gate_retry_at_.reset();
    return Gate::passed;
  }
  if (gate_since_ && now - *gate_since_ >= steady_seconds(policy_.gate_timeout)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", policy_.gate_timeout);
    gate_failure_ = "the gate between hosts did not pass " + std::to_string(policy_.gate_passes) +
                    " time(s) in a row within " + buf + "s; last answer: " + (gate_last_.empty() ? "none" : gate_last_);
    window_.stop_admitting();
    return Gate::timed_out;
  }
  gate_retry_at_ = now + steady_seconds(gate_streak_ > 0 ? policy_.gate_interval : std::min(policy_.gate_retry, policy_.gate_interval));
  return Gate::again;
}

}  // namespace engine::fleet
