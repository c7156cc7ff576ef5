// What every binding file shares, whatever it binds: the Lua headers (Lua compiled as C++), the
// C functions' wrappers, module registration, Lua <-> JSON, interrupts as Lua values. Light on
// purpose (no Asio, JSON forward-declared): a file that needs the tasks or the Vm's members
// includes bindings/vm.hpp, which includes this.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

namespace engine::lua {

using json = nlohmann::json;

struct Vm;
struct Task;

// Why a suspended task is woken with an error instead of its operation's result.
struct Interrupt {
  enum Kind { none, timeout, cancelled, interrupted, lease_lost } kind = none;
  uint64_t deadline = 0;  // which timeout() armed it
};

Vm& vm_of(lua_State* L);
// Whether the value at idx is a table whose metatable is the registry's `meta` (luaL_newmetatable).
inline bool is_table_of(lua_State* L, int idx, const char* meta) {
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return false;
  luaL_getmetatable(L, meta);
  bool same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same;
}
// The task this coroutine belongs to, or nullptr (the main thread, a user's own coroutine).
Task* current_task(lua_State* L);

// Interrupt values as Lua sees them: raised errors that sandboxed pcall re-raises.
void push_interrupt(lua_State* L, Interrupt i);
// nullptr when the value at idx is not an interrupt.
const Interrupt* to_interrupt(lua_State* L, int idx);

// The error at the top of a finished coroutine as text (interrupts as "timeout", "cancelled", ...).
std::string error_text(lua_State* co, int idx = -1);

// Lua ↔ JSON, in one place. Integers stay 64-bit integers. to_json raises on a table that
// contains itself or is nested too deep.
void push_json(lua_State* L, const json& v);
json to_json(lua_State* L, int idx);
// Marks the table at idx as a JSON array, so an empty one is written as [] (not {}).
void mark_json_array(lua_State* L, int idx);
// JSON null as an array element (http.null): pushed by push_json for nulls in arrays, encoded as null.
void push_json_null(lua_State* L);

// Every C function Lua can call is pushed through these: a C++ exception thrown inside it becomes a
// Lua error with its message (Lua built as C++ would otherwise catch it as an unknown error and
// report whatever value was on the stack). nup upvalues are taken from the stack as with
// lua_pushcclosure, and keep their indexes.
void push_fn(lua_State* L, lua_CFunction f, int nup = 0);
// A binding that waits returns suspend(L) (bindings/vm.hpp): this value, on which push_fn's
// dispatch yields the task once the binding has returned, outside its try block. In lua5.4-c++ a
// yield is a C++ throw, and one thrown through a try block and the binding's own frame cost the
// unwinder a handler match and a frame on every wait (bench/scheduler: 0.3 us of a task's 5).
inline constexpr int kSuspend = -1;
int yield_task(lua_State* L);  // lua_yieldk with the task's continuation (bindings/task.cpp)
void set_funcs(lua_State* L, const luaL_Reg* fns);  // luaL_setfuncs(L, fns, 0), through push_fn
void new_lib(lua_State* L, const luaL_Reg* fns);    // luaL_newlib, through push_fn

// Module registration: each binding file adds its module to package.loaded-like registry table.
void open_log(lua_State* L);
void open_time(lua_State* L);
void open_runbook(lua_State* L);
void open_inventory(lua_State* L);
void open_fleet(lua_State* L);
void open_ssh(lua_State* L);
void open_k8s(lua_State* L);
void close_k8s(Vm& vm);
size_t k8s_in_flight(Vm& vm);
void open_http(lua_State* L);
void open_etcd(lua_State* L);
void open_confirm(lua_State* L);
void open_tls(lua_State* L);
// step()'s and timeout()'s natives, added to the table the prelude receives.
void add_journal_natives(lua_State* L);
void add_task_natives(lua_State* L);
void close_http(Vm& vm);
// Ends every SSH session of the run (before the io_context goes).
void close_ssh(Vm& vm);
// Methods of host tables (host:exec, host:upload, ...), filled by the modules that provide them.
void push_host_methods(lua_State* L);
// Registers a native module so `require(name)` finds it.
void register_module(lua_State* L, const char* name, lua_CFunction open);

// The inventory object passed to run(p, inv).
void push_inventory(lua_State* L);
// Host tables fill in `vars` and `groups` on first use; this fills them in now (anything else: no-op).
void fill_host(lua_State* L, int idx);
// fleet.each's results table makes its per-host entries when read; this makes them all now (anything else: no-op).
void fill_results(lua_State* L, int idx);

}  // namespace engine::lua
