// Tasks: the runbook's coroutines on the event loop. A yielding binding suspends its task with
// begin()/yield(); the operation's completion calls complete(), which resumes it through resume(),
// the only place lua_resume is called. Deadlines and cancellation wake a task with an interrupt.
#include <boost/asio/post.hpp>
#include <tuple>

#include "bindings/vm.hpp"
#include "engine/log/log.hpp"

namespace engine::lua {

namespace {

const char* kInterruptMeta = "engine.interrupt";

// Runs when a suspended task resumes: raise the interrupt or the pushed error, else return results.
int continuation(lua_State* L, int status, lua_KContext ctx) {
  Task* t = current_task(L);
  if (t->pending.kind != Interrupt::none) {
    Interrupt i = t->pending;
    t->pending = {};
    push_interrupt(L, i);
    return lua_error(L);
  }
  if (t->raise_top) {
    t->raise_top = false;
    return lua_error(L);
  }
  return t->resume_nargs;
}

const char* const kInterruptNames[] = {"none", "timeout", "cancelled", "interrupted", "lease lost"};

int interrupt_tostring(lua_State* L) {
  auto* i = static_cast<Interrupt*>(luaL_checkudata(L, 1, kInterruptMeta));
  lua_pushstring(L, kInterruptNames[i->kind]);
  return 1;
}

// At most this many finished coroutines wait for reuse (~1 KB each).
constexpr size_t kIdleThreads = 1024;

void retire(Task& t, bool reusable) {
  t.finished = true;
  t.suspended = false;
  t.cancel_op = nullptr;
  for (auto& [_, timer] : t.deadlines) timer->cancel();
  t.timer.cancel();
  t.deadlines.clear();
  if (t.prev_live) t.prev_live->next_live = t.next_live;
  else t.vm->live = t.next_live;
  if (t.next_live) t.next_live->prev_live = t.prev_live;
  t.prev_live = t.next_live = nullptr;
  --t.vm->live_count;
  *static_cast<Task**>(lua_getextraspace(t.co)) = nullptr;
  // A coroutine that returned is dead to Lua but clean: an empty stack takes a new function.
  if (reusable && lua_status(t.co) == LUA_OK && t.vm->idle_threads.size() < kIdleThreads) {
    lua_settop(t.co, 0);
    t.vm->idle_threads.emplace_back(t.co, t.ref);
  } else {
    luaL_unref(t.vm->L, LUA_REGISTRYINDEX, t.ref);
  }
  t.ref = LUA_NOREF;
}

}  // namespace

Vm& vm_of(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "engine.vm");
  auto* vm = static_cast<Vm*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return *vm;
}

Task* current_task(lua_State* L) { return *static_cast<Task**>(lua_getextraspace(L)); }

TaskPtr spawn(Vm& vm, lua_State* from, int nargs, std::string host, std::function<void(Task&, bool)> on_done) {
  auto t = std::make_shared<Task>(vm.io);
  t->vm = &vm;
  t->host = std::move(host);
  t->on_done = std::move(on_done);
  if (!vm.idle_threads.empty()) {
    std::tie(t->co, t->ref) = vm.idle_threads.back();
    vm.idle_threads.pop_back();
  } else {
    t->co = lua_newthread(from);
    lua_sethook(t->co, nullptr, 0, 0);  // not the busy hook of the task that spawned it
    t->ref = luaL_ref(from, LUA_REGISTRYINDEX);
  }
  lua_xmove(from, t->co, nargs + 1);
  *static_cast<Task**>(lua_getextraspace(t->co)) = t.get();
  t->next_live = vm.live;
  if (vm.live) vm.live->prev_live = t.get();
  vm.live = t.get();
  ++vm.live_count;
  asio::post(vm.io, [t, nargs] {
    if (t->pending.kind != Interrupt::none && !t->finished) {
      // Cancelled before it ever ran: it ends as cancelled without running a line.
      lua_settop(t->co, 0);
      push_interrupt(t->co, t->pending);
      auto done = std::move(t->on_done);
      if (done) done(*t, false);
      retire(*t, false);
      return;
    }
    resume(*t, nargs);
  });
  return t;
}

void resume(Task& t, int nargs) {
  if (t.finished) return;
  TaskPtr keep = t.shared_from_this();  // on_done may drop the last owner
  t.suspended = false;
  t.cancel_op = nullptr;
  t.resume_nargs = nargs;
  int nres = 0;
  log::set_current_step(t.steps.empty() ? std::string() : t.steps.back());
  busy_enter(t.co);
  int status = lua_resume(t.co, nullptr, nargs, &nres);
  busy_leave(t.co);
  log::set_current_step(std::string());
  if (status == LUA_YIELD) {
    if (t.suspended) return;
    // A bare coroutine.yield() at task level: nothing would ever resume it.
    lua_settop(t.co, 0);
    lua_pushstring(t.co, "coroutine.yield called outside a coroutine of the runbook's own");
    status = LUA_ERRRUN;
  }
  bool ok = status == LUA_OK;
  auto done = std::move(t.on_done);
  if (done) done(t, ok);
  if (!ok) lua_resetthread(t.co);  // closes pending to-be-closed variables
  retire(t, ok);
}

Op begin(lua_State* L, const char* what) {
  Task* t = current_task(L);
  if (!t) luaL_error(L, "%s: only from inside run() or a fleet.each function, not at load time or in a coroutine of your own", what);
  if (!lua_isyieldable(L)) luaL_error(L, "%s: cannot wait here (inside a metamethod, iterator or C callback)", what);
  if (t->pending.kind != Interrupt::none) {
    Interrupt i = t->pending;
    t->pending = {};
    push_interrupt(L, i);
    lua_error(L);
  }
  return Op{t->shared_from_this(), ++t->op_seq};
}

void arm(const Op& op, std::function<void()> cancel) {
  op.task->cancel_op = std::move(cancel);
  op.task->suspended = true;
}

int suspend(lua_State*) { return kSuspend; }  // push_fn's dispatch yields (bindings/lua.hpp)

int yield_task(lua_State* L) { return lua_yieldk(L, 0, 0, continuation); }

void complete(const Op& op, const std::function<int(lua_State*)>& push, bool raise) {
  Task& t = *op.task;
  if (t.finished || t.op_seq != op.seq) return;
  if (!t.suspended) {
    // The operation finished before its binding yielded (an answer from a cache): resume on the
    // next turn of the loop, once the task is suspended.
    asio::post(t.vm->io, [op, push, raise] { complete(op, push, raise); });
    return;
  }
  ++t.op_seq;
  int n = push(t.co);
  t.raise_top = raise;
  resume(t, n);
}

void interrupt(Task& t, Interrupt why) {
  if (t.finished) return;
  t.pending = why;
  if (!t.suspended) return;  // not started yet: raised when it first waits
  ++t.op_seq;
  if (auto cancel = std::move(t.cancel_op)) cancel();
  if (!t.finished && t.suspended) resume(t, 0);
}

void cancel_all(Vm& vm, Interrupt::Kind why) {
  vm.cancelling = true;
  std::vector<TaskPtr> tasks;
  for (Task* t = vm.live; t; t = t->next_live) tasks.push_back(t->shared_from_this());
  for (auto& t : tasks) interrupt(*t, {why, 0});
}

void guard(lua_State* L, const char* what) {
  Vm& vm = vm_of(L);
  auto now = std::chrono::steady_clock::now();
  for (auto& weak : vm.leases) {
    auto hold = weak.lock();
    if (!hold) continue;
    // The monotonic clock runs on while the process is stopped: a holder thawed after SIGSTOP
    // sees its deadline passed here before it acts, even before its timers have fired.
    if (hold->held && now >= hold->deadline && hold->lose) hold->lose("no renewal succeeded before the renew deadline");
    if (!hold->lost) continue;
    if (hold->handled)
      luaL_error(L, "%s: refused, the lease %s is lost (%s)", what, hold->name.c_str(), hold->why.c_str());
    log::emit(log::Level::error, current_task(L) ? current_task(L)->host : "", "refused: the lease is lost",
              {{"call", what}, {"lease", hold->name}});
    push_interrupt(L, {Interrupt::lease_lost, 0});
    lua_error(L);
  }
}

void refuse_if_read_only(lua_State* L, const char* what, const char* hint) {
  Vm& vm = vm_of(L);
  if (vm.read_only.empty()) return;
  // At the runbook's own line: the first Lua frame outside the stdlib (the call may come through it).
  lua_Debug ar;
  std::string where;
  for (int level = 1; lua_getstack(L, level, &ar); ++level) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0 && std::string_view(ar.source).find(vm.stdlib_dir) == std::string_view::npos) {
      where = std::string(ar.short_src) + ":" + std::to_string(ar.currentline) + ": ";
      break;
    }
  }
  lua_pushfstring(L, "%s%s: refused, the runbook %s is declared read_only (it changes nothing)%s", where.c_str(), what,
                  vm.read_only.c_str(), hint);
  lua_error(L);
}

bool strip_declared(const Vm& vm, std::string& msg, std::string* where) {
  for (const auto& d : vm.declared_failures) {
    // The whole message, or it after a "file:line: ": never an unrelated error that merely ends alike.
    if (d.empty() || msg.size() < d.size() || msg.compare(msg.size() - d.size(), d.size(), d) != 0) continue;
    std::string at = msg.substr(0, msg.size() - d.size());
    if (!at.empty() && !std::string_view(at).ends_with(": ")) continue;
    if (where) *where = at.empty() ? at : at.substr(0, at.size() - 2);
    msg = d;
    return true;
  }
  return false;
}

void push_interrupt(lua_State* L, Interrupt i) {
  auto* p = static_cast<Interrupt*>(lua_newuserdatauv(L, sizeof(Interrupt), 0));
  *p = i;
  if (luaL_newmetatable(L, kInterruptMeta)) {
    push_fn(L, interrupt_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
}

const Interrupt* to_interrupt(lua_State* L, int idx) {
  return static_cast<const Interrupt*>(luaL_testudata(L, idx, kInterruptMeta));
}

std::string error_text(lua_State* co, int idx) {
  if (auto* i = to_interrupt(co, idx)) return kInterruptNames[i->kind];
  size_t len = 0;
  const char* s = luaL_tolstring(co, idx, &len);
  std::string out(s, len);
  lua_pop(co, 1);
  return out;
}

namespace {

// timeout()'s natives (the prelude writes timeout in Lua over them): a deadline per call, armed on
// the task's timer list, and whether an error value is an interrupt (of that deadline).
int l_is_interrupt(lua_State* L) {
  const Interrupt* i = to_interrupt(L, 1);
  if (i && !lua_isnoneornil(L, 2)) {
    lua_pushboolean(L, i->kind == Interrupt::timeout && i->deadline == static_cast<uint64_t>(luaL_checkinteger(L, 2)));
    return 1;
  }
  lua_pushboolean(L, i != nullptr);
  return 1;
}

int l_deadline_push(lua_State* L) {
  double seconds = luaL_checknumber(L, 1);
  Task* t = current_task(L);
  if (!t) return luaL_error(L, "timeout: only from inside run() or a fleet.each function");
  Vm& vm = *t->vm;
  uint64_t id = vm.next_deadline++;
  auto timer = std::make_shared<asio::steady_timer>(vm.io, std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                               std::chrono::duration<double>(seconds)));
  std::weak_ptr<Task> weak = t->shared_from_this();
  timer->async_wait([weak, id](const boost::system::error_code& ec) {
    auto task = weak.lock();
    if (ec || !task || !task->deadlines.count(id)) return;
    interrupt(*task, {Interrupt::timeout, id});
  });
  t->deadlines[id] = timer;
  lua_pushinteger(L, static_cast<lua_Integer>(id));
  return 1;
}

int l_deadline_pop(lua_State* L) {
  auto id = static_cast<uint64_t>(luaL_checkinteger(L, 1));
  if (Task* t = current_task(L)) {
    auto it = t->deadlines.find(id);
    if (it != t->deadlines.end()) {
      it->second->cancel();
      t->deadlines.erase(it);
    }
  }
  return 0;
}

const luaL_Reg kTaskNatives[] = {
    {"is_interrupt", l_is_interrupt}, {"deadline_push", l_deadline_push}, {"deadline_pop", l_deadline_pop}, {nullptr, nullptr}};

}  // namespace

void add_task_natives(lua_State* L) { set_funcs(L, kTaskNatives); }

}  // namespace engine::lua
