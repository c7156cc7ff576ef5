// runbook{ name, summary, params, run, read_only }: the declaration every runbook returns. Checked
// when it is made, so a misspelt field or a bad param spec names the runbook's line.
#include "bindings/runbook.hpp"

#include "bindings/options.hpp"
#include "engine/core/text.hpp"

namespace engine::lua {

namespace {

const char* kRunbookMeta = "engine.runbook";

const std::vector<std::string> kRunbookFields = {"name", "summary", "params", "run", "description", "read_only"};
const std::vector<std::string> kParamFields = {"type", "required", "default", "pattern", "help", "secret", "values", "min", "max"};

// min/max: a number, or for a duration also "10m".
std::optional<double> range_end(lua_State* L, int idx, const char* field, const params::Spec& s, const std::string& what) {
  int t = lua_getfield(L, idx, field);
  std::optional<double> v;
  if (t != LUA_TNIL) {
    bool numeric = s.type == params::Type::integer || s.type == params::Type::number || s.type == params::Type::duration;
    if (!numeric) luaL_error(L, "%s: '%s' applies to integer, number and duration params only", what.c_str(), field);
    if (t == LUA_TNUMBER) v = lua_tonumber(L, -1);
    else if (t == LUA_TSTRING && s.type == params::Type::duration) v = params::parse_duration(lua_tostring(L, -1));
    if (!v) luaL_error(L, "%s: '%s' must be a number%s", what.c_str(), field, s.type == params::Type::duration ? " or a duration" : "");
  }
  lua_pop(L, 1);
  return v;
}

params::Spec read_spec(lua_State* L, int idx, const std::string& name) {
  std::string what = "param '" + name + "'";
  if (!lua_istable(L, idx)) luaL_error(L, "%s: must be a table such as { type = \"string\" }", what.c_str());
  check_options(L, idx, kParamFields, what, "field");
  params::Spec s;
  s.name = name;
  std::string type = opt_string(L, idx, "type", what);
  try {
    s.type = params::parse_type(type.empty() ? "string" : type);
  } catch (const std::invalid_argument& e) {
    luaL_error(L, "%s: %s", what.c_str(), e.what());
  }
  s.required = opt_bool(L, idx, "required", what);
  s.secret = opt_bool(L, idx, "secret", what);
  s.help = opt_string(L, idx, "help", what);
  s.pattern = opt_string(L, idx, "pattern", what);
  if (!s.pattern.empty()) pattern_matches(L, "", s.pattern);  // raises here if the pattern is malformed
  if (lua_getfield(L, idx, "values") == LUA_TTABLE) {
    json v = to_json(L, -1);
    if (!v.is_array()) luaL_error(L, "%s: 'values' must be a list of strings", what.c_str());
    for (auto& x : v) {
      if (!x.is_string()) luaL_error(L, "%s: 'values' must be a list of strings", what.c_str());
      s.values.push_back(x.get<std::string>());
    }
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "%s: 'values' must be a list of strings", what.c_str());
  }
  lua_pop(L, 1);
  if (s.type == params::Type::enumeration && s.values.empty())
    luaL_error(L, "%s: an enum needs values = { ... }", what.c_str());
  // Declared and not checked would be worse than not declared.
  if (!s.values.empty() && s.type != params::Type::enumeration && s.type != params::Type::list)
    luaL_error(L, "%s: 'values' applies to enum and list params only", what.c_str());
  s.min = range_end(L, idx, "min", s, what);
  s.max = range_end(L, idx, "max", s, what);
  if (s.min && s.max && *s.min > *s.max) luaL_error(L, "%s: min is above max", what.c_str());
  if (lua_getfield(L, idx, "default") != LUA_TNIL) {
    try {
      s.default_value = params::normalize_default(s, to_json(L, -1));
    } catch (const std::invalid_argument& e) {
      luaL_error(L, "%s", e.what());
    }
    if (s.required) luaL_error(L, "%s: a param with a default is not required; drop one of them", what.c_str());
  }
  lua_pop(L, 1);
  return s;
}

// runbook{...}: validates the declaration and returns it marked as a runbook.
int l_runbook(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  check_options(L, 1, kRunbookFields, "runbook", "field");
  if (opt_string(L, 1, "name", "runbook").empty()) luaL_error(L, "runbook: 'name' is required (a string)");
  opt_string(L, 1, "summary", "runbook");
  opt_bool(L, 1, "read_only", "runbook");
  if (lua_getfield(L, 1, "run") != LUA_TFUNCTION) luaL_error(L, "runbook: 'run' must be a function(p, inv)");
  lua_pop(L, 1);
  int t = lua_getfield(L, 1, "params");
  if (t == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "runbook: params must be keyed by name");
      read_spec(L, lua_gettop(L), lua_tostring(L, -2));
      lua_pop(L, 1);
    }
  } else if (t != LUA_TNIL) {
    luaL_error(L, "runbook: 'params' must be a table of name = { type = ... }");
  }
  lua_pop(L, 1);
  luaL_newmetatable(L, kRunbookMeta);
  lua_setmetatable(L, 1);
  return 1;
}

}  // namespace

bool pattern_matches(lua_State* L, const std::string& value, const std::string& pattern) {
  lua_getfield(L, LUA_REGISTRYINDEX, "engine.string_find");
  lua_pushlstring(L, value.data(), value.size());
  lua_pushlstring(L, pattern.data(), pattern.size());
  lua_call(L, 2, 1);  // a malformed pattern raises, naming it
  bool ok = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return ok;
}

bool is_runbook(lua_State* L, int idx) { return is_table_of(L, idx, kRunbookMeta); }

RunbookInfo read_runbook(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  RunbookInfo info;
  info.name = opt_string(L, idx, "name", "runbook");
  info.summary = opt_string(L, idx, "summary", "runbook");
  info.read_only = opt_bool(L, idx, "read_only", "runbook");
  if (lua_getfield(L, idx, "params") == LUA_TTABLE) {
    int p = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, p)) {
      info.params.push_back(read_spec(L, lua_gettop(L), lua_tostring(L, -2)));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  std::sort(info.params.begin(), info.params.end(), [](auto& a, auto& b) {
    return std::tuple(!a.required, a.name) < std::tuple(!b.required, b.name);
  });
  return info;
}

void open_runbook(lua_State* L) {
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "find");
  lua_setfield(L, LUA_REGISTRYINDEX, "engine.string_find");
  lua_pop(L, 1);
  push_fn(L, l_runbook);
  lua_setglobal(L, "runbook");
}

}  // namespace engine::lua
