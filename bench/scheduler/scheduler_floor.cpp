// bench/scheduler's floor: the least any scheduler of Lua coroutines on Boost.Asio can do for the
// bench's workload, with nothing of the engine around it. N tasks, at most W at once, in order;
// each runs `function() nap(SECONDS) end` in a coroutine (a finished one is reused, as the engine
// does), where nap arms a steady_timer and yields, and the timer's handler resumes it. No results,
// no logs, no report, no error handling beyond aborting. Built twice from this one file: against lua5.4-c++ (every yield a C++ throw,
// what the engine links) and against Debian's C build of the same Lua 5.4 (a yield is a longjmp),
// so bench/scheduler/run can show what the Lua build alone costs.
//
// Usage: scheduler-floor[-c] TASKS AT_ONCE SECONDS   → "RESULT tasks=N wall=S"
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#ifdef FLOOR_LUA_C
#include <lua.hpp>  // the C build: C linkage
#else
#include <lauxlib.h>  // lua5.4-c++: C++ linkage, like bindings/
#include <lua.h>
#include <lualib.h>
#endif

namespace {

namespace asio = boost::asio;

struct Floor;

struct Task {
  Floor* floor;
  lua_State* co;
  int ref;
  asio::steady_timer timer;
  Task(Floor* f, asio::io_context& io) : floor(f), co(nullptr), ref(LUA_NOREF), timer(io) {}
};

struct Floor {
  asio::io_context io{1};
  lua_State* L = nullptr;
  int fn_ref = LUA_NOREF;
  long total = 0, started = 0, finished = 0, at_once = 0;
  std::vector<std::pair<lua_State*, int>> idle;  // finished coroutines and their refs

  void admit() {
    while (started < total && started - finished < at_once) start();
  }

  void start() {
    ++started;
    auto t = std::make_unique<Task>(this, io);
    if (!idle.empty()) {
      std::tie(t->co, t->ref) = idle.back();
      idle.pop_back();
    } else {
      t->co = lua_newthread(L);
      t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    *static_cast<Task**>(lua_getextraspace(t->co)) = t.get();
    lua_rawgeti(t->co, LUA_REGISTRYINDEX, fn_ref);
    resume(t.release(), 0);
  }

  void resume(Task* t, int nargs) {
    int nres = 0;
    int status = lua_resume(t->co, nullptr, nargs, &nres);
    if (status == LUA_YIELD) return;
    if (status != LUA_OK) {
      std::fprintf(stderr, "scheduler-floor: %s\n", lua_tostring(t->co, -1));
      std::exit(1);
    }
    lua_settop(t->co, 0);
    idle.emplace_back(t->co, t->ref);
    delete t;
    ++finished;
    admit();
  }
};

int l_nap(lua_State* L) {
  Task* t = *static_cast<Task**>(lua_getextraspace(L));
  t->timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(luaL_checknumber(L, 1))));
  t->timer.async_wait([t](const boost::system::error_code&) { t->floor->resume(t, 0); });
  return lua_yield(L, 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s TASKS AT_ONCE SECONDS\n", argv[0]);
    return 2;
  }
  Floor f;
  f.total = std::atol(argv[1]);
  f.at_once = std::atol(argv[2]);
  f.L = luaL_newstate();
  luaL_openlibs(f.L);
  lua_register(f.L, "nap", l_nap);
  std::string chunk = std::string("return function() nap(") + argv[3] + ") end";
  if (luaL_dostring(f.L, chunk.c_str()) != LUA_OK) return 1;
  f.fn_ref = luaL_ref(f.L, LUA_REGISTRYINDEX);
  auto t0 = std::chrono::steady_clock::now();
  f.admit();
  f.io.run();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (f.finished != f.total) return 1;
  std::printf("RESULT tasks=%ld wall=%.3f\n", f.total, wall);
  lua_close(f.L);
  return 0;
}
