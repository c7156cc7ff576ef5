// The inventory as runbooks see it: inv:group(name), inv:hosts(pattern), inv:host(name), inv:groups().
// Each host is one table for the whole run ({name, vars, groups}), so it can be compared and cached.
#include <stdexcept>

#include "bindings/vm.hpp"
#include "engine/core/errors.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"

namespace engine::lua {

namespace {

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
  auto& inv = inv_of(L);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, name.c_str());
  lua_setfield(L, -2, "name");
  push_json(L, inv.vars_of(name));
  lua_setfield(L, -2, "vars");
  json groups = json::array();
  for (const auto& g : inv.groups_of(name)) groups.push_back(g);
  push_json(L, groups);
  lua_setfield(L, -2, "groups");
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

int host_tostring(lua_State* L) {
  lua_getfield(L, 1, "name");
  return 1;
}

const luaL_Reg kInventoryMethods[] = {
    {"group", l_group}, {"hosts", l_hosts}, {"host", l_host}, {"groups", l_groups}, {nullptr, nullptr}};

}  // namespace

void open_inventory(lua_State* L) {
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "engine.hosts");
  luaL_newmetatable(L, kInventoryMeta);
  luaL_newlib(L, kInventoryMethods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, kHostMeta);
  push_host_methods(L);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, host_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, "engine.host");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

void push_inventory(lua_State* L) {
  lua_newuserdatauv(L, 1, 0);
  luaL_setmetatable(L, kInventoryMeta);
}

}  // namespace engine::lua
