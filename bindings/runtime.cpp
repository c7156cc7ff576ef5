// The runtime: one Lua state and one io_context. Loads a runbook, resolves its params, and runs
// run(p, inv) as the first task; Ctrl-C drains, a second Ctrl-C (or SIGTERM) cancels.
#include "bindings/runtime.hpp"

#include <algorithm>
#include <functional>
#include <regex>
#include <sstream>
#include <fstream>
#include "engine/core/text.hpp"

#include <unistd.h>

#include <cstdio>

#include <filesystem>

#include "bindings/run_loop.hpp"
#include "bindings/runbook.hpp"
#include "bindings/vm.hpp"
#include "engine/core/errors.hpp"
#include "engine/core/file_cache.hpp"
#include "engine/core/hash.hpp"
#include "engine/log/log.hpp"

namespace fs = std::filesystem;

namespace engine::lua {

void open_sandbox(lua_State* L, const std::string& stdlib_dir);

namespace {

// A code error's frames: the runbook's own (its file and lib/), or every frame with -v; the
// engine's C frames and the stdlib's add nothing for the reader of a runbook.
std::string traceback(lua_State* L, lua_State* co, const Vm& vm) {
  luaL_traceback(L, co, nullptr, 0);
  std::string tb = lua_tostring(L, -1);
  lua_pop(L, 1);
  std::string out;
  size_t start = 0;
  while (start < tb.size()) {
    size_t nl = tb.find('\n', start);
    std::string line = tb.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    start = nl == std::string::npos ? tb.size() : nl + 1;
    std::string t = text::trim(line);
    if (t.empty() || t == "stack traceback:") continue;
    bool engine_frame = t.rfind("[C]", 0) == 0 || t.find(vm.stdlib_dir) != std::string::npos || t.rfind("(...tail calls...)", 0) == 0;
    if (vm.verbose || !engine_frame) out += "\t" + t + "\n";
  }
  return out;
}

// A bug in the runbook (or its misuse of the engine's API), as opposed to a failure it met: Lua's
// own runtime errors and the engine's misuse errors. Everything else a runbook or the stdlib raises
// (a command that failed on a node, a refused preflight) is an outcome, said without frames.
bool code_error(const std::string& msg) {
  static const std::regex bug(
      R"(attempt to (call|index|perform arithmetic|compare|concatenate|get length|yield)|bad argument #|stack overflow|)"
      R"(: unknown option '|table index is (nil|NaN)|number has no integer representation|invalid (key|value) to 'next'|)"
      R"(: the (first|second|third) argument must be|must be a (table|function|string|number)|)"
      R"(: refused, the runbook .* is declared read_only)");
  return std::regex_search(msg, bug);
}

// The runbook's task ended in error: an interrupt (Ctrl-C, abort), a lost lease, or the runbook's own
// (which counts as interrupted when an operator's signal or abort came first).
RunOutcome outcome_of(Vm& vm, lua_State* L, Task& t, bool signalled) {
  RunOutcome out;
  out.interrupted = signalled;
  if (auto* i = to_interrupt(t.co, -1)) {
    out.interrupted = i->kind == Interrupt::interrupted || i->kind == Interrupt::cancelled;
    out.failure = out.interrupted ? "interrupted" : error_text(t.co);
    if (i->kind == Interrupt::lease_lost) {
      out.interrupted = false;
      out.lease_lost = true;
      out.failure = (vm.lease_lost.empty() ? "the cluster lease was lost" : vm.lease_lost) +
                    ": the run stopped; steps in flight are unknown to a resume (engine show RUN_ID)";
    }
  } else {
    out.failure = error_text(t.co);
    // Said as the runbook worded it: where fail() was called is for its author (the run log).
    out.declared = strip_declared(vm, out.failure, &out.where);
    if (!out.declared && code_error(out.failure)) out.traceback = traceback(L, t.co, vm);
  }
  out.exit_code = out.interrupted ? 130 : 1;
  return out;
}

// The console gets the message; the traceback goes to stderr and the run log.
void report_failure(const RunOutcome& out, bool verbose) {
  const char* vm_verbose_hint = verbose ? "" : " (the runbook's own frames; -v shows all)";
  if (out.failure.empty()) return;
  // Said once, as one block on stderr: what failed and why, and for a bug in the runbook where it
  // happened. The run log, the report and a JSON console get it as a line too.
  if (out.exit_code == 130) {
    log::emit(log::Level::error, "", "run interrupted");
    log::flush();
    std::fprintf(stderr, "interrupted: hosts that had not started were left as they were\n");
    return;
  }
  json fields{{"error", out.failure}};
  if (!out.where.empty()) fields["where"] = out.where;
  log::emit_quiet(log::Level::error, "", "runbook failed", fields);
  if (!out.traceback.empty()) log::emit(log::Level::debug, "", "traceback", json{{"frames", out.traceback}});
  log::flush();
  // stderr gets the block in either log format: JSON logs on stdout are for machines, the
  // block is for the person watching.
  if (out.traceback.empty()) {
    std::fprintf(stderr, "runbook failed: %s\n", log::redact(out.failure).c_str());
  } else {
    std::fprintf(stderr, "runbook failed: %s\nthis is a bug in the runbook, not a failure of the cluster; where it happened%s:\n%s",
                 log::redact(out.failure).c_str(), vm_verbose_hint, log::redact(out.traceback).c_str());
  }
}

}  // namespace

namespace {
// PREFIX/share/engine for an installed engine (PREFIX/bin/engine), found from the binary itself;
// "" for a build that was not installed.
std::string installed_share_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  fs::path share = exe.parent_path().parent_path() / "share" / "engine";
  return fs::is_directory(share / "stdlib", ec) ? share.string() : "";
}
}  // namespace

std::string default_stdlib_dir() {
  if (const char* env = std::getenv("ENGINE_STDLIB"); env && *env) return env;
  if (auto share = installed_share_dir(); !share.empty()) return share + "/stdlib";
  return ENGINE_STDLIB_DIR;  // the source tree this build came from
}

std::string shipped_runbooks_dir() {
  if (auto share = installed_share_dir(); !share.empty()) return share + "/runbooks";
  return ENGINE_RUNBOOKS_DIR;
}

Runtime::Runtime(const std::string& stdlib_dir) : vm_(std::make_unique<Vm>()) {
  vm_->stdlib_dir = stdlib_dir;
  vm_->L = lua_newstate(SmallPool::lua_alloc, &vm_->pool);
  if (!vm_->L) throw std::runtime_error("cannot create a Lua state (out of memory)");
  lua_atpanic(vm_->L, [](lua_State* L) -> int {  // luaL_newstate's, which lua_newstate leaves out
    std::fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n", lua_tostring(L, -1));
    return 0;  // then Lua aborts
  });
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
    // A module that is not there is a mistake in the runbook's files, found before anything ran:
    // a configuration error (exit 2) without the traceback.
    if (!vm_->missing_module.empty()) throw ConfigError(msg.substr(0, msg.find("\nstack traceback:")));
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
  vm.read_only.clear();
  if (info_.read_only) vm.read_only = info_.name;
  vm.assume_yes = opts.assume_yes;
  vm.journal = opts.dry_run ? nullptr : opts.journal;
  vm.retry_unknown = opts.retry_unknown;
  vm.verbose = opts.verbose;
  vm.kubeconfig = opts.kubeconfig;
  vm.kube_context = opts.context;
  vm.run_id = opts.run_id.empty() ? "engine-" + std::to_string(::getpid()) : opts.run_id;
  if (!vm.inventory) set_inventory(inventory::Inventory());

  lua_getfield(L, LUA_REGISTRYINDEX, "engine.runbook");
  lua_getfield(L, -1, "run");
  lua_remove(L, -2);
  push_json(L, params);
  push_inventory(L);

  RunOutcome out;
  spawn(vm, L, 2, "", [&](Task& t, bool ok) {
    if (!ok) out = outcome_of(vm, L, t, out.interrupted);
  });
  {
    SignalWatch signals(vm, out);
    ControlWatch control(vm, out, opts.control_file);
    ProgressTick progress(vm);
    run_until_done(vm);
  }
  shut_down(vm);
  report_failure(out, vm.verbose);
  ending_ = out.exit_code == 0 ? Ending::ok
            : out.exit_code == 130 ? Ending::interrupted
            : out.lease_lost ? Ending::lease_lost
            : out.declared || out.traceback.empty() ? Ending::declared
                             : Ending::code_error;
  // A Ctrl-C that left nothing undone (every host had already started and finished) is a success.
  return out.exit_code;
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

namespace {
std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// {path = text} of the LuaCATS files in stdlib/meta: the API's description (stdlib/engine/luacats.lua).
void push_meta(lua_State* L, const std::string& stdlib_dir) {
  lua_newtable(L);
  std::error_code ec;
  std::vector<fs::path> paths;
  for (auto& e : fs::recursive_directory_iterator(fs::path(stdlib_dir) / "meta", ec))
    if (e.path().extension() == ".lua") paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  fs::path base = fs::path(stdlib_dir) / "meta";
  for (const auto& p : paths) {
    std::string text = read_text(p);
    lua_pushlstring(L, text.data(), text.size());
    lua_setfield(L, -2, ("stdlib/meta/" + p.lexically_relative(base).string()).c_str());
  }
}

// require(module)[fn](args pushed by push_args) → its string result; a Lua error is the engine's own bug.
std::string call_stdlib(lua_State* L, const char* module, const char* fn, const std::function<int(lua_State*)>& push_args) {
  int top = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushstring(L, module);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    std::string e = lua_tostring(L, -1);
    lua_settop(L, top);
    throw std::runtime_error(std::string(module) + ": " + e);
  }
  lua_getfield(L, -1, fn);
  int n = push_args(L);
  if (lua_pcall(L, n, 1, 0) != LUA_OK) {
    std::string e = lua_tostring(L, -1);
    lua_settop(L, top);
    throw std::runtime_error(std::string(module) + ": " + e);
  }
  size_t len = 0;
  const char* out = lua_tolstring(L, -1, &len);
  std::string result = out ? std::string(out, len) : std::string();
  lua_settop(L, top);
  return result;
}
}  // namespace

std::string Runtime::api(const std::string& format) {
  return call_stdlib(vm_->L, "engine.luacats", format == "json" ? "json" : "markdown_of", [this](lua_State* L) {
    push_meta(L, vm_->stdlib_dir);
    return 1;
  });
}

boost::asio::io_context& Runtime::loop() { return vm_->io; }

namespace {

// The sandbox's globals: behind the frozen _G's __index (bindings/sandbox.cpp).
std::vector<std::string> sandbox_globals(lua_State* L) {
  std::vector<std::string> out;
  lua_pushglobaltable(L);
  if (lua_getmetatable(L, -1)) {
    lua_getfield(L, -1, "__index");
    lua_remove(L, -2);
    if (lua_istable(L, -1)) lua_remove(L, -2);
    else lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) out.emplace_back(lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  std::sort(out.begin(), out.end());
  return out;
}

// What a cached static check's findings depend on, for the entry's key: everything lint reads (the
// sources' text, the LuaCATS definitions in stdlib/meta, the globals, the params) and the engine's
// binary. The modules required so far (the runbook's, and the lint's own code, engine.lint) are
// the entry's deps, checked at each use: the entry holds while each is as it was.
std::string lint_key(const std::string& stdlib_dir, const std::vector<std::pair<fs::path, std::string>>& sources,
                     const std::vector<std::string>& globals, const std::vector<std::string>& params, bool runbook) {
  std::string m = "engine lint 1\n" + file_cache::stat_signature("/proc/self/exe") + "\n" + stdlib_dir + "\n" +
                  file_cache::stat_signature(stdlib_dir + "/prelude.lua") + "\n" + (runbook ? "runbook\n" : "modules\n");
  std::error_code ec;
  std::vector<std::string> meta;
  for (auto& e : fs::recursive_directory_iterator(fs::path(stdlib_dir) / "meta", ec))
    if (e.path().extension() == ".lua") meta.push_back(e.path().string());
  std::sort(meta.begin(), meta.end());
  for (const auto& f : meta) m += f + " " + file_cache::stat_signature(f) + "\n";
  for (const auto& [path, text] : sources) m += path.string() + " " + std::to_string(text.size()) + "\n" + text + "\n";
  for (const auto& g : globals) m += "g " + g + "\n";
  for (const auto& p : params) m += "p " + p + "\n";
  return sha256_hex(m);
}

std::optional<std::vector<std::string>> cached_findings(const std::string& key) {
  auto text = file_cache::get("lint", key);
  if (!text) return std::nullopt;
  auto entry = nlohmann::json::parse(*text, nullptr, false);
  if (entry.is_discarded() || !entry.is_object() || !entry.contains("deps") || !entry["deps"].is_object() ||
      !entry.contains("findings") || !entry["findings"].is_array())
    return std::nullopt;
  for (const auto& [path, sig] : entry["deps"].items())
    if (!sig.is_string() || file_cache::stat_signature(path) != sig.get<std::string>()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& f : entry["findings"]) {
    if (!f.is_string()) return std::nullopt;
    out.push_back(f.get<std::string>());
  }
  return out;
}

}  // namespace

std::vector<std::string> Runtime::lint(const std::vector<std::string>& files) {
  lua_State* L = vm_->L;
  std::vector<std::pair<fs::path, std::string>> sources;
  if (files.empty()) {
    sources.emplace_back(vm_->runbook_path, "");
    std::error_code ec;
    fs::path lib = fs::path(vm_->runbook_dir) / "lib";
    if (fs::is_directory(lib, ec))
      for (auto& e : fs::recursive_directory_iterator(lib, ec))
        if (e.path().extension() == ".lua") sources.emplace_back(e.path(), "");
  } else {
    for (const auto& f : files) sources.emplace_back(f, "");
  }
  for (auto& [path, text] : sources) text = read_text(path);
  std::vector<std::string> globals = sandbox_globals(L), params;
  if (files.empty())
    for (const auto& p : info_.params) params.push_back(p.name);
  // The same runbook checked again (every `engine run` checks it first): its findings from the
  // cache, saving the ~10 ms of parsing the LuaCATS definitions and the sources.
  std::string key = lint_key(vm_->stdlib_dir, sources, globals, params, files.empty());
  if (auto hit = cached_findings(key)) return *hit;

  int top = lua_gettop(L);
  push_fn(L, [](lua_State* L) -> int {
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
  });
  int handler = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushstring(L, "engine.lint");
  if (lua_pcall(L, 1, 1, handler) != LUA_OK) {
    std::string e = lua_tostring(L, -1);
    lua_settop(L, top);
    throw std::runtime_error("engine.lint: " + e);
  }
  lua_getfield(L, -1, "check");
  lua_newtable(L);
  for (const auto& [path, text] : sources) {
    lua_pushlstring(L, text.data(), text.size());
    lua_setfield(L, -2, path.string().c_str());
  }
  push_meta(L, vm_->stdlib_dir);
  lua_createtable(L, static_cast<int>(globals.size()), 0);
  for (size_t i = 0; i < globals.size(); ++i) {
    lua_pushstring(L, globals[i].c_str());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  int nargs = 3;
  if (files.empty()) {  // a runbook: its run(p) reads only the params it declares
    lua_createtable(L, static_cast<int>(params.size()), 0);
    for (size_t i = 0; i < params.size(); ++i) {
      lua_pushstring(L, params[i].c_str());
      lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
    }
    lua_pushstring(L, sources.front().first.string().c_str());
    nargs = 5;
  }
  if (lua_pcall(L, nargs, 1, handler) != LUA_OK) {
    std::string e = lua_tostring(L, -1);
    lua_settop(L, top);
    throw std::runtime_error("engine.lint: " + e);
  }
  std::vector<std::string> out;
  lua_Integer count = static_cast<lua_Integer>(lua_rawlen(L, -1));
  for (lua_Integer i = 1; i <= count; ++i) {
    lua_rawgeti(L, -1, i);
    lua_getfield(L, -1, "file");
    lua_getfield(L, -2, "line");
    lua_getfield(L, -3, "col");
    lua_getfield(L, -4, "msg");
    out.push_back(at(lua_tostring(L, -4), static_cast<int>(lua_tointeger(L, -3)), static_cast<int>(lua_tointeger(L, -2)),
                     lua_tostring(L, -1)));
    lua_pop(L, 5);
  }
  lua_settop(L, top);
  nlohmann::json deps = nlohmann::json::object();
  for (const auto& f : vm_->required_files) deps[f] = file_cache::stat_signature(f);
  file_cache::put("lint", key, nlohmann::json{{"deps", deps}, {"findings", out}}.dump());
  return out;
}

std::string help_text(const RunbookInfo& info) {
  std::string out = info.name + (info.summary.empty() ? "" : " — " + info.summary) + "\n\n";
  out += "Usage: engine run " + info.path + " [-i INVENTORY] [-e name=value]... [--limit PATTERN] [--dry-run]\n\n";
  if (info.read_only) out += "Read only: it changes nothing (checked as it runs); a failed run is run again, not resumed.\n\n";
  if (info.params.empty()) return out + "This runbook takes no params.\n";
  out += "Params:\n";
  size_t width = 0;
  for (const auto& p : info.params) width = std::max(width, p.name.size());
  for (const auto& p : info.params) {
    std::string kind = params::type_name(p.type);
    if (p.type == params::Type::enumeration || (p.type == params::Type::list && !p.values.empty())) {
      kind += p.type == params::Type::list ? " of (" : " (";
      for (size_t i = 0; i < p.values.size(); ++i) kind += (i ? "|" : "") + p.values[i];
      kind += ")";
    }
    if (p.min || p.max) kind += " " + params::range_text(p);
    if (p.required) kind += ", required";
    else if (p.default_value) kind += ", default " + params::display(p, *p.default_value);
    if (p.secret) kind += ", secret";
    out += "  " + p.name + std::string(width - p.name.size() + 2, ' ') + kind + "\n";
    if (!p.help.empty()) out += std::string(width + 4, ' ') + p.help + "\n";
    if (!p.pattern.empty()) out += std::string(width + 4, ' ') + "must match " + p.pattern + "\n";
  }
  return out;
}

std::string params_class_name(const std::string& runbook_name) {
  std::string out = "params.";
  for (char c : runbook_name) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

std::string params_class(const RunbookInfo& info) {
  std::string out = "--- " + info.name + (info.summary.empty() ? "" : ": " + info.summary) + "\n";
  out += "---@class " + params_class_name(info.name) + "\n";
  for (const auto& p : info.params) {
    std::string type;
    switch (p.type) {
      case params::Type::string: type = "string"; break;
      case params::Type::integer: type = "integer"; break;
      case params::Type::number: type = "number"; break;
      case params::Type::boolean: type = "boolean"; break;
      case params::Type::list: type = "string[]"; break;
      case params::Type::duration: type = "number"; break;  // seconds, whatever -e said ("10m")
      case params::Type::amount: type = "string"; break;  // "3" or "10%", as fleet.each takes it
      case params::Type::time: type = "string"; break;  // "03:00" or "03:00:30"
      case params::Type::output: type = "string"; break;  // a path on this machine
      case params::Type::enumeration:
        for (size_t i = 0; i < p.values.size(); ++i) type += (i ? "|\"" : "\"") + p.values[i] + "\"";
        break;
    }
    std::string doc = p.help;
    if (p.type == params::Type::duration) doc += std::string(doc.empty() ? "" : " ") + "(seconds)";
    if (p.min || p.max) doc += std::string(doc.empty() ? "" : " ") + "(" + params::range_text(p) + ")";
    if (p.required) doc += std::string(doc.empty() ? "" : " ") + "(required)";
    else if (p.default_value) doc += std::string(doc.empty() ? "" : " ") + "(default: " + params::display(p, *p.default_value) + ")";
    if (p.secret) doc += " (secret)";
    for (auto& c : doc) if (c == '\n') c = ' ';
    bool optional = !p.required && !p.default_value;
    out += "---@field " + p.name + (optional ? "?" : "") + " " + type + (doc.empty() ? "" : "  " + doc) + "\n";
  }
  return out;
}

}  // namespace engine::lua
