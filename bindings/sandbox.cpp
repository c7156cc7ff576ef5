// The runbook sandbox: an allow-list of globals, `require` limited to the stdlib and the runbook's
// own directory (and its lib/), text chunks only, and an error for every read of an undefined global.
#include <algorithm>
#include <string>
#include <vector>
#include <filesystem>
#include <fstream>

#include "bindings/options.hpp"
#include "bindings/vm.hpp"
#include "engine/core/text.hpp"

namespace fs = std::filesystem;

namespace engine::lua {

namespace {

// Globals a runbook may read; anything else the standard libraries define is removed.
const char* const kAllowedGlobals[] = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "rawequal", "rawget", "rawlen", "rawset",
    "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type", "load", "collectgarbage", "_G",
    "_VERSION", "string", "table", "math", "utf8", "coroutine", "os", "print", "require",
};

int strict_index(lua_State* L) {
  const char* name = lua_tostring(L, 2);  // table 1: the globals as the prelude left them
  std::vector<std::string> known;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) == LUA_TSTRING) known.emplace_back(lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  std::string hint = name ? text::did_you_mean(name, known) : "";
  return luaL_error(L, "undefined global '%s'%s", name ? name : "?", hint.c_str());
}

int frozen_newindex(lua_State* L) {
  const char* name = lua_tostring(L, 2);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));  // the value the name has now
  if (!lua_isnil(L, -1))
    return luaL_error(L, "global '%s' belongs to the engine: it cannot be replaced (use a local of another name)", name ? name : "?");
  return luaL_error(L, "assignment to undeclared global '%s' (declare it: local %s = ...)", name ? name : "?", name ? name : "x");
}

// pairs(_G) walks the real globals.
int globals_pairs(lua_State* L) {
  lua_pushvalue(L, lua_upvalueindex(2));  // next, as the prelude left it
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushnil(L);
  return 3;
}

// The globals as the prelude left them go into a table of their own behind an empty _G (as Redis
// protects its scripts' globals): reading one is a table lookup as before, a name nobody defined
// raises and names it, and assigning any global raises, so a runbook can neither replace step,
// log or timeout nor leak a misspelt variable into every coroutine of the run.
void freeze_globals(lua_State* L) {
  lua_pushglobaltable(L);
  int g = lua_gettop(L);
  lua_newtable(L);  // the real globals
  int real = lua_gettop(L);
  std::vector<std::string> names;
  lua_pushnil(L);
  while (lua_next(L, g)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, real);  // real[k] = v, k stays for lua_next
    if (lua_type(L, -1) == LUA_TSTRING) names.emplace_back(lua_tostring(L, -1));
  }
  for (const auto& n : names) {
    lua_pushnil(L);
    lua_setfield(L, g, n.c_str());
  }
  lua_pushvalue(L, g);
  lua_setfield(L, real, "_G");  // _G is the proxy, as before
  lua_newtable(L);  // the real table's metatable: a missing name raises
  push_fn(L, strict_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, real);
  lua_newtable(L);  // the proxy's
  lua_pushvalue(L, real);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, real);
  push_fn(L, frozen_newindex, 1);
  lua_setfield(L, -2, "__newindex");
  lua_pushvalue(L, real);
  lua_getfield(L, real, "next");
  push_fn(L, globals_pairs, 2);
  lua_setfield(L, -2, "__pairs");
  lua_pushstring(L, "the engine's globals");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, g);
  lua_settop(L, g - 1);
}

// coroutine.yield from the task itself would hang it forever; only coroutines a runbook made may yield.
int guarded_yield(lua_State* L) {
  if (current_task(L)) return luaL_error(L, "coroutine.yield: not inside a coroutine of your own (the engine runs this one)");
  return lua_yield(L, lua_gettop(L));
}

bool valid_module_name(const std::string& name) {
  if (name.empty() || name.front() == '.' || name.back() == '.' || name.find("..") != std::string::npos) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

// Every module a runbook could require: the native ones, the stdlib's files, and the Lua files
// beside the runbook and in its lib/ (for the did-you-mean of a typo).
std::vector<std::string> module_names(lua_State* L, const Vm& vm) {
  std::vector<std::string> names;
  lua_getfield(L, LUA_REGISTRYINDEX, "engine.natives");
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) == LUA_TSTRING) names.push_back(lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  auto add_tree = [&](const fs::path& root, bool recursive) {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) return;
    auto add = [&](const fs::path& p) {
      if (p.extension() != ".lua") return;
      auto rel = fs::relative(p, root, ec).replace_extension("").string();
      if (rel.rfind("meta", 0) == 0) return;  // the LuaCATS definitions are not modules
      std::replace(rel.begin(), rel.end(), '/', '.');
      names.push_back(rel);
    };
    if (recursive) {
      for (auto& e : fs::recursive_directory_iterator(root, ec)) add(e.path());
    } else {
      for (auto& e : fs::directory_iterator(root, ec)) add(e.path());
    }
  };
  add_tree(vm.stdlib_dir, true);
  add_tree(vm.runbook_dir, false);
  add_tree(fs::path(vm.runbook_dir) / "lib", true);
  return names;
}

int l_require(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "engine.loaded");
  int loaded = lua_gettop(L);
  if (lua_getfield(L, loaded, name.c_str()) != LUA_TNIL) {
    if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) return luaL_error(L, "require '%s': loop between modules", name.c_str());
    return 1;
  }
  lua_pop(L, 1);

  lua_getfield(L, LUA_REGISTRYINDEX, "engine.natives");
  if (lua_getfield(L, -1, name.c_str()) == LUA_TFUNCTION) {
    lua_call(L, 0, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, loaded, name.c_str());
    return 1;
  }
  lua_pop(L, 2);

  if (!valid_module_name(name)) return luaL_error(L, "require '%s': not a module name (letters, digits, _ - and dots)", name.c_str());
  Vm& vm = vm_of(L);
  std::string rel = name;
  std::replace(rel.begin(), rel.end(), '.', '/');
  std::vector<fs::path> tried;
  if (text::starts_with(name, "std.") || text::starts_with(name, "engine.")) {
    // std.* and the engine modules written in Lua (engine.k8s) live in the stdlib.
    tried.push_back(fs::path(vm.stdlib_dir) / (rel + ".lua"));
  } else {
    tried.push_back(fs::path(vm.runbook_dir) / (rel + ".lua"));
    tried.push_back(fs::path(vm.runbook_dir) / "lib" / (rel + ".lua"));
  }
  for (const auto& p : tried) {
    vm.required_files.push_back(p.string());  // found or not: what a cached static check depended on
    if (!fs::is_regular_file(p)) continue;
    lua_pushlightuserdata(L, &vm);  // marks "loading" to catch loops
    lua_setfield(L, loaded, name.c_str());
    if (luaL_loadfilex(L, p.c_str(), "t") != LUA_OK) return lua_error(L);
    lua_pushstring(L, name.c_str());
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, loaded, name.c_str());
    return 1;
  }
  lua_pushnil(L);
  lua_setfield(L, loaded, name.c_str());
  std::string paths;
  for (const auto& p : tried) paths += "\n\tno file " + p.string();
  vm.missing_module = name;
  std::string hint = text::did_you_mean(name, module_names(L, vm));
  return luaL_error(L, "module '%s' not found%s (runbooks may require engine.*, std.* and files beside the runbook or in its lib/):%s",
                    name.c_str(), hint.c_str(), paths.c_str());
}

void prune_os(lua_State* L) {
  lua_getglobal(L, "os");
  lua_newtable(L);
  for (const char* f : {"time", "clock", "date", "difftime", "getenv"}) {
    lua_getfield(L, -2, f);
    lua_setfield(L, -2, f);
  }
  lua_setglobal(L, "os");
  lua_pop(L, 1);
}

}  // namespace

void register_module(lua_State* L, const char* name, lua_CFunction open) {
  lua_getfield(L, LUA_REGISTRYINDEX, "engine.natives");
  push_fn(L, open);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

// Builds the sandboxed globals of a fresh state: called once by the runtime before loading a runbook.
void open_sandbox(lua_State* L, const std::string& stdlib_dir) {
  luaL_openlibs(L);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "engine.loaded");
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "engine.natives");

  prune_os(L);
  lua_getglobal(L, "string");
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");  // binary chunks stay out
  lua_pop(L, 1);
  lua_getglobal(L, "coroutine");
  push_fn(L, guarded_yield);
  lua_setfield(L, -2, "yield");
  lua_pop(L, 1);
  push_fn(L, l_require);
  lua_setglobal(L, "require");

  // Remove every global not on the allow-list (io, debug, package, dofile, loadfile, ...).
  std::vector<std::string> drop;
  lua_pushglobaltable(L);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    std::string k = lua_tostring(L, -2);
    bool allowed = std::any_of(std::begin(kAllowedGlobals), std::end(kAllowedGlobals), [&](const char* a) { return k == a; });
    if (!allowed) drop.push_back(k);
    lua_pop(L, 1);
  }
  for (const auto& k : drop) {
    lua_pushnil(L);
    lua_setfield(L, -2, k.c_str());
  }
  lua_pop(L, 1);

  open_log(L);
  open_time(L);
  open_runbook(L);
  open_inventory(L);
  open_fleet(L);
  open_ssh(L);
  open_k8s(L);
  open_http(L);
  open_etcd(L);
  open_confirm(L);
  open_check(L);
  open_tls(L);

  std::string prelude = (fs::path(stdlib_dir) / "prelude.lua").string();
  if (luaL_loadfilex(L, prelude.c_str(), "t") != LUA_OK) throw std::runtime_error(lua_tostring(L, -1));
  lua_newtable(L);
  add_task_natives(L);
  add_journal_natives(L);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) throw std::runtime_error(lua_tostring(L, -1));

  freeze_globals(L);
}

}  // namespace engine::lua
