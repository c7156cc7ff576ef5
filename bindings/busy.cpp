// Runbooks that compute without waiting: a watchdog thread and signals arm a count hook on the
// coroutine that keeps the loop busy, and the hook raises the task's timeout, a pending Ctrl-C or
// SIGTERM, or a lost lease where it stands. The hook is set only on a busy coroutine (lua_sethook
// is safe to call from a signal handler: lua.c does the same for Ctrl-C), because a count hook on
// every coroutine makes pure Lua ~1.8x slower.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "bindings/vm.hpp"
#include "engine/log/log.hpp"

namespace engine::lua {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<unsigned> g_signals{0};
std::atomic<lua_State*> g_running{nullptr};  // the coroutine between busy_enter and busy_leave
// Counts busy_enter calls: the watchdog times a stretch itself (the same count seen running
// kBusyAfter apart), so entering and leaving, twice for every task, read no clock.
std::atomic<uint64_t> g_stretch{0};
std::atomic<bool> g_hooked{false};
struct sigaction g_prev[NSIG];
constexpr int kWakeSignal = SIGURG;  // ignored by default; nothing else here uses it
constexpr std::chrono::milliseconds kTick{50};  // the watchdog's look at the loop

void busy_hook(lua_State* L, lua_Debug*) {
  Vm& vm = vm_of(L);
  Task* t = current_task(L);
  unsigned got = g_signals.load(std::memory_order_relaxed);
  if (got != vm.signals_acted) {
    // A signal arrived while the runbook kept the loop from seeing it: it stops where it is.
    vm.signals_acted = got;
    vm.draining = true;
    log::emit(log::Level::warn, t ? t->host : "", "interrupt: the runbook was busy without waiting; stopped where it was");
    if (!t) luaL_error(L, "interrupted");
    push_interrupt(L, {Interrupt::interrupted, 0});
    lua_error(L);
  }
  if (!t) return;
  auto now = Clock::now();
  for (auto& [id, timer] : t->deadlines) {
    if (timer->expiry() <= now) {
      push_interrupt(L, {Interrupt::timeout, id});
      lua_error(L);
    }
  }
  if (!vm.leases.empty()) guard(L, "a runbook busy without waiting");
}

// Async-signal-safe: atomics and lua_sethook only.
void arm_hook() {
  if (lua_State* co = g_running.load()) {
    g_hooked.store(true);
    lua_sethook(co, busy_hook, LUA_MASKCOUNT, kBusyCheck);
  }
}

void counting_handler(int sig) {
  g_signals.fetch_add(1, std::memory_order_relaxed);
  arm_hook();
  const struct sigaction& prev = g_prev[sig];
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) prev.sa_handler(sig);
}

void wake_handler(int) { arm_hook(); }

struct Watchdog {
  std::mutex m;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;

  explicit Watchdog(pthread_t loop) {
    struct sigaction sa {};
    sa.sa_handler = wake_handler;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(kWakeSignal, &sa, nullptr);
    thread = std::thread([this, loop] {
      std::unique_lock lock(m);
      uint64_t seen = 0;     // the stretch last seen running
      Clock::time_point since;  // when it was first seen (up to one tick after it began)
      while (!cv.wait_for(lock, kTick, [this] { return stop; })) {
        if (!g_running.load(std::memory_order_acquire) || g_hooked.load()) {
          seen = 0;
          continue;
        }
        uint64_t stretch = g_stretch.load(std::memory_order_relaxed);
        auto now = Clock::now();
        if (stretch != seen) {
          seen = stretch;
          since = now;
        } else if (now - since >= kBusyAfter) {  // so it has run kBusyAfter to one tick more
          pthread_kill(loop, kWakeSignal);
        }
      }
    });
  }
  ~Watchdog() {
    {
      std::lock_guard lock(m);
      stop = true;
    }
    cv.notify_one();
    thread.join();
  }
};

}  // namespace

// Only the loop's thread writes the stretch and the running coroutine: plain stores, no fences
// (on x86 a seq_cst store is an xchg, and these run twice a task).
void busy_enter(lua_State* co) {
  g_stretch.store(g_stretch.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  g_running.store(co, std::memory_order_release);
}

void busy_leave(lua_State* co) {
  g_running.store(nullptr, std::memory_order_release);
  if (g_hooked.load(std::memory_order_relaxed) && g_hooked.exchange(false)) lua_sethook(co, nullptr, 0, 0);
}

void count_signals(int sig) {
  struct sigaction cur {};
  // Already counting (a second run in one process with the same handlers): chaining to ourselves
  // would recurse.
  if (sigaction(sig, nullptr, &cur) == 0 && cur.sa_handler == counting_handler) return;
  struct sigaction sa {};
  sa.sa_handler = counting_handler;
  sigfillset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(sig, &sa, &g_prev[sig]);
}

unsigned signals_received() { return g_signals.load(std::memory_order_relaxed); }

std::shared_ptr<void> watch_busy() { return std::make_shared<Watchdog>(pthread_self()); }

}  // namespace engine::lua
