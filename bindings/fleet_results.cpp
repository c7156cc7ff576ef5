// fleet.each's results table, its entries made when read (bindings/fleet_results.hpp says why).
#include "bindings/fleet_results.hpp"

#include <new>
#include <utility>

#include "bindings/vm.hpp"

namespace engine::lua {

namespace {

const char* const kLazyDataMeta = "engine.fleet.results";

// Entry i (0-based) of the results table at idx, made and kept in it; pushed.
void push_entry(lua_State* L, int idx, FleetResults& lr, size_t i) {
  static const char* names[] = {"skipped", "running", "ok", "failed", "skipped"};
  idx = lua_absindex(L, idx);
  auto err = lr.errors.find(i);
  auto val = lr.values.find(i);
  lua_createtable(L, 0, 4 + (err != lr.errors.end()) + (val != lr.values.end()));
  lua_rawgeti(L, LUA_REGISTRYINDEX, lr.hosts_ref);
  lua_rawgeti(L, -1, static_cast<lua_Integer>(i + 1));
  std::string name = name_of(L, -1, i);
  lua_setfield(L, -3, "host");
  lua_pop(L, 1);
  lua_pushlstring(L, name.data(), name.size());
  lua_setfield(L, -2, "name");
  lua_pushstring(L, names[lr.status[i]]);
  lua_setfield(L, -2, "status");
  if (err != lr.errors.end()) {
    lua_pushlstring(L, err->second.data(), err->second.size());
    lua_setfield(L, -2, "error");
  }
  lua_pushnumber(L, lr.seconds[i]);
  lua_setfield(L, -2, "duration");
  if (val != lr.values.end()) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, val->second);
    lua_setfield(L, -2, "value");
  }
  lua_pushvalue(L, -1);
  lua_rawseti(L, idx, static_cast<lua_Integer>(i + 1));
}

FleetResults& lazy_of(lua_State* L) { return *static_cast<FleetResults*>(lua_touserdata(L, lua_upvalueindex(1))); }

int lazy_index(lua_State* L) {
  auto& lr = lazy_of(L);
  int is_num = 0;
  lua_Integer k = lua_type(L, 2) == LUA_TNUMBER ? lua_tointegerx(L, 2, &is_num) : 0;  // res[2.0] is res[2]
  if (is_num) {
    if (k >= 1 && static_cast<size_t>(k) <= lr.status.size()) {
      push_entry(L, 1, lr, static_cast<size_t>(k - 1));
      return 1;
    }
  }
  return 0;
}

int lazy_len(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(lazy_of(L).status.size()));
  return 1;
}

// Every entry made, then the table's own next.
void fill_all(lua_State* L, int idx, FleetResults& lr) {
  for (size_t i = 0; i < lr.status.size(); ++i) {
    if (lua_rawgeti(L, idx, static_cast<lua_Integer>(i + 1)) == LUA_TNIL) {
      lua_pop(L, 1);
      push_entry(L, idx, lr, i);
    }
    lua_pop(L, 1);
  }
}

int lazy_pairs(lua_State* L) {
  fill_all(L, 1, lazy_of(L));
  lua_getglobal(L, "next");
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

int lazy_gc(lua_State* L) {
  auto* lr = static_cast<FleetResults*>(luaL_checkudata(L, 1, kLazyDataMeta));
  for (auto& [i, ref] : lr->values) luaL_unref(L, LUA_REGISTRYINDEX, ref);
  luaL_unref(L, LUA_REGISTRYINDEX, lr->hosts_ref);
  lr->~FleetResults();
  return 0;
}

// The metatable of one results table, over the userdata at idx (popped).
void push_lazy_metatable(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  lua_createtable(L, 0, 4);
  const std::pair<const char*, lua_CFunction> fns[] = {{"__index", lazy_index}, {"__len", lazy_len}, {"__pairs", lazy_pairs}};
  for (const auto& [name, fn] : fns) {
    lua_pushvalue(L, idx);
    push_fn(L, fn, 1);
    lua_setfield(L, -2, name);
  }
  lua_pushvalue(L, idx);
  lua_setfield(L, -2, "__fleet_results");  // fill_results() finds the entries' data here
  lua_remove(L, idx);
}

}  // namespace

FleetResults* push_results_data(lua_State* L) {
  auto* lr = new (lua_newuserdatauv(L, sizeof(FleetResults), 0)) FleetResults;
  luaL_setmetatable(L, kLazyDataMeta);  // its __gc releases the references
  return lr;
}

void push_results_table(lua_State* L, size_t ok, size_t failed, size_t skipped) {
  int data = lua_gettop(L);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, static_cast<lua_Integer>(ok));
  lua_setfield(L, -2, "ok");
  lua_pushinteger(L, static_cast<lua_Integer>(failed));
  lua_setfield(L, -2, "failed");
  lua_pushinteger(L, static_cast<lua_Integer>(skipped));
  lua_setfield(L, -2, "skipped");
  push_lazy_metatable(L, data);  // the userdata removed: the table is where it was
  lua_setmetatable(L, -2);
}

void register_results_meta(lua_State* L) {
  if (luaL_newmetatable(L, kLazyDataMeta)) {
    push_fn(L, lazy_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}

std::string name_of(lua_State* L, int idx, size_t i) {
  if (lua_type(L, idx) == LUA_TSTRING) return lua_tostring(L, idx);
  if (lua_istable(L, idx) && lua_getfield(L, idx, "name") == LUA_TSTRING) {
    std::string s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
  }
  if (lua_istable(L, idx)) lua_pop(L, 1);
  return std::to_string(i + 1).insert(0, 1, '#');  // not "#" + ...: GCC 12's false -Wrestrict (PR 105651)
}

void fill_results(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return;
  lua_getfield(L, -1, "__fleet_results");
  if (auto* lr = static_cast<FleetResults*>(luaL_testudata(L, -1, kLazyDataMeta))) fill_all(L, idx, *lr);
  lua_pop(L, 2);
}

}  // namespace engine::lua
