// What the bindings share: the Lua state, the event loop, the tasks (coroutines) in flight, and the
// one function that resumes them. Internal to bindings/; the CLI sees only runtime.hpp.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "bindings/lua.hpp"
#include "engine/core/small_pool.hpp"


namespace engine::inventory {
class Inventory;
}
namespace engine::journal {
class Journal;
}

namespace engine::lua {

namespace asio = boost::asio;

// A cluster lease this run holds (k8s.lease, bindings/k8s_lease.cpp). Calls that change something
// check it first (guard()): past `deadline` without a renewal the server answered, it is lost
// whatever the network says, as client-go's leader election has it.
struct LeaseHold {
  std::string name;  // namespace/name, for messages
  std::chrono::steady_clock::time_point deadline;
  bool held = false, lost = false;
  bool handled = false;  // the runbook passed on_lost: it decides; nothing is cancelled for it
  std::string why;
  std::function<void(const std::string& why)> lose;  // marks it lost: logs, then cancels or calls on_lost
};

// One Lua coroutine driven by the engine: the runbook's run(), or one host's work in fleet.each.
struct Task : std::enable_shared_from_this<Task> {
  explicit Task(asio::io_context& io) : timer(io) {}
  Vm* vm = nullptr;
  lua_State* co = nullptr;
  int ref = LUA_NOREF;   // keeps the thread alive while it runs
  std::string host;      // the log prefix; children inherit it
  uint64_t op_seq = 0;   // which suspension is current; stale completions are dropped
  bool suspended = false;
  bool finished = false;
  std::function<void()> cancel_op;  // undoes the pending operation
  Interrupt pending;                // raised instead of returning, on the next resume
  bool raise_top = false;           // the completion pushed an error value to raise
  // A command's connection died while it ran (unreachable, closed): it may or may not have taken
  // effect, so a step that fails now is left unknown in the journal, not recorded as failed.
  bool uncertain = false;
  int resume_nargs = 0;
  std::map<uint64_t, std::shared_ptr<asio::steady_timer>> deadlines;
  std::map<std::string, int> step_counts;  // the nth step of a name in this task has its own key
  std::vector<std::string> steps;           // the steps this task is inside, innermost last
  // A task waits on one thing at a time; sleep and other timed waits use this timer.
  asio::steady_timer timer;
  Task* prev_live = nullptr;  // the Vm's list of tasks in flight (intrusive: no allocation per task)
  Task* next_live = nullptr;
  // Called once when the coroutine returns (ok, results on co's stack) or raises (error value on top).
  std::function<void(Task&, bool ok)> on_done;
};
using TaskPtr = std::shared_ptr<Task>;

// A suspension in progress: completing it with a stale seq does nothing.
struct Op {
  TaskPtr task;
  uint64_t seq = 0;
};

struct SshState;  // bindings/ssh.cpp: the session pool and SSH settings of this run
struct K8sState;  // bindings/k8s.cpp: the API client of this run
struct HttpState; // bindings/http.cpp: plain HTTP (Pushgateway, Prometheus)

struct Vm {
  SmallPool pool;  // L's memory: ends after lua_close (Runtime's destructor closes L first)
  lua_State* L = nullptr;
  // One thread runs it: no locking around sockets and timers. The scheduler keeps its lock: the
  // journal's fsync thread posts its answers here.
  asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::shared_ptr<SshState> ssh;  // made on first use; reset before the loop goes
  std::shared_ptr<K8sState> k8s;
  std::shared_ptr<HttpState> http;
  inventory::Inventory* inventory = nullptr;
  Task* live = nullptr;  // head of the tasks in flight
  size_t live_count = 0;
  bool draining = false;   // Ctrl-C once: admit no new hosts
  bool cancelling = false; // Ctrl-C twice: cancel what is in flight
  bool dry_run = false;
  std::string read_only;  // the runbook's name when it is declared read_only: no change may be made
  bool assume_yes = false;
  std::string missing_module;
  std::vector<std::string> declared_failures;  // messages fail() raised: expected stops, not code errors
  bool verbose = false;  // a require that found nothing: a configuration error, not a failed run
  std::string run_id;  // names this run to the outside world (cordon annotations, leases)
  std::string kubeconfig, kube_context;  // --kubeconfig / --context
  journal::Journal* journal = nullptr;    // steps are journaled when set (not under --dry-run)
  // Operator control (engine ctl): no host starts while paused; skipped hosts never start.
  bool paused = false;
  std::set<std::string> skip_hosts;
  std::map<uint64_t, std::function<void()>> admission_kicks;  // each live fleet.each's admit()
  uint64_t next_fleet = 1;
  bool retry_unknown = false;             // resume --retry-unknown
  std::string stdlib_dir;
  std::string runbook_dir;
  std::string runbook_path;
  std::vector<std::string> required_files;  // every file require looked for, in order (a cached lint's deps)
  uint64_t next_deadline = 1;
  // Coroutines of tasks that returned normally, kept for the next spawn (with their registry refs):
  // a fleet of short tasks then allocates no new thread per host, and the collector has no dead
  // threads to sweep. Capped; the rest are released.
  std::vector<std::pair<lua_State*, int>> idle_threads;
  std::vector<std::weak_ptr<LeaseHold>> leases;  // taken by this run (released ones expire)
  unsigned signals_acted = 0;  // signals_received() when the loop or the busy hook last acted on one
  std::string lease_lost;  // why the run lost its lease, once it has
};

// Starts fn (below its nargs arguments on top of `from`) as a new task, on the next loop turn.
TaskPtr spawn(Vm& vm, lua_State* from, int nargs, std::string host, std::function<void(Task&, bool)> on_done);

// The one function that resumes coroutines.
void resume(Task& t, int nargs);

// A yielding binding: begin() checks it may yield here (raises on misuse), arm() records how to
// cancel the started operation, and `return suspend(L)` yields. complete() pushes results (or,
// with raise, an error) and resumes. In Lua built as C++ a yield is a C++ throw: keep every object
// with a destructor in a scope that ends before suspend(), so the unwinder has no cleanups to run.
Op begin(lua_State* L, const char* what);
void arm(const Op& op, std::function<void()> cancel);
// The cancel of an operation that changes nothing (a read, a lookup): its late completion is
// dropped by its seq. Named, so a cancel that does nothing is a decision, not an oversight.
inline void nothing_to_undo() {}
// Ends a binding that waits: `return suspend(L);` (the yield happens as it returns; bindings/lua.hpp).
int suspend(lua_State* L);
void complete(const Op& op, const std::function<int(lua_State*)>& push, bool raise = false);

// Wakes a task with an interrupt (its pending operation cancelled), now if it is suspended.
void interrupt(Task& t, Interrupt why);
// Ctrl-C twice (or a lost lease): every task in flight is cancelled.
void cancel_all(Vm& vm, Interrupt::Kind why = Interrupt::cancelled);
// Before a call that changes something (`what` names it): raises if a lease this run holds is lost
// or past its renew deadline. Uncatchable, unless the runbook handles the loss with on_lost.
void guard(lua_State* L, const char* what);
// Before a call that changes something (a command not marked read_only, a file written, an API or
// etcd write): raises at the runbook's line when the runbook is declared read_only.
void refuse_if_read_only(lua_State* L, const char* what, const char* hint = "");
// An error raised by fail() ("file:line: message"): true, with msg cut to the message as the
// runbook worded it and where set to "file:line" (for the run log); false for any other error.
bool strip_declared(const Vm& vm, std::string& msg, std::string* where = nullptr);

// A runbook that computes without waiting (`while true do end`) never returns to the event loop, so
// neither timers nor signals reach it (bindings/busy.cpp). Lua runs between busy_enter and
// busy_leave; a watchdog thread that sees one stretch last longer than kBusyAfter, or a signal,
// arms a count hook on that coroutine (as lua.c does on Ctrl-C), which checks the task's deadlines,
// signals the loop has not seen, and the run's lease every kBusyCheck instructions. Runbooks that
// wait pay nothing for it.
constexpr int kBusyCheck = 1 << 20;
constexpr std::chrono::milliseconds kBusyAfter{200};
void busy_enter(lua_State* co);
void busy_leave(lua_State* co);
// Counts SIGINT/SIGTERM as they arrive (then hands them to the handler before it: Asio's).
void count_signals(int sig);
unsigned signals_received();
// Starts the watchdog; it stops when the returned object is destroyed.
std::shared_ptr<void> watch_busy();

}  // namespace engine::lua
