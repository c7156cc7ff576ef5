// fleet.each(hosts, opts, fn): fn(host) for every host, each in its own task, at most `at_once` at a
// time in the given order, stopping admissions once failures exceed `max_failures` or on Ctrl-C.
// Returns the per-host results, or raises when the failure budget is exceeded.
#include <boost/asio/post.hpp>

#include "bindings/vm.hpp"
#include "engine/core/text.hpp"
#include "engine/fleet/window.hpp"
#include "engine/log/log.hpp"
#include "engine/run/report.hpp"

#include <boost/asio/steady_timer.hpp>
#include <optional>

namespace engine::lua {

namespace {

using Clock = std::chrono::steady_clock;
const std::vector<std::string> kOptions = {"at_once", "max_failures", "strategy", "max_per", "between",
                                           "gate_passes", "gate_timeout", "gate_interval", "pause", "order"};

struct Result {
  std::string name;
  enum Status { not_started, running, ok, failed, skipped } status = not_started;
  std::string error;
  double duration = 0;
  int value_ref = LUA_NOREF;
  Clock::time_point start;
  TaskPtr task;  // while it runs
};

struct FleetRun : std::enable_shared_from_this<FleetRun> {
  Vm* vm;
  fleet::Window window;
  size_t at_once, budget;
  int hosts_ref = LUA_NOREF, fn_ref = LUA_NOREF;
  Op parent;
  std::string where;  // "runbook.lua:12:" of the fleet.each call
  // Inside a host's task (a drain's evictions): its items are not the run's hosts, so the report
  // and the live table leave them out.
  bool nested = false;
  std::vector<Result> results;
  bool closed = false;

  // Admission order, and who has started. Every host before order[first_open] has started, so
  // finding the next one costs O(1) per admission, not a walk from the front (O(n^2) per fleet).
  std::vector<size_t> order;
  std::vector<bool> started;
  size_t first_open = 0;
  size_t skips_settled = 0;  // vm->skip_hosts only grows: its size says whether there is news
  // max_per = {var = cap}: per host, its value of each capped variable ("" when it has none).
  std::vector<std::pair<std::string, size_t>> caps;
  std::vector<std::vector<std::string>> cap_values;
  std::map<std::pair<size_t, std::string>, size_t> cap_running;
  // pause between admissions.
  double pause = 0;
  Clock::time_point next_allowed{};
  std::unique_ptr<asio::steady_timer> pace;
  bool pace_armed = false;
  // between = gate: passes `gate_passes` times in a row before each admission after the first.
  int gate_ref = LUA_NOREF;
  int gate_passes = 1;
  double gate_timeout = 600, gate_interval = 5;
  bool gate_ok = false, gate_running = false;
  int gate_streak = 0;
  std::optional<Clock::time_point> gate_since;
  std::string gate_last, gate_failure;
  size_t admitted = 0;
  uint64_t id = 0;  // in vm->admission_kicks

  FleetRun(Vm* v, size_t total, size_t at_once_, size_t budget_)
      : vm(v), window(total, at_once_, budget_), at_once(at_once_), budget(budget_), results(total), started(total, false) {
    for (size_t i = 0; i < total; ++i) order.push_back(i);
  }

  bool fits(size_t i) const {
    for (size_t c = 0; c < caps.size(); ++c) {
      const std::string& v = cap_values[i][c];
      if (v.empty()) continue;
      auto it = cap_running.find({c, v});
      if (it != cap_running.end() && it->second >= caps[c].second) return false;
    }
    return true;
  }

  // The first host, in order, that has not started and whose groups have room.
  std::optional<size_t> candidate() {
    while (first_open < order.size() && started[order[first_open]]) ++first_open;
    for (size_t k = first_open; k < order.size(); ++k) {
      size_t i = order[k];
      if (!started[i] && fits(i)) return i;
    }
    return std::nullopt;
  }

  // Hosts an operator skipped (engine ctl skip) are settled without running.
  void settle_skipped() {
    if (vm->skip_hosts.size() == skips_settled) return;
    skips_settled = vm->skip_hosts.size();
    for (size_t i : order) {
      if (started[i] || !vm->skip_hosts.count(results[i].name)) continue;
      started[i] = true;
      window.admit_chosen();
      window.finish(true);
      results[i].status = Result::skipped;
      results[i].error = "skipped by an operator (engine ctl skip)";
      if (!nested) log::progress_host(results[i].name, "skipped");
      log::emit(log::Level::warn, results[i].name, "skipped by an operator");
    }
  }

  void admit() {
    if (closed) return;
    if (vm->draining) window.stop_admitting();
    settle_skipped();
    while (!vm->paused && window.can_admit()) {
      auto next = candidate();
      if (!next) break;  // every remaining host waits for room in its group
      auto now = Clock::now();
      if (pause > 0 && admitted > 0 && now < next_allowed) {
        arm_pace();
        break;
      }
      if (gate_ref != LUA_NOREF && admitted > 0 && !gate_ok) {
        run_gate(*next);
        break;
      }
      gate_ok = false;  // the next admission asks the gate again
      start(*next);
      next_allowed = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(pause));
    }
    if (window.done()) close();
  }

  void arm_pace() {
    if (pace_armed) return;
    pace_armed = true;
    if (!pace) pace = std::make_unique<asio::steady_timer>(vm->io);
    pace->expires_at(next_allowed);
    std::weak_ptr<FleetRun> weak = shared_from_this();
    pace->async_wait([weak](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      self->pace_armed = false;
      self->admit();
    });
  }

  // Runs the gate in a task of its own (it may wait: a health check, an alert query).
  void run_gate(size_t next) {
    if (gate_running || closed) return;
    gate_running = true;
    if (!gate_since) gate_since = Clock::now();
    lua_State* L = vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, gate_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hosts_ref);
    lua_rawgeti(L, -1, static_cast<lua_Integer>(next + 1));
    lua_remove(L, -2);
    std::weak_ptr<FleetRun> weak = shared_from_this();
    spawn(*vm, L, 1, parent.task->host, [weak](Task& t, bool ok) {
      auto self = weak.lock();
      if (!self) return;
      bool passed = ok && lua_gettop(t.co) >= 1 && lua_toboolean(t.co, 1);
      std::string why = ok ? (lua_gettop(t.co) >= 2 ? error_text(t.co, 2) : "it said no") : error_text(t.co);
      asio::post(self->vm->io, [self, passed, why] { self->gate_done(passed, why); });
    });
  }

  void gate_done(bool passed, const std::string& why) {
    gate_running = false;
    if (closed) return;
    if (passed) {
      ++gate_streak;
      log::emit(log::Level::info, parent.task->host, "gate passed",
                json{{"times", gate_streak}, {"of", gate_passes}});
    } else {
      gate_streak = 0;
      gate_last = why;
      log::emit(log::Level::info, parent.task->host, "gate holds admission", json{{"why", why}});
    }
    if (gate_streak >= gate_passes) {
      gate_ok = true;
      gate_streak = 0;
      gate_since.reset();
      admit();
      return;
    }
    if (std::chrono::duration<double>(Clock::now() - *gate_since).count() >= gate_timeout) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g", gate_timeout);
      gate_failure = std::string("the gate between hosts did not pass ") + std::to_string(gate_passes) +
                     " time(s) in a row within " + buf + "s; last answer: " + (gate_last.empty() ? "none" : gate_last);
      window.stop_admitting();
      if (window.done()) close();
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(vm->io, std::chrono::duration_cast<Clock::duration>(
                                                                   std::chrono::duration<double>(gate_interval)));
    std::weak_ptr<FleetRun> weak = shared_from_this();
    timer->async_wait([weak, timer](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec || self->closed) return;
      if (auto next = self->candidate()) self->run_gate(*next);
    });
  }

  void start(size_t i) {
    lua_State* L = vm->L;  // the main thread is idle while the loop runs: a scratch stack
    {
      window.admit_chosen();
      started[i] = true;
      ++admitted;
      if (!nested) log::progress_host(results[i].name, "running");
      for (size_t c = 0; c < caps.size(); ++c)
        if (!cap_values[i][c].empty()) ++cap_running[{c, cap_values[i][c]}];
      auto& r = results[i];
      r.status = Result::running;
      r.start = Clock::now();
      lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
      lua_rawgeti(L, LUA_REGISTRYINDEX, hosts_ref);
      lua_rawgeti(L, -1, static_cast<lua_Integer>(i + 1));
      lua_remove(L, -2);
      auto self = shared_from_this();
      r.task = spawn(*vm, L, 1, r.name, [self, i](Task& t, bool ok) { self->child_done(i, t, ok); });
    }
  }

  void child_done(size_t i, Task& t, bool ok) {
    auto& r = results[i];
    r.duration = std::chrono::duration<double>(Clock::now() - r.start).count();
    r.status = ok ? Result::ok : Result::failed;
    if (ok) {
      if (lua_gettop(t.co) > 0 && !lua_isnil(t.co, 1)) {
        lua_pushvalue(t.co, 1);
        lua_xmove(t.co, vm->L, 1);
        r.value_ref = luaL_ref(vm->L, LUA_REGISTRYINDEX);
      }
    } else {
      r.error = error_text(t.co);
      log::emit(log::Level::error, r.name, "failed", json{{"error", r.error}});
      if (!to_interrupt(t.co, -1)) {
        luaL_traceback(vm->L, t.co, r.error.c_str(), 0);
        log::emit(log::Level::debug, r.name, lua_tostring(vm->L, -1));
        lua_pop(vm->L, 1);
      }
    }
    if (!nested) log::progress_host(r.name, ok ? "ok" : "failed");
    r.task.reset();
    for (size_t c = 0; c < caps.size(); ++c)
      if (!cap_values[i][c].empty()) --cap_running[{c, cap_values[i][c]}];
    window.finish(ok);
    if (window.over_budget()) window.stop_admitting();
    // Admitting here is safe: spawn() only posts the new tasks' first resume, it never nests one.
    admit();
  }

  void close() {
    if (closed) return;
    closed = true;
    size_t ok = 0, failed = 0, skipped = 0;
    vm->admission_kicks.erase(id);
    for (auto& r : results) {
      (r.status == Result::ok ? ok : r.status == Result::failed ? failed : skipped)++;
    }
    record();
    log::emit(failed ? log::Level::warn : log::Level::info, parent.task->host, "fleet.each finished",
              json{{"ok", ok}, {"failed", failed}, {"not_started", skipped}});
    if (!gate_failure.empty()) {
      std::string msg = where + "fleet.each: " + gate_failure + "; " + std::to_string(skipped) + " hosts not started";
      release();
      complete(parent, [msg](lua_State* co) { lua_pushstring(co, msg.c_str()); return 1; }, true);
      return;
    }
    if (vm->draining && skipped > 0) {
      release();
      complete(parent, [](lua_State* co) { push_interrupt(co, {Interrupt::interrupted, 0}); return 1; }, true);
      return;
    }
    if (window.over_budget()) {
      std::string msg = where + "fleet.each: " + std::to_string(failed) + " of " + std::to_string(results.size()) +
                        " hosts failed, more than max_failures (" + std::to_string(budget) + ")";
      size_t shown = 0;
      for (auto& r : results)
        if (r.status == Result::failed && shown++ < 5) msg += "\n  " + r.name + ": " + r.error;
      if (failed > 5) msg += "\n  ... and " + std::to_string(failed - 5) + " more";
      if (skipped) msg += "\n  " + std::to_string(skipped) + " hosts not started";
      release();
      complete(parent, [msg](lua_State* co) { lua_pushstring(co, msg.c_str()); return 1; }, true);
      return;
    }
    auto self = shared_from_this();
    complete(parent, [self, ok, failed, skipped](lua_State* co) {
      self->push_results(co, ok, failed, skipped);
      return 1;
    });
    release();
  }

  void push_results(lua_State* co, size_t ok, size_t failed, size_t skipped) {
    static const char* names[] = {"skipped", "running", "ok", "failed", "skipped"};
    lua_createtable(co, static_cast<int>(results.size()), 3);
    lua_rawgeti(co, LUA_REGISTRYINDEX, hosts_ref);
    for (size_t i = 0; i < results.size(); ++i) {
      auto& r = results[i];
      bool has_error = !r.error.empty() || r.status == Result::not_started;  // skipped hosts carry their reason
      lua_createtable(co, 0, 4 + has_error + (r.value_ref != LUA_NOREF));  // no room to spare: 100,000 of them
      lua_pushstring(co, r.name.c_str());
      lua_setfield(co, -2, "name");
      lua_rawgeti(co, -2, static_cast<lua_Integer>(i + 1));
      lua_setfield(co, -2, "host");
      lua_pushstring(co, names[r.status]);
      lua_setfield(co, -2, "status");
      if (has_error) {
        lua_pushstring(co, r.status == Result::not_started ? (vm->draining ? "not started: interrupted" : "not started: failure budget exceeded") : r.error.c_str());
        lua_setfield(co, -2, "error");
      }
      lua_pushnumber(co, r.duration);
      lua_setfield(co, -2, "duration");
      if (r.value_ref != LUA_NOREF) {
        lua_rawgeti(co, LUA_REGISTRYINDEX, r.value_ref);
        lua_setfield(co, -2, "value");
      }
      lua_rawseti(co, -3, static_cast<lua_Integer>(i + 1));
    }
    lua_pop(co, 1);
    lua_pushinteger(co, static_cast<lua_Integer>(ok));
    lua_setfield(co, -2, "ok");
    lua_pushinteger(co, static_cast<lua_Integer>(failed));
    lua_setfield(co, -2, "failed");
    lua_pushinteger(co, static_cast<lua_Integer>(skipped));
    lua_setfield(co, -2, "skipped");
  }

  void release() {
    for (auto& r : results)
      if (r.value_ref != LUA_NOREF) luaL_unref(vm->L, LUA_REGISTRYINDEX, r.value_ref), r.value_ref = LUA_NOREF;
    luaL_unref(vm->L, LUA_REGISTRYINDEX, hosts_ref);
    luaL_unref(vm->L, LUA_REGISTRYINDEX, fn_ref);
    luaL_unref(vm->L, LUA_REGISTRYINDEX, gate_ref);
    hosts_ref = fn_ref = gate_ref = LUA_NOREF;
    if (pace) pace->cancel();
  }

  // The waiting runbook was interrupted: stop admitting and cancel every host in flight.
  void cancel() {
    closed = true;
    vm->admission_kicks.erase(id);
    window.stop_admitting();
    std::vector<TaskPtr> in_flight;
    for (auto& r : results)
      if (r.task) in_flight.push_back(r.task);
    for (auto& t : in_flight) interrupt(*t, {Interrupt::cancelled, 0});
    record();
    release();
  }

  // report.json gets every host's outcome once, when this fleet.each ends (closed or cancelled).
  void record() {
    if (nested) return;
    static const char* names[] = {"not started", "cancelled", "ok", "failed", "skipped"};
    std::vector<run::Report::HostOutcome> out;
    out.reserve(results.size());
    for (auto& r : results) out.push_back({r.name, names[r.status], r.error, r.duration});
    run::report().hosts(std::move(out));
  }
};

fleet::Amount amount_opt(lua_State* L, int opts, const char* field, fleet::Amount dflt) {
  int t = lua_getfield(L, opts, field);
  fleet::Amount a = dflt;
  if (t == LUA_TNUMBER) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
      luaL_error(L, "fleet.each: %s must be a whole number or a percentage like \"30%%\"", field);
    a = {static_cast<double>(lua_tointeger(L, -1)), false};
  } else if (t == LUA_TSTRING) {
    auto parsed = fleet::parse_amount(lua_tostring(L, -1));
    if (!parsed) luaL_error(L, "fleet.each: %s '%s' is not a count or a percentage like \"30%%\"", field, lua_tostring(L, -1));
    a = *parsed;
  } else if (t != LUA_TNIL) {
    luaL_error(L, "fleet.each: %s must be a number or a string like \"30%%\"", field);
  }
  lua_pop(L, 1);
  return a;
}

std::string name_of(lua_State* L, int idx, size_t i) {
  if (lua_type(L, idx) == LUA_TSTRING) return lua_tostring(L, idx);
  if (lua_istable(L, idx) && lua_getfield(L, idx, "name") == LUA_TSTRING) {
    std::string s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
  }
  if (lua_istable(L, idx)) lua_pop(L, 1);
  return "#" + std::to_string(i + 1);
}

void start(lua_State* L, Vm& vm, size_t total, size_t at_once, size_t budget);

// fleet.each(hosts, [opts,] fn) → results {ok=, failed=, skipped=, [i] = {name, host, status, error, duration, value}}
int l_each(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_isfunction(L, 2)) {
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
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    std::string k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
    if (std::find(kOptions.begin(), kOptions.end(), k) == kOptions.end()) {
      std::string hint = text::did_you_mean(k, kOptions);
      luaL_error(L, "fleet.each: unknown option '%s'%s", k.c_str(), hint.c_str());
    }
    lua_pop(L, 1);
  }
  size_t total = lua_rawlen(L, 1);
  auto at_once = fleet::at_once_count(amount_opt(L, 2, "at_once", {1, false}), total);
  auto budget = fleet::failure_budget(amount_opt(L, 2, "max_failures", {0, false}), total);

  Vm& vm = vm_of(L);
  if (vm.draining) {
    push_interrupt(L, {Interrupt::interrupted, 0});
    return lua_error(L);
  }
  start(L, vm, total, at_once, budget);
  return suspend(L);
}

double opt_number(lua_State* L, int opts, const char* field, double dflt) {
  double v = dflt;
  int t = lua_getfield(L, opts, field);
  if (t == LUA_TNUMBER) v = lua_tonumber(L, -1);
  else if (t != LUA_TNIL) luaL_error(L, "fleet.each: %s must be a number", field);
  lua_pop(L, 1);
  if (v < 0) luaL_error(L, "fleet.each: %s must not be negative", field);
  return v;
}

// A host's value of a variable, for max_per ("" when it has none).
std::string host_value(lua_State* L, int hosts, size_t i, const std::string& var) {
  std::string out;
  lua_rawgeti(L, hosts, static_cast<lua_Integer>(i + 1));
  if (lua_istable(L, -1)) {
    if (lua_getfield(L, -1, "vars") == LUA_TTABLE) {
      if (lua_getfield(L, -1, var.c_str()) != LUA_TNIL) out = luaL_tolstring(L, -1, nullptr), lua_pop(L, 1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return out;
}

void configure(lua_State* L, FleetRun& run, size_t total) {
  const int opts = 2;
  if (lua_getfield(L, opts, "strategy") == LUA_TSTRING) {
    std::string st = lua_tostring(L, -1);
    if (st != "batch" && st != "window") luaL_error(L, "fleet.each: strategy must be \"window\" or \"batch\", not \"%s\"", st.c_str());
    run.window.set_batch(st == "batch");
  }
  lua_pop(L, 1);
  run.pause = opt_number(L, opts, "pause", 0);
  run.gate_timeout = opt_number(L, opts, "gate_timeout", 600);
  run.gate_interval = opt_number(L, opts, "gate_interval", 5);
  run.gate_passes = static_cast<int>(opt_number(L, opts, "gate_passes", 1));
  if (run.gate_passes < 1) luaL_error(L, "fleet.each: gate_passes must be at least 1");
  int t = lua_getfield(L, opts, "between");
  if (t == LUA_TFUNCTION) run.gate_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else if (t != LUA_TNIL) luaL_error(L, "fleet.each: between must be a function(next_host) returning true or nil, why");
  else lua_pop(L, 1);
  if (lua_getfield(L, opts, "max_per") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
        luaL_error(L, "fleet.each: max_per takes variable = count (a positive integer), as {zone = 1}");
      run.caps.emplace_back(lua_tostring(L, -2), static_cast<size_t>(lua_tointeger(L, -1)));
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "fleet.each: max_per must be a table such as {zone = 1}");
  }
  lua_pop(L, 1);
  run.cap_values.assign(total, std::vector<std::string>(run.caps.size()));
  for (size_t i = 0; i < total; ++i)
    for (size_t c = 0; c < run.caps.size(); ++c) run.cap_values[i][c] = host_value(L, 1, i, run.caps[c].first);
  // order = function(host) return key end: admission sorted by key (stable), results stay in list order.
  if (lua_getfield(L, opts, "order") == LUA_TFUNCTION) {
    std::vector<std::pair<json, size_t>> keys;
    for (size_t i = 0; i < total; ++i) {
      lua_pushvalue(L, -1);
      lua_rawgeti(L, 1, static_cast<lua_Integer>(i + 1));
      lua_call(L, 1, 1);
      keys.emplace_back(to_json(L, -1), i);
      lua_pop(L, 1);
    }
    std::stable_sort(keys.begin(), keys.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < total; ++i) run.order[i] = keys[i].second;
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "fleet.each: order must be a function(host) returning a sort key");
  }
  lua_pop(L, 1);
}

void start(lua_State* L, Vm& vm, size_t total, size_t at_once, size_t budget) {
  auto run = std::make_shared<FleetRun>(&vm, total, at_once, budget);
  configure(L, *run, total);
  Op op = begin(L, "fleet.each");
  run->parent = op;
  if (Task* t = current_task(L)) run->nested = !t->host.empty();
  luaL_where(L, 1);
  run->where = lua_tostring(L, -1);
  lua_pop(L, 1);
  for (size_t i = 0; i < total; ++i) {
    lua_rawgeti(L, 1, static_cast<lua_Integer>(i + 1));
    if (lua_isnil(L, -1)) luaL_error(L, "fleet.each: hosts[%d] is nil; pass a list without holes", static_cast<int>(i + 1));
    run->results[i].name = name_of(L, lua_gettop(L), i);
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

const luaL_Reg kFleet[] = {{"each", l_each}, {nullptr, nullptr}};

int open_module(lua_State* L) {
  new_lib(L, kFleet);
  return 1;
}

}  // namespace

void open_fleet(lua_State* L) { register_module(L, "engine.fleet", open_module); }

}  // namespace engine::lua
