#include "bindings/run_loop.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <map>

#include "bindings/vm.hpp"
#include "engine/log/log.hpp"

namespace engine::lua {

SignalWatch::SignalWatch(Vm& vm, RunOutcome& out) : vm_(vm), out_(out), signals_(vm.io, SIGINT, SIGTERM), grace_(vm.io) {
  count_signals(SIGINT);  // after Asio's handlers, which they then call
  count_signals(SIGTERM);
  vm.signals_acted = signals_received();
  watchdog_ = watch_busy();  // a runbook busy in Lua still hears the signal
  arm();
}

SignalWatch::~SignalWatch() {
  *alive_ = false;
  boost::system::error_code ec;
  signals_.cancel(ec);
  grace_.cancel();
}

// Seconds a SIGTERM leaves the running hosts: $ENGINE_TERM_GRACE, else 20 (under Kubernetes'
// default 30 s terminationGracePeriodSeconds, leaving time to write the records); 0: at once.
double SignalWatch::term_grace() {
  const char* v = std::getenv("ENGINE_TERM_GRACE");
  if (!v || !*v) return 20;
  char* end = nullptr;
  double d = std::strtod(v, &end);
  return end && !*end && d >= 0 ? d : 20;
}

// Admissions waiting on a timer (a pause between hosts, a closed maintenance window) hear at once
// that no new host will start.
static void kick_admissions(Vm& vm) {
  for (auto& [_, kick] : std::map<uint64_t, std::function<void()>>(vm.admission_kicks)) kick();
}

void SignalWatch::arm() {
  signals_.async_wait([this, alive = alive_](const boost::system::error_code& ec, int sig) {
    if (ec || !*alive) return;
    vm_.signals_acted = signals_received();
    out_.interrupted = true;
    if (sig == SIGINT && !vm_.draining) {
      vm_.draining = true;
      log::emit(log::Level::warn, "", "interrupt: no new hosts start; running ones finish (Ctrl-C again to cancel them)");
      kick_admissions(vm_);
    } else if (sig == SIGTERM && !vm_.draining && term_grace() > 0) {
      // An evicted pod, a stopped service: the hosts in flight get a grace period to finish their
      // step (so it is journaled done, not unknown), then whatever still runs is cancelled.
      vm_.draining = true;
      double grace = term_grace();
      log::emit(log::Level::warn, "", "terminated: no new hosts start; running ones finish or are cancelled after the grace period",
                {{"grace_seconds", grace}});
      kick_admissions(vm_);
      grace_.expires_after(std::chrono::milliseconds(static_cast<int64_t>(grace * 1000)));
      grace_.async_wait([this, alive = alive_](const boost::system::error_code& e) {
        if (e || !*alive) return;
        log::emit(log::Level::warn, "", "the grace period is over: cancelling everything in flight");
        cancel_all(vm_);
      });
    } else {
      log::emit(log::Level::warn, "", "interrupt: cancelling everything in flight");
      cancel_all(vm_);
    }
    arm();
  });
}

ControlWatch::ControlWatch(Vm& vm, RunOutcome& out, const std::string& control_file)
    : vm_(vm), out_(out), reader_(control_file), timer_(vm.io), active_(!control_file.empty()) {
  poll();
}

ControlWatch::~ControlWatch() {
  *alive_ = false;
  timer_.cancel();
}

void ControlWatch::poll() {
  if (!active_) return;
  for (const auto& c : reader_.poll()) {
    apply(c);
    // Admission waits for these: a continue or a skip may let a host start now.
    kick_admissions(vm_);
  }
  timer_.expires_after(std::chrono::milliseconds(250));
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!ec && *alive) poll();
  });
}

void ControlWatch::apply(const run::Control& c) {
  switch (c.verb) {
    case run::Control::Verb::pause:
      vm_.paused = true;
      log::emit(log::Level::warn, "", "paused by an operator: no new host starts; running ones go on (engine ctl continue)");
      break;
    case run::Control::Verb::go_on:
      vm_.paused = false;
      log::emit(log::Level::info, "", "continued by an operator");
      break;
    case run::Control::Verb::skip:
      vm_.skip_hosts.insert(c.host);
      log::emit(log::Level::warn, c.host, "will be skipped: an operator asked (engine ctl skip)");
      break;
    case run::Control::Verb::abort:
      log::emit(log::Level::warn, "", "aborted by an operator: cancelling everything in flight");
      out_.interrupted = true;
      vm_.draining = true;
      cancel_all(vm_);
      break;
  }
}

ProgressTick::ProgressTick(Vm& vm) : timer_(vm.io) { tick(); }

ProgressTick::~ProgressTick() {
  *alive_ = false;
  timer_.cancel();
  log::progress_finish();
}

void ProgressTick::tick() {
  log::progress_tick();
  timer_.expires_after(std::chrono::milliseconds(100));
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!ec && *alive) tick();
  });
}

void run_until_done(Vm& vm) {
  while (vm.live_count > 0)
    if (vm.io.run_one() == 0) break;
}

void shut_down(Vm& vm) {
  lua_gc(vm.L, LUA_GCCOLLECT);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (k8s_in_flight(vm) > 0 && std::chrono::steady_clock::now() < until) vm.io.run_one_for(std::chrono::milliseconds(100));
  close_ssh(vm);
  close_k8s(vm);
  close_http(vm);
  vm.io.restart();
  vm.io.poll();
}

}  // namespace engine::lua
