// What a run does beside running Lua, each armed for the run's duration and disarmed by its
// destructor: the operator's signals (Ctrl-C drains, a second one or SIGTERM cancels), engine ctl's
// commands, the live table's tick; then the shutdown that lets last requests out and closes
// connections. Runtime::run wires them together. A handler that completed before its watch was
// destroyed still runs later (cancel cannot recall it): each checks its watch's `alive_` first.
#pragma once
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>

#include "engine/run/control.hpp"

namespace engine::lua {

struct Vm;

// How the run ended, as the runbook's task and the operator's signals decide it.
struct RunOutcome {
  int exit_code = 0;  // 0 ok, 1 failed, 130 interrupted
  bool interrupted = false;
  std::string failure;
  bool declared = false;    // the runbook stopped itself with fail(): its message is the whole story
  std::string where;        // a declared failure's file:line, for the run log (not the console)
  bool lease_lost = false;
  std::string traceback;    // a code error's frames (the runbook's own unless -v)
};

class SignalWatch {
 public:
  SignalWatch(Vm& vm, RunOutcome& out);
  ~SignalWatch();

 private:
  void arm();
  static double term_grace();
  Vm& vm_;
  RunOutcome& out_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer grace_;  // after a SIGTERM: when what still runs is cancelled
  std::shared_ptr<void> watchdog_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// engine ctl: reads the run's control file a few times a second and steers admission.
class ControlWatch {
 public:
  ControlWatch(Vm& vm, RunOutcome& out, const std::string& control_file);
  ~ControlWatch();

 private:
  void poll();
  void apply(const run::Control& c);
  Vm& vm_;
  RunOutcome& out_;
  run::ControlReader reader_;
  boost::asio::steady_timer timer_;
  bool active_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The live table (on a terminal) redraws on this tick, at most 10 times a second.
class ProgressTick {
 public:
  explicit ProgressTick(Vm& vm);
  ~ProgressTick();

 private:
  void tick();
  boost::asio::steady_timer timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Runs the event loop until the runbook's task and every task it started have finished.
void run_until_done(Vm& vm);

// After the last task: leases and tunnels nobody holds are closed, their last requests (a lease's
// release) get a moment to reach the server, then every connection goes.
void shut_down(Vm& vm);

}  // namespace engine::lua
