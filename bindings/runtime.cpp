// The runtime: one Lua state and one io_context. Loads a runbook, resolves its params, and runs
// run(p, inv) as the first task; Ctrl-C drains, a second Ctrl-C (or SIGTERM) cancels.
#include "bindings/runtime.hpp"

#include <unistd.h>

#include <boost/asio/signal_set.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bindings/runbook.hpp"
#include "bindings/vm.hpp"
#include "engine/core/errors.hpp"
#include "engine/log/log.hpp"

namespace fs = std::filesystem;

namespace engine::lua {

void open_sandbox(lua_State* L, const std::string& stdlib_dir);

namespace {

// Tracebacks name the runbook's own frames; the engine's C frames add nothing for the reader.
std::string traceback(lua_State* L, lua_State* co, const std::string& msg) {
  luaL_traceback(L, co, msg.c_str(), 0);
  std::string tb = lua_tostring(L, -1);
  lua_pop(L, 1);
  return tb;
}

}  // namespace

std::string default_stdlib_dir() {
  if (const char* env = std::getenv("ENGINE_STDLIB"); env && *env) return env;
  return ENGINE_STDLIB_DIR;
}

Runtime::Runtime(const std::string& stdlib_dir) : vm_(std::make_unique<Vm>()) {
  vm_->stdlib_dir = stdlib_dir;
  vm_->L = luaL_newstate();
  if (!vm_->L) throw std::runtime_error("cannot create a Lua state (out of memory)");
  *static_cast<Task**>(lua_getextraspace(vm_->L)) = nullptr;
  lua_pushlightuserdata(vm_->L, vm_.get());
  lua_setfield(vm_->L, LUA_REGISTRYINDEX, "engine.vm");
  open_sandbox(vm_->L, stdlib_dir);
}

Runtime::~Runtime() {
  if (vm_) close_ssh(*vm_), close_k8s(*vm_), close_http(*vm_);
  if (vm_ && vm_->L) lua_close(vm_->L);
}

RunbookInfo Runtime::load(const std::string& path) {
  lua_State* L = vm_->L;
  if (!fs::is_regular_file(path)) throw ConfigError(path + ": no such runbook file");
  vm_->runbook_path = path;
  vm_->runbook_dir = fs::path(path).has_parent_path() ? fs::path(path).parent_path().string() : ".";
  if (luaL_loadfilex(L, path.c_str(), "t") != LUA_OK) {
    std::string msg = lua_tostring(L, -1);
    lua_pop(L, 1);
    throw ConfigError(msg);  // "file:line: message near 'x'"
  }
  // The top level runs once here, as a plain call: it declares, it does not wait.
  push_fn(L, [](lua_State* L) -> int {
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
  });
  lua_insert(L, -2);
  if (lua_pcall(L, 0, 1, -2) != LUA_OK) {
    std::string msg = lua_tostring(L, -1);
    lua_pop(L, 2);
    throw RunbookError(msg);
  }
  lua_remove(L, -2);
  if (!is_runbook(L, -1)) {
    lua_pop(L, 1);
    throw ConfigError(path + ": a runbook file must end with `return runbook { name = ..., run = function(p, inv) ... end }`");
  }
  info_ = read_runbook(L, -1);
  info_.path = path;
  lua_setfield(L, LUA_REGISTRYINDEX, "engine.runbook");
  return info_;
}

nlohmann::json Runtime::resolve_params(const std::vector<std::pair<std::string, std::string>>& given,
                                       std::vector<std::string>* missing) {
  lua_State* L = vm_->L;
  return params::resolve(info_.params, given, [L](const std::string& v, const std::string& p) {
    return pattern_matches(L, v, p);
  }, missing);
}

void Runtime::set_inventory(inventory::Inventory inv) {
  inventory_ = std::make_unique<inventory::Inventory>(std::move(inv));
  vm_->inventory = inventory_.get();
}

int Runtime::run(const nlohmann::json& params, const RunOptions& opts) {
  lua_State* L = vm_->L;
  Vm& vm = *vm_;
  vm.dry_run = opts.dry_run;
  vm.assume_yes = opts.assume_yes;
  vm.journal = opts.dry_run ? nullptr : opts.journal;
  vm.retry_unknown = opts.retry_unknown;
  vm.kubeconfig = opts.kubeconfig;
  vm.kube_context = opts.context;
  vm.run_id = opts.run_id.empty() ? "engine-" + std::to_string(::getpid()) : opts.run_id;
  if (!vm.inventory) set_inventory(inventory::Inventory());

  lua_getfield(L, LUA_REGISTRYINDEX, "engine.runbook");
  lua_getfield(L, -1, "run");
  lua_remove(L, -2);
  push_json(L, params);
  push_inventory(L);

  int exit_code = 0;
  bool interrupted = false;
  std::string failure;
  spawn(vm, L, 2, "", [&](Task& t, bool ok) {
    if (ok) return;
    if (auto* i = to_interrupt(t.co, -1)) {
      interrupted = i->kind == Interrupt::interrupted || i->kind == Interrupt::cancelled;
      failure = interrupted ? "interrupted" : error_text(t.co);
      if (i->kind == Interrupt::lease_lost) {
        interrupted = false;
        failure = (vm.lease_lost.empty() ? "the cluster lease was lost" : vm.lease_lost) +
                  ": the run stopped; steps in flight are unknown to a resume (engine show RUN_ID)";
      }
    } else {
      failure = traceback(L, t.co, error_text(t.co));
    }
    exit_code = interrupted ? 130 : 1;
  });

  asio::signal_set signals(vm.io, SIGINT, SIGTERM);
  count_signals(SIGINT);  // after Asio's handlers, which they then call
  count_signals(SIGTERM);
  vm.signals_acted = signals_received();
  auto watchdog = watch_busy();
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    vm.signals_acted = signals_received();
    interrupted = true;
    if (sig == SIGINT && !vm.draining) {
      vm.draining = true;
      log::emit(log::Level::warn, "", "interrupt: no new hosts start; running ones finish (Ctrl-C again to cancel them)");
    } else {
      log::emit(log::Level::warn, "", "interrupt: cancelling everything in flight");
      cancel_all(vm);
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  // engine ctl: commands appended to the run's control file, read a few times a second.
  asio::steady_timer control_timer(vm.io);
  // A resumed run starts after the commands its earlier attempts were sent (an old abort must not
  // stop it again).
  size_t control_offset = 0;
  {
    std::error_code ec;
    if (!opts.control_file.empty()) control_offset = static_cast<size_t>(fs::file_size(opts.control_file, ec));
    if (ec) control_offset = 0;
  }
  std::function<void()> poll_control = [&] {
    if (opts.control_file.empty()) return;
    std::ifstream f(opts.control_file);
    if (f) {
      f.seekg(static_cast<std::streamoff>(control_offset));
      std::string line;
      while (std::getline(f, line)) {
        control_offset += line.size() + 1;
        std::istringstream words(line);
        std::string cmd, arg;
        words >> cmd >> arg;
        if (cmd == "pause") {
          vm.paused = true;
          log::emit(log::Level::warn, "", "paused by an operator: no new host starts; running ones go on (engine ctl continue)");
        } else if (cmd == "continue") {
          vm.paused = false;
          log::emit(log::Level::info, "", "continued by an operator");
        } else if (cmd == "skip" && !arg.empty()) {
          vm.skip_hosts.insert(arg);
          log::emit(log::Level::warn, arg, "will be skipped: an operator asked (engine ctl skip)");
        } else if (cmd == "abort") {
          log::emit(log::Level::warn, "", "aborted by an operator: cancelling everything in flight");
          interrupted = true;
          vm.draining = true;
          cancel_all(vm);
        }
        for (auto& [_, kick] : std::map<uint64_t, std::function<void()>>(vm.admission_kicks)) kick();
      }
    }
    control_timer.expires_after(std::chrono::milliseconds(250));
    control_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) poll_control();
    });
  };
  poll_control();
  // The live table (on a terminal) redraws on this tick, at most 10 times a second.
  asio::steady_timer progress_timer(vm.io);
  std::function<void()> tick = [&] {
    log::progress_tick();
    progress_timer.expires_after(std::chrono::milliseconds(100));
    progress_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) tick();
    });
  };
  tick();

  // Runs until the runbook's task and every task it started have finished.
  while (vm.live_count > 0) {
    if (vm.io.run_one() == 0) break;
  }
  signals.cancel();
  control_timer.cancel();
  progress_timer.cancel();
  log::progress_finish();
  // Leases and tunnels nobody holds any more are closed now, and their last requests (a lease's
  // release) get a moment to reach the server before the connections go.
  lua_gc(L, LUA_GCCOLLECT);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (k8s_in_flight(vm) > 0 && std::chrono::steady_clock::now() < until) vm.io.run_one_for(std::chrono::milliseconds(100));
  close_ssh(vm);
  close_k8s(vm);
  close_http(vm);
  vm.io.restart();
  vm.io.poll();

  if (!failure.empty()) {
    if (exit_code == 130) log::emit(log::Level::error, "", "run interrupted");
    else {
      // The console gets the message; the traceback goes to stderr and the run log.
      auto cut = failure.find("\nstack traceback:");
      log::emit(log::Level::error, "", "runbook failed", json{{"error", failure.substr(0, cut)}});
      log::emit(log::Level::debug, "", failure);
    }
    log::flush();
    std::fprintf(stderr, "%s: %s\n", exit_code == 130 ? "interrupted" : "runbook failed", log::redact(failure).c_str());
  }
  // A Ctrl-C that left nothing undone (every host had already started and finished) is a success.
  return exit_code;
}

std::string Runtime::run_snippet(const std::string& code) {
  lua_State* L = vm_->L;
  if (luaL_loadbufferx(L, code.data(), code.size(), "=snippet", "t") != LUA_OK) {
    std::string msg = lua_tostring(L, -1);
    lua_pop(L, 1);
    return msg;
  }
  std::string error;
  spawn(*vm_, L, 0, "", [&](Task& t, bool ok) {
    if (!ok) error = error_text(t.co);
  });
  while (vm_->live_count > 0)
    if (vm_->io.run_one() == 0) break;
  vm_->io.restart();
  return error;
}

std::string help_text(const RunbookInfo& info) {
  std::string out = info.name + (info.summary.empty() ? "" : " — " + info.summary) + "\n\n";
  out += "Usage: engine run " + info.path + " [-i INVENTORY] [-e name=value]... [--limit PATTERN] [--dry-run]\n\n";
  if (info.params.empty()) return out + "This runbook takes no params.\n";
  out += "Params:\n";
  size_t width = 0;
  for (const auto& p : info.params) width = std::max(width, p.name.size());
  for (const auto& p : info.params) {
    std::string kind = params::type_name(p.type);
    if (p.type == params::Type::enumeration) {
      kind += " (";
      for (size_t i = 0; i < p.values.size(); ++i) kind += (i ? "|" : "") + p.values[i];
      kind += ")";
    }
    if (p.required) kind += ", required";
    else if (p.default_value) kind += ", default " + params::display(p, *p.default_value);
    if (p.secret) kind += ", secret";
    out += "  " + p.name + std::string(width - p.name.size() + 2, ' ') + kind + "\n";
    if (!p.help.empty()) out += std::string(width + 4, ' ') + p.help + "\n";
    if (!p.pattern.empty()) out += std::string(width + 4, ' ') + "must match " + p.pattern + "\n";
  }
  return out;
}

}  // namespace engine::lua
