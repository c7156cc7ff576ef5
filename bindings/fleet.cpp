// fleet.each(hosts, opts, fn): fn(host) for every host, each in its own task, at most `at_once` at a
// time in the given order, stopping admissions once failures exceed `max_failures` or on Ctrl-C.
// Returns the per-host results, or raises when the failure budget is exceeded.
#include <boost/asio/post.hpp>

#include "bindings/fleet_results.hpp"
#include "bindings/options.hpp"
#include "bindings/vm.hpp"
#include "engine/core/text.hpp"
#include "engine/fleet/maintenance.hpp"
#include "engine/fleet/rollout.hpp"
#include "engine/log/log.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/run/report.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <optional>

namespace engine::lua {

// bindings/fleet_window.cpp
std::optional<fleet::MaintenanceWindow> window_option(lua_State* L, int opts);
std::string window_stop(const fleet::MaintenanceWindow& w, int64_t at, bool any_started, size_t unstarted);
int l_window(lua_State* L);
// bindings/fleet_policy.cpp
fleet::Amount amount_opt(lua_State* L, int opts, const char* field, fleet::Amount dflt);
fleet::Rollout read_policy(lua_State* L, size_t total, size_t at_once, size_t budget, int* gate_ref);

namespace {

using Clock = std::chrono::steady_clock;
const char* const kSkipMeta = "engine.fleet.skip";

// The reason of a fleet.skip() error value at idx, if it is one.
std::optional<std::string> skip_reason(lua_State* L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return std::nullopt;
  luaL_getmetatable(L, kSkipMeta);
  bool is_skip = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (!is_skip) return std::nullopt;
  lua_getfield(L, idx, "reason");
  std::string why = lua_tostring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  return why;
}

const std::vector<std::string> kOptions = {"at_once", "max_failures", "strategy", "max_per", "between",
                                           "gate_passes", "gate_timeout", "gate_interval", "gate_retry", "pause", "order", "canary", "window",
                                           "window_wait"};

// A host's run in one fleet.each. Its name, error, duration and start time are in the host's
// run::Report::HostOutcome beside it, which goes to the report as it is when the fleet.each ends
// (a copy of 100,000 of them cost more than the rest of the bookkeeping, mostly in fresh pages).
struct Result {
  enum Status { not_started, running, ok, failed, skipped } status = not_started;
  int value_ref = LUA_NOREF;
  Clock::time_point start;
  TaskPtr task;  // while it runs
};

// One fleet.each call: the Rollout decides, this runs what it decides as Lua tasks and keeps the
// per-host results.
struct FleetRun : std::enable_shared_from_this<FleetRun> {
  Vm* vm;
  fleet::Rollout rollout;
  int hosts_ref = LUA_NOREF, fn_ref = LUA_NOREF, gate_ref = LUA_NOREF;
  Op parent;
  std::string where;  // "runbook.lua:12:" of the fleet.each call
  // Inside a host's task (a drain's evictions): its items are not the run's hosts, so the report
  // and the live table leave them out.
  bool nested = false;
  std::vector<Result, HugeAllocator<Result>> results;
  run::Report::HostOutcomes outcomes;  // beside results; moved to the report by record()
  // Entries named "" in the stdlib's own fleet.each (std.ahead's two) are branches, not hosts:
  // their caller raises what ended them, so no per-entry or count line speaks for them, and they
  // work as their caller's host (its log lines, its steps' journal keys).
  bool branch(size_t i) const { return nested && outcomes[i].name.empty(); }
  bool closed = false;
  double gate_since = -1;  // when the current gate wait began (seconds since the run began)
  std::optional<std::string> held_why;  // the gate's last no, while no pass has come since
  std::string phase;  // the step this fleet.each runs in, for the recap
  size_t skips_settled = 0;  // vm->skip_hosts only grows: its size says whether there is news
  std::unique_ptr<asio::steady_timer> timer;  // the Rollout said: wait until then
  std::optional<Clock::time_point> timer_at;
  uint64_t id = 0;  // in vm->admission_kicks
  std::optional<fleet::MaintenanceWindow> window;  // no new host starts while it is closed
  int64_t window_closed_at = 0;                     // when a start found it closed (0: never)
  bool window_wait = false;                         // closed: wait until it opens instead of stopping
  bool window_said = false;                         // the wait is logged once per closing
  size_t unstarted_left;                            // hosts neither started nor skipped

  FleetRun(Vm* v, size_t total, fleet::Rollout r)
      : vm(v), rollout(std::move(r)), results(total), outcomes(total), unstarted_left(total) {}

  // Hosts an operator skipped (engine ctl skip) are settled without running.
  void settle_skipped() {
    if (vm->skip_hosts.size() == skips_settled) return;
    skips_settled = vm->skip_hosts.size();
    for (size_t i = 0; i < results.size(); ++i) {
      if (!vm->skip_hosts.count(outcomes[i].name) || !rollout.skip(i)) continue;
      results[i].status = Result::skipped;
      --unstarted_left;
      outcomes[i].error = "skipped by an operator (engine ctl skip)";
      if (!nested) log::progress_host(outcomes[i].name, "skipped");
      log::emit(log::Level::warn, outcomes[i].name, "skipped by an operator");
    }
  }

  void admit() {
    if (closed) return;
    if (vm->draining) rollout.stop();
    settle_skipped();
    if (!vm->draining && window_waits()) return;
    for (;;) {
      auto now = Clock::now();  // one reading per decision: the clock costs as much as a decision
      auto d = rollout.next(now, vm->paused);
      if ((d.kind == fleet::Decision::start || d.kind == fleet::Decision::ask_gate) && window_shut()) continue;
      switch (d.kind) {
        case fleet::Decision::start:
          start(d.host, now);
          continue;
        case fleet::Decision::ask_gate:
          run_gate(d.host);
          return;
        case fleet::Decision::wait:
          wait_until(d.when);
          return;
        case fleet::Decision::hold:
          return;
        case fleet::Decision::done:
          close();
          return;
      }
    }
  }

  // A host would start now but the maintenance window is closed: admissions stop (the running
  // hosts finish; the rest wait for a resume in the next window).
  bool window_shut() {
    if (!window || window->open_at(std::time(nullptr))) return false;
    if (vm->dry_run && window_wait && window->opens_at(std::time(nullptr))) return false;  // window_waits() said it
    window_closed_at = std::time(nullptr);
    rollout.stop();
    log::emit(log::Level::warn, parent.task->host, "the maintenance window is closed: no new host starts", json{{"window", window->text()}});
    return true;
  }

  // window_wait: while the window is closed and hosts remain, admission sleeps until it opens (an
  // interruption still stops it: the kick on Ctrl-C or SIGTERM comes here with vm->draining).
  bool window_waits() {
    int64_t now = std::time(nullptr);
    if (!window_wait || !window || !unstarted_left || window->open_at(now) || rollout.over_budget() ||
        rollout.failed_canary() || !rollout.gate_failure().empty())
      return window_said = false;
    auto opens = window->opens_at(now);
    if (!opens) return false;  // it never opens: window_shut() stops the rollout, saying so
    if (vm->dry_run) {  // hours of waiting for a plan: said once, the plan goes on as if it had opened
      if (!window_said)
        log::emit(log::Level::warn, parent.task->host, "dry-run: the maintenance window is closed; a real run waits until it opens",
                  json{{"window", window->text()}, {"opens_at", fleet::utc_text(*opens)}});
      window_said = true;
      return false;
    }
    if (!window_said)
      log::emit(log::Level::warn, parent.task->host, "the maintenance window is closed: no new host starts until it opens",
                json{{"window", window->text()}, {"opens_at", fleet::utc_text(*opens)}});
    window_said = true;
    wait_until(Clock::now() + std::chrono::seconds(*opens - now));
    return true;
  }

  void wait_until(Clock::time_point when) {
    if (timer_at && *timer_at <= when) return;  // an earlier wake-up is armed: it asks again
    if (!timer) timer = std::make_unique<asio::steady_timer>(vm->io);
    timer_at = when;
    timer->expires_at(when);
    std::weak_ptr<FleetRun> weak = shared_from_this();
    timer->async_wait([weak](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      self->timer_at.reset();
      self->admit();
    });
  }

  // Runs the gate in a task of its own (it may wait: a health check, an alert query).
  void run_gate(size_t next) {
    if (gate_since < 0) gate_since = run::report().clock();  // a wait begins at its first ask
    lua_State* L = vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, gate_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hosts_ref);
    lua_rawgeti(L, -1, static_cast<lua_Integer>(next + 1));
    lua_remove(L, -2);
    std::weak_ptr<FleetRun> weak = shared_from_this();
    spawn(*vm, L, 1, parent.task->host, [weak](Task& t, bool ok) {
      auto self = weak.lock();
      if (!self) return;
      // A gate says true, or nil, word, message (std.gates) or nil, why: the message when there is one.
      bool passed = ok && lua_gettop(t.co) >= 1 && lua_toboolean(t.co, 1);
      int n = lua_gettop(t.co);
      std::string why = !ok ? error_text(t.co)
                        : n >= 3 && lua_type(t.co, 3) == LUA_TSTRING ? error_text(t.co, 3)
                        : n >= 2 ? error_text(t.co, 2)
                                 : "it said no";
      asio::post(self->vm->io, [self, passed, why] { self->gate_done(passed, why); });
    });
  }

  void gate_done(bool passed, const std::string& why) {
    if (closed) return;
    bool assumed = vm->dry_run && !passed;
    if (assumed) {
      // Nothing changed, so nothing would come of waiting: said, and the plan goes on as a real
      // run would once the gate passes.
      log::emit(log::Level::warn, parent.task->host, "dry-run: the gate holds admission now; a real run waits for it",
                json{{"why", why}, {"gate_timeout", rollout.policy().gate_timeout}});
      passed = true;
    }
    auto answer = rollout.gate_result(passed, why, Clock::now());
    if (answer != fleet::Rollout::Gate::again) {
      run::report().span("gate", parent.task->host, "gate before the next host", gate_since,
                         assumed ? "held now (dry run): " + why
                         : answer == fleet::Rollout::Gate::passed ? "passed" : rollout.gate_failure());
      gate_since = -1;
    }
    if (passed && assumed) {
      held_why.reset();
    } else if (passed) {
      log::emit(log::Level::info, parent.task->host, "gate passed",
                json{{"times", answer == fleet::Rollout::Gate::passed ? rollout.policy().gate_passes : rollout.gate_streak()},
                     {"of", rollout.policy().gate_passes}});
      held_why.reset();
    } else {
      // A no is asked again after gate_retry (1 s by default): the console says each reason once
      // while it lasts, the run log keeps every answer.
      bool same = held_why && *held_why == why;
      log::emit(same ? log::Level::debug : log::Level::info, parent.task->host, "gate holds admission", json{{"why", why}});
      held_why = why;
    }
    admit();
  }

  void start(size_t i, Clock::time_point now) {
    lua_State* L = vm->L;  // the main thread is idle while the loop runs: a scratch stack
    rollout.started(i, now);
    --unstarted_left;
    if (!nested) log::progress_host(outcomes[i].name, "running");
    auto& r = results[i];
    r.status = Result::running;
    r.start = now;
    outcomes[i].started = run::report().clock(now);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hosts_ref);
    lua_rawgeti(L, -1, static_cast<lua_Integer>(i + 1));
    lua_remove(L, -2);
    auto self = shared_from_this();
    // A branch of a host's work (std.ahead inside that host's turn) is still that host's work.
    const std::string& host = branch(i) ? parent.task->host : outcomes[i].name;
    r.task = spawn(*vm, L, 1, host, [self, i](Task& t, bool ok) { self->child_done(i, t, ok); });
  }

  void child_done(size_t i, Task& t, bool ok) {
    auto& r = results[i];
    auto& o = outcomes[i];
    o.seconds = std::chrono::duration<double>(Clock::now() - r.start).count();
    r.status = ok ? Result::ok : Result::failed;
    if (ok) {
      if (lua_gettop(t.co) > 0 && !lua_isnil(t.co, 1)) {
        lua_pushvalue(t.co, 1);
        lua_xmove(t.co, vm->L, 1);
        r.value_ref = luaL_ref(vm->L, LUA_REGISTRYINDEX);
      }
    } else if (auto why = skip_reason(t.co, -1)) {
      r.status = Result::skipped;
      o.error = "skipped: " + *why;
      ok = true;  // not a failure: the budget and the canary are untouched
      log::emit(log::Level::warn, o.name, "skipped", json{{"why", *why}});
    } else {
      o.error = error_text(t.co);
      strip_declared(*vm, o.error);  // a host's fail(): as the runbook worded it, as the run's own
      // a branch's line would have no host and say twice, unexplained, what its caller raises
      if (!branch(i)) log::emit(log::Level::error, o.name, "failed", json{{"error", o.error}});
      if (!branch(i) && !to_interrupt(t.co, -1)) {
        luaL_traceback(vm->L, t.co, o.error.c_str(), 0);
        log::emit(log::Level::debug, o.name, lua_tostring(vm->L, -1));
        lua_pop(vm->L, 1);
      }
    }
    if (!nested) log::progress_host(o.name, r.status == Result::skipped ? "skipped" : ok ? "ok" : "failed");
    r.task.reset();
    rollout.finished(i, ok);
    // Admitting here is safe: spawn() only posts the new tasks' first resume, it never nests one.
    admit();
  }

  void close() {
    if (closed) return;
    closed = true;
    size_t ok = 0, failed = 0, skipped = 0, unstarted = 0;  // skipped: not ok nor failed (unstarted too)
    vm->admission_kicks.erase(id);
    for (auto& r : results) {
      (r.status == Result::ok ? ok : r.status == Result::failed ? failed : skipped)++;
      unstarted += r.status == Result::not_started;
    }
    // What the waiting runbook gets is decided (and a results table built) while the outcomes are
    // here; record() then hands them to the report.
    enum { raise_message, raise_interrupt, results_table } ends = raise_message;
    std::string msg;
    if (!rollout.gate_failure().empty()) {
      msg = where + "fleet.each: " + rollout.gate_failure() + "; " + std::to_string(unstarted) + " hosts not started";
    } else if (auto c = rollout.failed_canary()) {
      const auto& o = outcomes[*c];
      msg = where + "fleet.each: the canary " + o.name + " failed, so no other host started: " + o.error;
      if (unstarted) msg += "\n  " + std::to_string(unstarted) + " hosts not started";
    } else if (vm->draining && unstarted > 0) {
      ends = raise_interrupt;
    } else if (window_closed_at && unstarted > 0 && !rollout.over_budget()) {
      // stopped as told: a resume in the next window goes on
      msg = where + "fleet.each: " + window_stop(*window, window_closed_at, unstarted < results.size(), unstarted);
    } else if (rollout.over_budget()) {
      msg = where + "fleet.each: " + std::to_string(failed) + " of " + std::to_string(results.size()) +
            " hosts failed, more than max_failures (" + std::to_string(rollout.policy().max_failures) + ")";
      size_t shown = 0;
      for (size_t i = 0; i < results.size(); ++i) {
        const auto& o = outcomes[i];
        if (results[i].status == Result::failed && shown++ < 5)  // std.remote's errors name their host already
          msg += "\n  " + (o.error.rfind(o.name + ": ", 0) == 0 ? o.error : o.name + ": " + o.error);
      }
      if (failed > 5) msg += "\n  ... and " + std::to_string(failed - 5) + " more";
      if (unstarted) msg += "\n  " + std::to_string(unstarted) + " hosts not started";
    } else {
      ends = results_table;
    }
    int table_ref = LUA_NOREF;
    if (ends == results_table) {
      // Built on the idle main thread, as start() uses it. The collector waits meanwhile: its steps
      // in the middle would only traverse the tables being built (a tenth of their cost at 100,000).
      bool collecting = lua_gc(vm->L, LUA_GCISRUNNING);
      if (collecting) lua_gc(vm->L, LUA_GCSTOP);
      push_results(vm->L, ok, failed, skipped);
      if (collecting) lua_gc(vm->L, LUA_GCRESTART);
      table_ref = luaL_ref(vm->L, LUA_REGISTRYINDEX);
    }
    // std.ahead's branches: their count ("failed=2" on a Ctrl-C) would follow the run's own "interrupted"
    bool all_branches = true;
    for (size_t i = 0; i < results.size() && all_branches; ++i) all_branches = branch(i);
    // Inside a host's task (a drain's evictions, a rollout's taints) the count is the caller's
    // detail: said at debug unless something failed.
    if (results.empty() || !all_branches)
      log::emit(failed ? log::Level::warn : nested ? log::Level::debug : log::Level::info, parent.task->host, "fleet.each finished",
                json{{"ok", ok}, {"failed", failed}, {"skipped", skipped - unstarted}, {"not_started", unstarted}});
    record();
    release();
    switch (ends) {
      case raise_message:
        // The rollout stopping as told, not a bug in the runbook; said without its line, as fail()'s.
        vm->declared_failures.push_back(msg.rfind(where, 0) == 0 ? msg.substr(where.size()) : msg);
        complete(parent, [msg](lua_State* co) { lua_pushstring(co, msg.c_str()); return 1; }, true);
        return;
      case raise_interrupt:
        complete(parent, [](lua_State* co) { push_interrupt(co, {Interrupt::interrupted, 0}); return 1; }, true);
        return;
      case results_table:
        // (Were the parent gone, the table would stay in the registry until the run ends; a parent
        // that is cancelled cancels this fleet.each instead, which never gets here.)
        complete(parent, [table_ref](lua_State* co) {
          lua_rawgeti(co, LUA_REGISTRYINDEX, table_ref);
          luaL_unref(co, LUA_REGISTRYINDEX, table_ref);
          return 1;
        });
        return;
    }
  }

  // The results table: its counts now, its per-host entries when read (bindings/fleet_results.cpp).
  void push_results(lua_State* co, size_t ok, size_t failed, size_t skipped) {
    FleetResults* lr = push_results_data(co);
    lr->status.resize(results.size());
    lr->seconds.resize(results.size());
    for (size_t i = 0; i < results.size(); ++i) {
      auto& r = results[i];
      auto& o = outcomes[i];
      lr->status[i] = static_cast<uint8_t>(r.status);
      lr->seconds[i] = static_cast<float>(o.seconds);
      if (r.status == Result::not_started)  // skipped hosts carry their reason
        lr->errors[i] = vm->draining ? "not started: interrupted" : "not started: failure budget exceeded";
      else if (!o.error.empty())
        lr->errors[i] = o.error;
      if (r.value_ref != LUA_NOREF) lr->values[i] = r.value_ref, r.value_ref = LUA_NOREF;  // the entry's now
    }
    lua_rawgeti(co, LUA_REGISTRYINDEX, hosts_ref);
    lr->hosts_ref = luaL_ref(co, LUA_REGISTRYINDEX);
    push_results_table(co, ok, failed, skipped);
  }

  void release() {
    for (auto& r : results)
      if (r.value_ref != LUA_NOREF) luaL_unref(vm->L, LUA_REGISTRYINDEX, r.value_ref), r.value_ref = LUA_NOREF;
    luaL_unref(vm->L, LUA_REGISTRYINDEX, hosts_ref);
    luaL_unref(vm->L, LUA_REGISTRYINDEX, fn_ref);
    luaL_unref(vm->L, LUA_REGISTRYINDEX, gate_ref);
    hosts_ref = fn_ref = gate_ref = LUA_NOREF;
    if (timer) timer->cancel();
  }

  // The waiting runbook was interrupted: stop admitting and cancel every host in flight.
  void cancel() {
    closed = true;
    vm->admission_kicks.erase(id);
    rollout.stop();
    std::vector<TaskPtr> in_flight;
    for (auto& r : results)
      if (r.task) in_flight.push_back(r.task);
    for (auto& t : in_flight) interrupt(*t, {Interrupt::cancelled, 0});
    record(/*keep=*/true);  // a host that handles its interrupt may still finish: its outcome stays
    release();
  }

  // report.json gets every host's outcome once, when this fleet.each ends: closed (nothing runs
  // any more: the outcomes move) or cancelled (hosts may still finish: a copy).
  void record(bool keep = false) {
    if (nested || outcomes.size() != results.size()) return;  // (moved: recorded already)
    static const char* names[] = {"not started", "cancelled", "ok", "failed", "skipped"};
    for (size_t i = 0; i < results.size(); ++i) {
      outcomes[i].status = names[results[i].status];
      outcomes[i].phase = phase;
    }
    if (keep) {
      run::report().hosts(outcomes);
      return;
    }
    run::report().hosts(std::move(outcomes));
    outcomes.clear();
  }
};

void start(lua_State* L, Vm& vm, size_t total, size_t at_once, size_t budget);

// fleet.each(hosts, fn, [opts]) or fleet.each(hosts, [opts,] fn) → results {ok=, failed=, skipped=, [i] = {name, host, status, error, duration, value}}
int l_each(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  // Options last, as everywhere (fleet.each(hosts, fn, opts)); the older order (hosts, opts, fn) works too.
  if (lua_isfunction(L, 2) && lua_istable(L, 3)) {
    lua_settop(L, 3);
    lua_insert(L, 2);
  } else if (lua_isfunction(L, 2)) {
    lua_settop(L, 2);
    lua_newtable(L);
    lua_insert(L, 2);
  }
  if (lua_isnil(L, 2)) {
    lua_newtable(L);
    lua_replace(L, 2);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_settop(L, 3);
  check_options(L, 2, kOptions, "fleet.each");
  size_t total = lua_rawlen(L, 1);
  auto at_once_amount = amount_opt(L, 2, "at_once", {1, false});
  // Ansible's `serial: 0` means every host at once; here 0 was quietly one at a time. Neither
  // reading is safe to guess for a rollout: say what to write instead. (`at_once = #hosts` of an
  // empty list runs nothing either way, and is left alone.)
  if (at_once_amount.value == 0 && total > 0)
    luaL_error(L, "fleet.each: at_once %s would run no host: give at least 1, or \"100%%\" for every host at once",
               at_once_amount.percent ? "\"0%\"" : "0");
  auto at_once = fleet::at_once_count(at_once_amount, total);
  auto budget = fleet::failure_budget(amount_opt(L, 2, "max_failures", {0, false}), total);

  Vm& vm = vm_of(L);
  if (vm.draining) {
    push_interrupt(L, {Interrupt::interrupted, 0});
    return lua_error(L);
  }
  start(L, vm, total, at_once, budget);
  return suspend(L);
}

void start(lua_State* L, Vm& vm, size_t total, size_t at_once, size_t budget) {
  int gate_ref = LUA_NOREF;
  auto run = std::make_shared<FleetRun>(&vm, total, read_policy(L, total, at_once, budget, &gate_ref));
  run->gate_ref = gate_ref;
  run->window = window_option(L, 2);
  int ww = lua_getfield(L, 2, "window_wait");
  if (ww != LUA_TNIL && ww != LUA_TBOOLEAN) luaL_error(L, "fleet.each: window_wait must be true or false");
  run->window_wait = lua_toboolean(L, -1);
  lua_pop(L, 1);
  Op op = begin(L, "fleet.each");
  run->parent = op;
  if (Task* t = current_task(L)) run->nested = !t->host.empty();
  // A fleet.each inside the engine's own modules (the pods k8s.drain evicts) is its caller's
  // detail: not hosts of the recap, not a phase of the live table.
  // The caller is the first Lua frame that is not the prelude's (timeout(s, fleet.each, ...)).
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar) && level < 8; ++level) {
    if (!lua_getinfo(L, "S", &ar) || !ar.source || ar.source[0] != '@') continue;
    std::string_view src(ar.source + 1);
    if (src == vm.stdlib_dir + "/prelude.lua") continue;
    if (src.rfind(vm.stdlib_dir + "/", 0) == 0) run->nested = true;
    break;
  }
  luaL_where(L, 1);
  run->where = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (!run->nested) {
    // A new phase on the live table: the step it runs in, else where it was called.
    Task* t = current_task(L);
    std::string phase = t && !t->steps.empty() ? t->steps.back() : run->where;
    while (!phase.empty() && (phase.back() == ':' || phase.back() == ' ')) phase.pop_back();
    log::progress_phase(phase, total);
    if (t && !t->steps.empty()) run->phase = phase;
  }
  for (size_t i = 0; i < total; ++i) {
    lua_rawgeti(L, 1, static_cast<lua_Integer>(i + 1));
    if (lua_isnil(L, -1)) luaL_error(L, "fleet.each: hosts[%d] is nil; pass a list without holes", static_cast<int>(i + 1));
    run->outcomes[i].name = name_of(L, lua_gettop(L), i);
    lua_pop(L, 1);
  }
  lua_pushvalue(L, 1);
  run->hosts_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 3);
  run->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  run->id = vm.next_fleet++;
  std::weak_ptr<FleetRun> weak = run;
  vm.admission_kicks[run->id] = [weak] {
    if (auto r = weak.lock()) r->admit();
  };
  asio::post(vm.io, [run] { run->admit(); });
  arm(op, [run] { run->cancel(); });
}

// fleet.skip(reason): ends this host's fn as skipped (not failed): the rollout goes on, the recap
// and report.json list the host as skipped with the reason, and a resume runs it again.
int l_skip(lua_State* L) {
  std::string why = luaL_checkstring(L, 1);
  lua_newtable(L);
  lua_pushstring(L, why.c_str());
  lua_setfield(L, -2, "reason");
  luaL_setmetatable(L, kSkipMeta);
  return lua_error(L);
}

int skip_tostring(lua_State* L) {
  lua_getfield(L, 1, "reason");
  lua_pushfstring(L, "fleet.skip outside fleet.each: %s", lua_tostring(L, -1));
  return 1;
}

const luaL_Reg kFleet[] = {{"each", l_each}, {"skip", l_skip}, {"window", l_window}, {nullptr, nullptr}};

int open_module(lua_State* L) {
  if (luaL_newmetatable(L, kSkipMeta)) {
    lua_pushcfunction(L, skip_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  register_results_meta(L);
  new_lib(L, kFleet);
  return 1;
}

}  // namespace

void open_fleet(lua_State* L) { register_module(L, "engine.fleet", open_module); }

}  // namespace engine::lua
