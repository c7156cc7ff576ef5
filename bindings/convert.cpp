// Lua ↔ JSON in one place. 64-bit integers stay integers both ways; a table whose keys are exactly
// 1..n is an array, any other table an object; JSON null becomes nil (absent) in tables. An empty
// JSON array comes back as a table marked as an array (json_array), so it is written as [] again.
#include <cmath>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "bindings/lua.hpp"

namespace engine::lua {

namespace {

const char* kArrayMeta = "engine.json.array";
// JSON null inside an array: a Lua nil there would cut the list short (ipairs stops, # is unsure),
// so it is this light userdata instead (http.null), and is written back as null.
char null_sentinel;
// Deeper than any object an API returns; a runbook's table nested deeper is a bug.
constexpr int kMaxDepth = 200;

bool marked_array(lua_State* L, int idx) {
  if (!lua_getmetatable(L, idx)) return false;
  luaL_getmetatable(L, kArrayMeta);
  bool same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same;
}

}  // namespace

void mark_json_array(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  luaL_newmetatable(L, kArrayMeta);
  lua_setmetatable(L, idx);
}

void push_json_null(lua_State* L) { lua_pushlightuserdata(L, &null_sentinel); }

void push_json(lua_State* L, const json& v) {
  luaL_checkstack(L, 3, "json too deep");
  switch (v.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      lua_pushnil(L);
      return;
    case json::value_t::boolean:
      lua_pushboolean(L, v.get<bool>());
      return;
    case json::value_t::number_integer:
      lua_pushinteger(L, v.get<int64_t>());
      return;
    case json::value_t::number_unsigned: {
      auto u = v.get<uint64_t>();
      // Beyond 2^63 a Lua integer would wrap; such IDs are kept as strings instead.
      if (u > static_cast<uint64_t>(INT64_MAX)) lua_pushstring(L, std::to_string(u).c_str());
      else lua_pushinteger(L, static_cast<lua_Integer>(u));
      return;
    }
    case json::value_t::number_float:
      lua_pushnumber(L, v.get<double>());
      return;
    case json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      lua_pushlstring(L, s.data(), s.size());
      return;
    }
    case json::value_t::array: {
      lua_createtable(L, static_cast<int>(v.size()), 0);
      if (v.empty()) mark_json_array(L, -1);
      lua_Integer i = 1;
      for (const auto& item : v) {
        if (item.is_null()) push_json_null(L);
        else push_json(L, item);
        lua_rawseti(L, -2, i++);
      }
      return;
    }
    case json::value_t::object:
    case json::value_t::binary:
      lua_createtable(L, 0, static_cast<int>(v.size()));
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (it->is_null()) continue;
        push_json(L, it.value());
        lua_setfield(L, -2, it.key().c_str());
      }
      return;
  }
}

namespace {

// `path` holds the tables being encoded above this one: meeting one again is a cycle (a table met
// twice on different branches is fine).
json encode(lua_State* L, int idx, std::unordered_set<const void*>& path, int depth) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      return nullptr;
    case LUA_TBOOLEAN:
      return static_cast<bool>(lua_toboolean(L, idx));
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return static_cast<int64_t>(lua_tointeger(L, idx));
      return lua_tonumber(L, idx);
    case LUA_TSTRING: {
      size_t len = 0;
      const char* s = lua_tolstring(L, idx, &len);
      return std::string(s, len);
    }
    case LUA_TTABLE: {
      luaL_checkstack(L, 4, "table too deep");
      const void* self = lua_topointer(L, idx);
      if (path.count(self)) luaL_error(L, "cannot encode a table that contains itself");
      if (depth >= kMaxDepth) luaL_error(L, "cannot encode a table nested deeper than %d levels", kMaxDepth);
      path.insert(self);
      fill_host(L, idx);  // a host's vars and groups are part of it even before anyone read them
      fill_results(L, idx);  // so are a fleet.each result's entries
      lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, idx));
      lua_Integer count = 0;
      bool array = true;
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        ++count;
        if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 || lua_tointeger(L, -2) > n) array = false;
        lua_pop(L, 1);
      }
      if (array && count == n && (n > 0 || marked_array(L, idx))) {
        json out = json::array();
        for (lua_Integer i = 1; i <= n; ++i) {
          lua_rawgeti(L, idx, i);
          out.push_back(encode(L, -1, path, depth + 1));
          lua_pop(L, 1);
        }
        path.erase(self);
        return out;
      }
      json out = json::object();
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        std::string key;
        if (lua_type(L, -2) == LUA_TSTRING) key = lua_tostring(L, -2);
        else if (lua_isinteger(L, -2)) key = std::to_string(lua_tointeger(L, -2));
        else key = luaL_typename(L, -2);
        out[key] = encode(L, -1, path, depth + 1);
        lua_pop(L, 1);
      }
      path.erase(self);
      return out;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == &null_sentinel) return nullptr;
      [[fallthrough]];
    default: {
      // Functions, userdata, threads: shown by what they are (tostring), never silently dropped.
      size_t len = 0;
      const char* s = luaL_tolstring(L, idx, &len);
      json out = std::string(s, len);
      lua_pop(L, 1);
      return out;
    }
  }
}

}  // namespace

json to_json(lua_State* L, int idx) {
  std::unordered_set<const void*> path;
  return encode(L, idx, path, 0);
}

}  // namespace engine::lua
