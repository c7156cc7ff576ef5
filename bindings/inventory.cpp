// The inventory as runbooks see it: inv:group(name), inv:hosts(pattern), inv:host(name), inv:groups().
// Each host is one table for the whole run ({name, vars, groups}), so it can be compared and cached.
// `vars` and `groups` are filled in on first use (reading them, pairs, or turning the host into
// JSON): a 100,000-host group then costs a table and a name per host, not three tables and every
// variable's precedence merge, until a runbook looks.
#include <cstring>
#include <stdexcept>

#include "bindings/vm.hpp"
#include "engine/core/errors.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"

namespace engine::lua {

namespace {

void fill(lua_State* L, int host, const char* field);

const char* kInventoryMeta = "engine.inventory";
const char* kHostMeta = "engine.host";

inventory::Inventory& inv_of(lua_State* L) {
  Vm& vm = vm_of(L);
  if (!vm.inventory) luaL_error(L, "no inventory loaded (give one with -i)");
  return *vm.inventory;
}

void push_host(lua_State* L, const std::string& name) {
  lua_getfield(L, LUA_REGISTRYINDEX, "engine.hosts");
  if (lua_getfield(L, -1, name.c_str()) == LUA_TTABLE) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  inv_of(L);  // raises without an inventory
  lua_createtable(L, 0, 4);  // room for vars and groups when they come
  lua_pushstring(L, name.c_str());
  lua_setfield(L, -2, "name");
  luaL_setmetatable(L, kHostMeta);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, name.c_str());
  lua_remove(L, -2);
}

void push_hosts(lua_State* L, const std::vector<std::string>& names) {
  lua_createtable(L, static_cast<int>(names.size()), 0);
  lua_Integer i = 1;
  for (const auto& n : names) {
    push_host(L, n);
    lua_rawseti(L, -2, i++);
  }
}

// inv:group(name) → the hosts of the group and of the groups below it, in inventory order.
int l_group(lua_State* L) {
  luaL_checkudata(L, 1, kInventoryMeta);
  std::string name = luaL_checkstring(L, 2);
  auto& inv = inv_of(L);
  if (!inv.group(name)) {
    std::string hint = text::did_you_mean(name, inv.group_names());
    return luaL_error(L, "inv:group: no group '%s'%s", name.c_str(), hint.c_str());
  }
  push_hosts(L, inv.hosts_of(name));
  return 1;
}

// inv:hosts(pattern) → hosts matching an Ansible pattern ("k8s-cp:&etcd:!cp3"); all hosts without one.
int l_hosts(lua_State* L) {
  luaL_checkudata(L, 1, kInventoryMeta);
  std::string pattern = luaL_optstring(L, 2, "all");
  auto& inv = inv_of(L);
  std::vector<std::string> names;
  try {
    names = inv.match(pattern);
  } catch (const std::exception& e) {
    return luaL_error(L, "inv:hosts: %s", e.what());
  }
  push_hosts(L, names);
  return 1;
}

// inv:hidden(pattern) → the names of the hosts the pattern matches that --limit hides.
int l_hidden(lua_State* L) {
  luaL_checkudata(L, 1, kInventoryMeta);
  std::string pattern = luaL_optstring(L, 2, "all");
  json names = json::array();
  try {
    for (auto& h : inv_of(L).hidden(pattern)) names.push_back(h);
  } catch (const std::exception& e) {
    return luaL_error(L, "inv:hidden: %s", e.what());
  }
  push_json(L, names);
  return 1;
}

// inv:host(name) → the host; an unknown name is a runbook bug and raises.
int l_host(lua_State* L) {
  luaL_checkudata(L, 1, kInventoryMeta);
  std::string name = luaL_checkstring(L, 2);
  auto& inv = inv_of(L);
  if (!inv.host(name) || !inv.visible(name)) {
    std::string hint = text::did_you_mean(name, inv.host_names());
    return luaL_error(L, "inv:host: no host '%s'%s%s", name.c_str(), inv.host(name) ? " within --limit" : "", hint.c_str());
  }
  push_host(L, name);
  return 1;
}

// inv:groups() → every group name, `all` and `ungrouped` included.
int l_groups(lua_State* L) {
  luaL_checkudata(L, 1, kInventoryMeta);
  json names = json::array();
  for (const auto& g : inv_of(L).group_names()) names.push_back(g);
  push_json(L, names);
  return 1;
}

// Fills in one of a host's lazy fields ("vars" or "groups") unless it is there; leaves it on the stack.
void fill(lua_State* L, int host, const char* field) {
  host = lua_absindex(L, host);
  if (lua_getfield(L, host, "name") != LUA_TSTRING) luaL_error(L, "a host table lost its name");
  std::string name = lua_tostring(L, -1);
  lua_pop(L, 1);
  auto& inv = inv_of(L);
  if (field[0] == 'v') {
    push_json(L, inv.vars_of(name));
  } else {
    json groups = json::array();
    for (const auto& g : inv.groups_of(name)) groups.push_back(g);
    push_json(L, groups);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, host, field);  // raw: the table has no __newindex
}

// host.x: vars and groups on first use, else the host's methods (upvalue 1).
int host_index(lua_State* L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char* k = lua_tostring(L, 2);
    if (std::strcmp(k, "vars") == 0 || std::strcmp(k, "groups") == 0) {
      fill(L, 1, k);
      return 1;
    }
  }
  lua_pushvalue(L, 2);
  lua_gettable(L, lua_upvalueindex(1));
  return 1;
}

// The iterator host_pairs returns: next, but not whatever a runbook may have named `next`.
int host_next(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

// pairs(host) sees every field, filled in or not.
int host_pairs(lua_State* L) {
  fill_host(L, 1);
  push_fn(L, host_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

int host_tostring(lua_State* L) {
  lua_getfield(L, 1, "name");
  return 1;
}

// inventory.host(host_or_name, what) → host: what a function that takes a node accepts, a host of the
// inventory or its name; raises naming `what` otherwise.
int l_resolve(lua_State* L) {
  const char* what = luaL_optstring(L, 2, "inventory.host");
  if (is_table_of(L, 1, kHostMeta)) {
    lua_settop(L, 1);
    return 1;
  }
  if (lua_type(L, 1) != LUA_TSTRING) {
    luaL_where(L, 2);
    lua_pushfstring(L, "%s: a host must be an inventory host or its name, not a %s", what, luaL_typename(L, 1));
    lua_concat(L, 2);
    return lua_error(L);
  }
  std::string name = lua_tostring(L, 1);
  auto& inv = inv_of(L);
  if (!inv.host(name) || !inv.visible(name)) {
    std::string hint = text::did_you_mean(name, inv.host_names());
    luaL_where(L, 2);
    lua_pushfstring(L, "%s: no host '%s' in the inventory%s%s", what, name.c_str(), inv.host(name) ? " within --limit" : "",
                    hint.c_str());
    lua_concat(L, 2);
    return lua_error(L);
  }
  push_host(L, name);
  return 1;
}

const luaL_Reg kInventoryModule[] = {{"host", l_resolve}, {nullptr, nullptr}};

int open_module(lua_State* L) {
  new_lib(L, kInventoryModule);
  return 1;
}

const luaL_Reg kHostMetamethods[] = {{"__pairs", host_pairs}, {"__tostring", host_tostring}, {nullptr, nullptr}};

const luaL_Reg kInventoryMethods[] = {
    {"group", l_group}, {"hosts", l_hosts}, {"hidden", l_hidden}, {"host", l_host}, {"groups", l_groups}, {nullptr, nullptr}};

}  // namespace

void fill_host(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  if (!is_table_of(L, idx, kHostMeta)) return;
  for (const char* f : {"vars", "groups"}) {
    lua_pushstring(L, f);
    if (lua_rawget(L, idx) == LUA_TNIL) fill(L, idx, f), lua_pop(L, 1);
    lua_pop(L, 1);
  }
}

void open_inventory(lua_State* L) {
  register_module(L, "engine.inventory", open_module);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "engine.hosts");
  luaL_newmetatable(L, kInventoryMeta);
  new_lib(L, kInventoryMethods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, kHostMeta);
  push_host_methods(L);
  push_fn(L, host_index, 1);  // the methods are its upvalue
  lua_setfield(L, -2, "__index");
  set_funcs(L, kHostMetamethods);
  lua_pushstring(L, "engine.host");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

void push_inventory(lua_State* L) {
  lua_newuserdatauv(L, 1, 0);
  luaL_setmetatable(L, kInventoryMeta);
}

}  // namespace engine::lua
