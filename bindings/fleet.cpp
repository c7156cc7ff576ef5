// fleet.each(hosts, opts, fn): fn(host) for every host, each in its own task, at most `at_once` at a
// time in the given order, stopping admissions once failures exceed `max_failures` or on Ctrl-C.
// Returns the per-host results, or raises when the failure budget is exceeded.
#include <boost/asio/post.hpp>

#include "bindings/vm.hpp"
#include "engine/core/text.hpp"
#include "engine/fleet/window.hpp"
#include "engine/log/log.hpp"
#include "engine/run/report.hpp"

namespace engine::lua {

namespace {

using Clock = std::chrono::steady_clock;
const std::vector<std::string> kOptions = {"at_once", "max_failures"};

struct Result {
  std::string name;
  enum Status { not_started, running, ok, failed } status = not_started;
  std::string error;
  double duration = 0;
  int value_ref = LUA_NOREF;
  Clock::time_point start;
};

struct FleetRun : std::enable_shared_from_this<FleetRun> {
  Vm* vm;
  fleet::Window window;
  size_t at_once, budget;
  int hosts_ref = LUA_NOREF, fn_ref = LUA_NOREF;
  Op parent;
  std::string where;  // "runbook.lua:12:" of the fleet.each call
  std::vector<Result> results;
  std::map<size_t, TaskPtr> running;
  bool closed = false;

  FleetRun(Vm* v, size_t total, size_t at_once_, size_t budget_)
      : vm(v), window(total, at_once_, budget_), at_once(at_once_), budget(budget_), results(total) {}

  void admit() {
    if (closed) return;
    if (vm->draining) window.stop_admitting();
    lua_State* L = vm->L;  // the main thread is idle while the loop runs: a scratch stack
    while (window.can_admit()) {
      size_t i = window.admit();
      auto& r = results[i];
      r.status = Result::running;
      r.start = Clock::now();
      lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
      lua_rawgeti(L, LUA_REGISTRYINDEX, hosts_ref);
      lua_rawgeti(L, -1, static_cast<lua_Integer>(i + 1));
      lua_remove(L, -2);
      auto self = shared_from_this();
      running[i] = spawn(*vm, L, 1, r.name, [self, i](Task& t, bool ok) { self->child_done(i, t, ok); });
    }
    if (window.done()) close();
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
    run::report().host(r.name, ok ? "ok" : "failed", r.error, r.duration);
    running.erase(i);
    window.finish(ok);
    if (window.over_budget()) window.stop_admitting();
    // Admitting here is safe: spawn() only posts the new tasks' first resume, it never nests one.
    admit();
  }

  void close() {
    if (closed) return;
    closed = true;
    size_t ok = 0, failed = 0, skipped = 0;
    for (auto& r : results) {
      (r.status == Result::ok ? ok : r.status == Result::failed ? failed : skipped)++;
      if (r.status == Result::not_started) run::report().host(r.name, "not started", "", 0);
    }
    log::emit(failed ? log::Level::warn : log::Level::info, parent.task->host, "fleet.each finished",
              json{{"ok", ok}, {"failed", failed}, {"not_started", skipped}});
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
    static const char* names[] = {"skipped", "running", "ok", "failed"};
    lua_createtable(co, static_cast<int>(results.size()), 3);
    lua_rawgeti(co, LUA_REGISTRYINDEX, hosts_ref);
    for (size_t i = 0; i < results.size(); ++i) {
      auto& r = results[i];
      lua_createtable(co, 0, 6);
      lua_pushstring(co, r.name.c_str());
      lua_setfield(co, -2, "name");
      lua_rawgeti(co, -2, static_cast<lua_Integer>(i + 1));
      lua_setfield(co, -2, "host");
      lua_pushstring(co, names[r.status]);
      lua_setfield(co, -2, "status");
      if (!r.error.empty() || r.status == Result::not_started) {
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
    hosts_ref = fn_ref = LUA_NOREF;
  }

  // The waiting runbook was interrupted: stop admitting and cancel every host in flight.
  void cancel() {
    closed = true;
    window.stop_admitting();
    auto in_flight = running;
    for (auto& [_, t] : in_flight) interrupt(*t, {Interrupt::cancelled, 0});
    release();
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

void start(lua_State* L, Vm& vm, size_t total, size_t at_once, size_t budget) {
  Op op = begin(L, "fleet.each");
  auto run = std::make_shared<FleetRun>(&vm, total, at_once, budget);
  run->parent = op;
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
  asio::post(vm.io, [run] { run->admit(); });
  arm(op, [run] { run->cancel(); });
}

const luaL_Reg kFleet[] = {{"each", l_each}, {nullptr, nullptr}};

int open_module(lua_State* L) {
  luaL_newlib(L, kFleet);
  return 1;
}

}  // namespace

void open_fleet(lua_State* L) { register_module(L, "engine.fleet", open_module); }

}  // namespace engine::lua
