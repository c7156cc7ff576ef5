// sleep(seconds), the first yielding primitive, and engine.time: clocks for runbooks that measure.
#include <chrono>
#include <cmath>

#include "bindings/vm.hpp"
#include "engine/core/seconds.hpp"

namespace engine::lua {

namespace {

// sleep(seconds): suspends this task only; the rest of the run goes on.
int l_sleep(lua_State* L) {
  double seconds = luaL_checknumber(L, 1);
  luaL_argcheck(L, seconds >= 0 && std::isfinite(seconds), 1, "seconds must be a non-negative number");
  {
    Op op = begin(L, "sleep");
    Task* t = op.task.get();
    t->timer.expires_after(steady_seconds(seconds));
    t->timer.async_wait([op](const boost::system::error_code&) { complete(op, [](lua_State*) { return 0; }); });
    arm(op, [t] { t->timer.cancel(); });
  }
  return suspend(L);
}

// time.monotonic(): seconds on a clock that never goes back, for durations.
int l_monotonic(lua_State* L) {
  auto d = std::chrono::steady_clock::now().time_since_epoch();
  lua_pushnumber(L, std::chrono::duration<double>(d).count());
  return 1;
}

// time.now(): seconds since the Unix epoch, with sub-second precision.
int l_now(lua_State* L) {
  auto d = std::chrono::system_clock::now().time_since_epoch();
  lua_pushnumber(L, std::chrono::duration<double>(d).count());
  return 1;
}

const luaL_Reg kTime[] = {{"sleep", l_sleep}, {"monotonic", l_monotonic}, {"now", l_now}, {nullptr, nullptr}};

int open_module(lua_State* L) {
  new_lib(L, kTime);
  return 1;
}

}  // namespace

void open_time(lua_State* L) {
  register_module(L, "engine.time", open_module);
  push_fn(L, l_sleep);
  lua_setglobal(L, "sleep");
}

}  // namespace engine::lua
