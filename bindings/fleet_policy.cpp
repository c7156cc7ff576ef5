// fleet.each's options read into a fleet::Rollout's policy: at_once and max_failures as counts or
// percentages, the gate, pause, canary, max_per groups and the order. Misuse raises naming the option.
#include "bindings/vm.hpp"
#include "engine/fleet/rollout.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace engine::lua {

fleet::Amount amount_opt(lua_State* L, int opts, const char* field, fleet::Amount dflt) {
  int t = lua_getfield(L, opts, field);
  fleet::Amount a = dflt;
  if (t == LUA_TNUMBER) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
      luaL_error(L, "fleet.each: %s must be a whole number or a percentage like \"30%%\"", field);
    a = {static_cast<double>(lua_tointeger(L, -1)), false};
  } else if (t == LUA_TSTRING) {
    auto parsed = fleet::parse_amount(lua_tostring(L, -1));
    if (!parsed) luaL_error(L, "fleet.each: %s '%s' is not a count or a percentage up to 100%% like \"30%%\"", field, lua_tostring(L, -1));
    a = *parsed;
  } else if (t != LUA_TNIL) {
    luaL_error(L, "fleet.each: %s must be a number or a string like \"30%%\"", field);
  }
  lua_pop(L, 1);
  return a;
}

namespace {

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

}  // namespace

// The policy from fleet.each's options (at 2) and hosts (at 1); the gate function, if any, is
// left referenced in *gate_ref.
fleet::Rollout read_policy(lua_State* L, size_t total, size_t at_once, size_t budget, int* gate_ref) {
  const int opts = 2;
  fleet::Policy p;
  p.at_once = at_once;
  p.max_failures = budget;
  if (lua_getfield(L, opts, "strategy") == LUA_TSTRING) {
    std::string st = lua_tostring(L, -1);
    if (st != "batch" && st != "window") luaL_error(L, "fleet.each: strategy must be \"window\" or \"batch\", not \"%s\"", st.c_str());
    p.batch = st == "batch";
  }
  lua_pop(L, 1);
  p.pause = opt_number(L, opts, "pause", 0);
  double canary = opt_number(L, opts, "canary", 0);
  if (canary < 0 || canary != static_cast<double>(static_cast<size_t>(canary)))
    luaL_error(L, "fleet.each: canary must be a count of hosts (0 or more), not %f", canary);
  p.canary = static_cast<size_t>(canary);
  p.gate_timeout = opt_number(L, opts, "gate_timeout", 600);
  p.gate_interval = opt_number(L, opts, "gate_interval", 5);
  p.gate_retry = opt_number(L, opts, "gate_retry", 1);
  if (p.gate_interval < 0 || p.gate_retry < 0) luaL_error(L, "fleet.each: gate_interval and gate_retry must be 0 or more seconds");
  p.gate_passes = static_cast<int>(opt_number(L, opts, "gate_passes", 1));
  if (p.gate_passes < 1) luaL_error(L, "fleet.each: gate_passes must be at least 1");
  // A dry run changes nothing for a pause or a second pass of the gate to wait for: the gate is
  // asked once a host (what it says now is the plan's news) and nothing pauses.
  if (vm_of(L).dry_run) p.pause = 0, p.gate_passes = 1;
  int t = lua_getfield(L, opts, "between");
  if (t == LUA_TFUNCTION) *gate_ref = luaL_ref(L, LUA_REGISTRYINDEX), p.gated = true;
  else if (t != LUA_TNIL) luaL_error(L, "fleet.each: between must be a function(next_host) returning true or nil, why");
  else lua_pop(L, 1);
  if (lua_getfield(L, opts, "max_per") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
        luaL_error(L, "fleet.each: max_per takes variable = count (a positive integer), as {zone = 1}");
      p.caps.emplace_back(lua_tostring(L, -2), static_cast<size_t>(lua_tointeger(L, -1)));
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "fleet.each: max_per must be a table such as {zone = 1}");
  }
  lua_pop(L, 1);
  std::vector<std::vector<std::string>> cap_values(total, std::vector<std::string>(p.caps.size()));
  for (size_t i = 0; i < total; ++i)
    for (size_t c = 0; c < p.caps.size(); ++c) cap_values[i][c] = host_value(L, 1, i, p.caps[c].first);
  // order = function(host) return key end: admission sorted by key (stable), results stay in list order.
  std::vector<size_t> order;
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
    for (auto& k : keys) order.push_back(k.second);
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "fleet.each: order must be a function(host) returning a sort key");
  }
  lua_pop(L, 1);
  return fleet::Rollout(total, std::move(p), std::move(cap_values), std::move(order));
}

}  // namespace engine::lua
