// The one way C functions reach Lua: each runs inside a try that turns a C++ exception into a Lua
// error. Lua's own errors (C++ throws of Lua's internal type in the lua5.4-c++ build) are no
// std::exception and pass through untouched; a binding that waits yields after the try (kSuspend).
#include <new>
#include <stdexcept>

#include "bindings/lua.hpp"

namespace engine::lua {

namespace {

// The real function is the closure's last upvalue (N is how many it has of its own).
template <int N>
int dispatch(lua_State* L) {
  auto f = reinterpret_cast<lua_CFunction>(lua_touserdata(L, lua_upvalueindex(N + 1)));
  int n;
  try {
    n = f(L);
  } catch (const std::bad_alloc&) {
    return luaL_error(L, "not enough memory");
  } catch (const std::exception& e) {
    return luaL_error(L, "%s", e.what());
  }
  return n == kSuspend ? yield_task(L) : n;  // here, not inside f: see kSuspend
}

}  // namespace

void push_fn(lua_State* L, lua_CFunction f, int nup) {
  lua_pushlightuserdata(L, reinterpret_cast<void*>(f));
  switch (nup) {
    case 0: lua_pushcclosure(L, dispatch<0>, 1); break;
    case 1: lua_pushcclosure(L, dispatch<1>, 2); break;
    case 2: lua_pushcclosure(L, dispatch<2>, 3); break;
    default: luaL_error(L, "push_fn: at most 2 upvalues");
  }
}

void set_funcs(lua_State* L, const luaL_Reg* fns) {
  for (; fns->name; ++fns) {
    push_fn(L, fns->func);
    lua_setfield(L, -2, fns->name);
  }
}

void new_lib(lua_State* L, const luaL_Reg* fns) {
  int n = 0;
  for (const luaL_Reg* p = fns; p->name; ++p) ++n;
  lua_createtable(L, 0, n);
  set_funcs(L, fns);
}

}  // namespace engine::lua
