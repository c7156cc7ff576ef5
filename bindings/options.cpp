// engine.check: the options checker and the duration reader Lua modules share with the C++ ones.
#include "bindings/options.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "bindings/lua.hpp"
#include "bindings/runtime.hpp"
#include "bindings/vm.hpp"
#include "engine/core/errors.hpp"
#include "engine/core/text.hpp"
#include "engine/params/params.hpp"

namespace engine::lua {

namespace {

// A duration at idx (number of seconds or "90s") or nullopt for nil; raises naming `what` and `field`.
std::optional<double> seconds_at(lua_State* L, int idx, const char* what, const char* field, int level) {
  double v = 0;
  int t = lua_type(L, idx);
  if (t == LUA_TNIL || t == LUA_TNONE) return std::nullopt;
  if (t == LUA_TNUMBER) {
    v = lua_tonumber(L, idx);
  } else if (t == LUA_TSTRING) {
    auto d = params::parse_duration(lua_tostring(L, idx));
    if (!d) {
      luaL_where(L, level);
      lua_pushfstring(L, "%s: %s '%s' is not a duration (seconds, or like \"90s\", \"10m\", \"1h30m\")", what, field,
                      lua_tostring(L, idx));
      lua_concat(L, 2);
      lua_error(L);
    }
    v = *d;
  } else {
    luaL_where(L, level);
    lua_pushfstring(L, "%s: %s must be seconds or a duration like \"90s\", not a %s", what, field, luaL_typename(L, idx));
    lua_concat(L, 2);
    lua_error(L);
  }
  if (v < 0 || !std::isfinite(v)) {
    luaL_where(L, level);
    lua_pushfstring(L, "%s: %s must not be negative", what, field);
    lua_concat(L, 2);
    lua_error(L);
  }
  return v;
}

void unknown_options(lua_State* L, int idx, const std::vector<std::string>& allowed, const char* what, int level,
                     const char* noun = "option") {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    std::string k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_tolstring(L, -2, nullptr);
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      std::string hint = text::did_you_mean(k, allowed);
      luaL_where(L, level);
      lua_pushfstring(L, "%s: unknown %s '%s'%s", what, noun, k.c_str(), hint.c_str());
      lua_concat(L, 2);
      lua_error(L);
    }
    lua_settop(L, lua_gettop(L) - 1);
  }
}

// Where an error of check.* points: `depth` Lua functions above the one that called check.* (1,
// the default: the runbook's line that called the module function; 2 when a module's helper checks).
int level_of(lua_State* L, int idx) {
  lua_Integer depth = luaL_optinteger(L, idx, 1);
  luaL_argcheck(L, depth >= 1 && depth <= 10, idx, "depth must be 1 to 10");
  return 1 + static_cast<int>(depth);  // luaL_where: 1 is the function that called check.*
}

// check.options(opts, allowed, what, depth) → opts or {}: opts may be nil; allowed is a list of names.
int l_options(lua_State* L) {
  std::string what = luaL_checkstring(L, 3);
  int level = level_of(L, 4);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (lua_isnoneornil(L, 1)) {
    lua_newtable(L);
    return 1;
  }
  if (!lua_istable(L, 1)) {
    luaL_where(L, level);
    lua_pushfstring(L, "%s: options must be a table, not a %s", what.c_str(), luaL_typename(L, 1));
    lua_concat(L, 2);
    return lua_error(L);
  }
  std::vector<std::string> allowed;
  for (lua_Integer i = 1, n = static_cast<lua_Integer>(lua_rawlen(L, 2)); i <= n; ++i) {
    lua_rawgeti(L, 2, i);
    if (lua_type(L, -1) == LUA_TSTRING) allowed.emplace_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_settop(L, 2);
  unknown_options(L, 1, allowed, what.c_str(), level);
  lua_settop(L, 1);
  return 1;
}

// check.seconds(value, what, field, depth) → seconds | nil (for nil)
int l_seconds(lua_State* L) {
  const char* what = luaL_checkstring(L, 2);
  const char* field = luaL_optstring(L, 3, "duration");
  int level = level_of(L, 4);
  auto v = seconds_at(L, 1, what, field, level);
  if (!v) return 0;
  lua_pushnumber(L, *v);
  return 1;
}

// check.params(runbook, {"name=value", ...}) → params | nil, err: another runbook's params resolved
// as `engine run RUNBOOK -e ...` would resolve them, before anything is handed to it (a Job that
// runs it, seed 004's chain). runbook: a path, relative to the calling runbook's directory. A file
// that is not a runbook raises (the runbooks shipped together are out of step); a value its params
// refuse is the caller's input: nil and the refusal, as `engine run` words it.
int l_params(lua_State* L) {
  std::string path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  std::vector<std::pair<std::string, std::string>> given;
  for (lua_Integer i = 1, n = static_cast<lua_Integer>(lua_rawlen(L, 2)); i <= n; ++i) {
    lua_rawgeti(L, 2, i);
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "check.params: item %d must be a name=value string", static_cast<int>(i));
    std::string item = lua_tostring(L, -1);
    lua_pop(L, 1);
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      lua_pushnil(L);
      lua_pushfstring(L, "'%s': expected name=value", item.c_str());
      return 2;
    }
    given.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  Vm& vm = vm_of(L);
  if (std::filesystem::path(path).is_relative()) path = (std::filesystem::path(vm.runbook_dir) / path).string();
  std::string raised, refused;
  nlohmann::json params;
  {
    // Its own Lua state: the other runbook's top level declares into it, not into this run.
    Runtime other(vm.stdlib_dir);
    try {
      other.load(path);
    } catch (const std::exception& e) {
      raised = e.what();
    }
    if (raised.empty()) {
      try {
        params = other.resolve_params(given);
      } catch (const ConfigError& e) {
        refused = e.what();
      }
    }
  }
  if (!raised.empty()) return luaL_error(L, "check.params: %s", raised.c_str());
  if (!refused.empty()) {
    lua_pushnil(L);
    lua_pushstring(L, refused.c_str());
    return 2;
  }
  push_json(L, params);
  return 1;
}

const luaL_Reg kCheck[] = {{"options", l_options}, {"seconds", l_seconds}, {"params", l_params}, {nullptr, nullptr}};

int open_module(lua_State* L) {
  new_lib(L, kCheck);
  return 1;
}

}  // namespace

void check_options(lua_State* L, int idx, const std::vector<std::string>& allowed, const std::string& what,
                   const char* noun) {
  unknown_options(L, idx, allowed, what.c_str(), 1, noun);
}

double opt_seconds(lua_State* L, int idx, const char* field, const std::string& what) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, idx, field);
  auto v = seconds_at(L, -1, what.c_str(), field, 1);
  lua_pop(L, 1);
  return v.value_or(0);
}

std::string opt_string(lua_State* L, int idx, const char* field, const std::string& what) {
  std::string out;
  int t = lua_getfield(L, idx, field);
  if (t == LUA_TSTRING) out = lua_tostring(L, -1);
  else if (t != LUA_TNIL) luaL_error(L, "%s: '%s' must be a string, got %s", what.c_str(), field, lua_typename(L, t));
  lua_pop(L, 1);
  return out;
}

bool opt_bool(lua_State* L, int idx, const char* field, const std::string& what) {
  int t = lua_getfield(L, idx, field);
  bool out = lua_toboolean(L, -1);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN) luaL_error(L, "%s: '%s' must be true or false", what.c_str(), field);
  lua_pop(L, 1);
  return out;
}

void open_check(lua_State* L) { register_module(L, "engine.check", open_module); }

}  // namespace engine::lua
