// Maintenance windows in Lua: fleet.each's `window` option and fleet.window(spec [, at]), both on
// engine/fleet/maintenance (kured's days, start, end and time zone; several joined by ";").
#include <ctime>
#include <optional>

#include "bindings/vm.hpp"
#include "engine/core/errors.hpp"
#include "engine/fleet/maintenance.hpp"

namespace engine::lua {

// fleet.each's opts.window (at index opts): nullopt when absent; raises naming what is wrong.
std::optional<fleet::MaintenanceWindow> window_option(lua_State* L, int opts) {
  int t = lua_getfield(L, opts, "window");
  std::optional<fleet::MaintenanceWindow> w;
  if (t == LUA_TSTRING) {
    std::string spec = lua_tostring(L, -1);
    try {
      w = fleet::MaintenanceWindow::parse(spec);
    } catch (const ConfigError& e) {
      luaL_error(L, "fleet.each: %s", e.what());
    }
  } else if (t != LUA_TNIL) {
    luaL_error(L, "fleet.each: window must be a string such as \"Mon-Fri 22:00-04:00 Europe/Berlin\"");
  }
  lua_pop(L, 1);
  return w;
}

// Why fleet.each stopped admitting at `at`, and when to continue.
std::string window_stop(const fleet::MaintenanceWindow& w, int64_t at, bool any_started, size_t unstarted) {
  std::string msg = std::string(any_started ? "the maintenance window closed" : "outside the maintenance window") + " (" +
                    w.text() + ") at " + fleet::utc_text(at) + ": " + std::to_string(unstarted) + " hosts not started";
  if (auto next = w.opens_at(at)) msg += "; it opens next at " + fleet::utc_text(*next) + ": continue then with engine resume";
  return msg;
}

// fleet.window(spec [, at]) → {open, closes_at?, opens_at?, spec}: the window at `at` (epoch
// seconds, default now). A runbook checks it before anything changes; raises on a bad spec.
int l_window(lua_State* L) {
  std::string spec = luaL_checkstring(L, 1);
  int64_t at = luaL_opt(L, luaL_checkinteger, 2, static_cast<lua_Integer>(std::time(nullptr)));
  std::optional<fleet::MaintenanceWindow> w;
  try {
    w = fleet::MaintenanceWindow::parse(spec);
  } catch (const ConfigError& e) {
    return luaL_error(L, "fleet.window: %s", e.what());
  }
  lua_createtable(L, 0, 4);
  bool open = w->open_at(at);
  lua_pushboolean(L, open);
  lua_setfield(L, -2, "open");
  if (auto c = open ? w->closes_at(at) : std::nullopt) lua_pushinteger(L, *c), lua_setfield(L, -2, "closes_at");
  if (auto o = open ? std::nullopt : w->opens_at(at)) lua_pushinteger(L, *o), lua_setfield(L, -2, "opens_at");
  lua_pushstring(L, w->text().c_str());
  lua_setfield(L, -2, "spec");
  return 1;
}

}  // namespace engine::lua
