// The engine command line: run, check, version. Exit codes: 0 ok, 1 runbook failed,
// 2 usage or configuration error, 130 interrupted.
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <cstdio>
#include <iostream>

#include "bindings/runtime.hpp"
#include "engine/core/errors.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/log/log.hpp"
#include "engine/core/hash.hpp"
#include "engine/journal/journal.hpp"
#include "engine/run/lock.hpp"
#include "engine/run/report.hpp"
#include "engine/run/run_dir.hpp"

namespace {

// One session per host is one descriptor per host: a 2,000-node fan-out needs more than the usual
// soft limit of 1,024. The hard limit is ours to take, as Go programs and OpenSSH's ssh-agent do.
void raise_open_files_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

struct Args {
  std::string runbook;
  std::vector<std::string> inventories;
  std::vector<std::string> extra;
  std::string limit;
  bool dry_run = false, yes = false, help = false;
  std::string log_format = "text", log_level = "info", state_dir;
  std::string kubeconfig, context;
  std::string run_id;          // resume, show
  bool force = false, retry_unknown = false;
  std::vector<std::string> ctl;  // ctl: the command and its host
};

std::vector<std::pair<std::string, std::string>> parse_extra(const std::vector<std::string>& items) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : items) {
    auto eq = e.find('=');
    if (eq == std::string::npos || eq == 0)
      throw engine::ConfigError("-e '" + e + "': expected name=value");
    out.emplace_back(e.substr(0, eq), e.substr(eq + 1));
  }
  return out;
}

engine::inventory::Inventory load_inventory(const Args& a) {
  if (a.inventories.empty()) {
    engine::inventory::Inventory empty;
    empty.reconcile();
    if (!a.limit.empty()) empty.limit(a.limit);
    return empty;
  }
  auto inv = engine::inventory::load(a.inventories);
  if (!a.limit.empty()) {
    try {
      inv.limit(a.limit);
    } catch (const engine::ConfigError& e) {
      throw engine::ConfigError(std::string("--limit: ") + e.what());
    }
  }
  return inv;
}

void add_common(CLI::App* cmd, Args& a) {
  cmd->add_option("runbook", a.runbook, "the runbook file (.lua)")->required();
  cmd->add_option("-i,--inventory", a.inventories, "inventory file, directory or host list (repeatable)");
  cmd->add_option("-e,--extra", a.extra, "a runbook param: name=value (repeatable)");
  cmd->add_option("--limit", a.limit, "only these hosts: an Ansible pattern (web:&prod:!web3)");
}

// engine check: the runbook, its params and the inventory, without running anything. Checked alone
// (no -e at all) a runbook's required params are listed as what a run will need, not an error;
// once any -e is given, the set must be complete.
int do_check(Args& a) {
  engine::lua::Runtime rt(engine::lua::default_stdlib_dir());
  auto info = rt.load(a.runbook);
  std::vector<std::string> missing;
  auto params = rt.resolve_params(parse_extra(a.extra), a.extra.empty() ? &missing : nullptr);
  auto inv = load_inventory(a);
  size_t hosts = 0;
  for (const auto& h : inv.host_names()) hosts += inv.visible(h);
  std::printf("ok: runbook '%s' (%zu params), inventory %zu hosts in %zu groups\n", info.name.c_str(),
              info.params.size(), hosts, inv.group_names().size());
  if (!missing.empty()) {
    std::string need;
    for (const auto& m : missing) need += " -e " + m + "=...";
    std::printf("a run needs:%s\n", need.c_str());
  }
  return 0;
}

// What a run records about itself, so `engine resume` can run it again the same way.
// Params as recorded and hashed: a secret's value is never written down (resume takes it again).
nlohmann::json recordable(const engine::lua::RunbookInfo& info, const nlohmann::json& params) {
  nlohmann::json out = params;
  for (const auto& spec : info.params)
    if (spec.secret && out.contains(spec.name)) out[spec.name] = "<secret>";
  return out;
}

std::vector<std::string> recordable_extra(const engine::lua::RunbookInfo& info, const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  for (const auto& e : extra) {
    std::string key = e.substr(0, e.find('='));
    auto it = std::find_if(info.params.begin(), info.params.end(), [&](auto& p) { return p.name == key; });
    if (it == info.params.end() || !it->secret) out.push_back(e);
  }
  return out;
}

nlohmann::json run_record(const Args& a, const engine::run::RunDir& run, const engine::lua::RunbookInfo& info,
                          const nlohmann::json& params) {
  namespace fs = std::filesystem;
  nlohmann::json inventories = nlohmann::json::array();
  for (const auto& i : a.inventories) inventories.push_back(fs::exists(i) ? fs::absolute(i).string() : i);
  return {{"id", run.id},
          {"runbook", fs::absolute(a.runbook).string()},
          {"runbook_sha256", engine::sha256_file(a.runbook).value_or("")},
          {"extra", recordable_extra(info, a.extra)},
          {"params_sha256", engine::sha256_hex(recordable(info, params).dump())},
          {"inventories", inventories},
          {"limit", a.limit},
          {"kubeconfig", a.kubeconfig},
          {"context", a.context},
          {"engine", ENGINE_VERSION}};
}

void write_json(const std::filesystem::path& path, const nlohmann::json& j) {
  std::string tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
  }
  std::filesystem::rename(tmp, path);
}

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream f(path);
  if (!f) return nullptr;
  nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  return j.is_discarded() ? nullptr : j;
}

void setup_logs(const Args& a, const engine::run::RunDir& run) {
  engine::log::Options lo;
  lo.format = a.log_format == "json" ? engine::log::Format::json : engine::log::Format::text;
  lo.level = *engine::log::parse_level(a.log_level);
  lo.file = (run.path / "run.log").string();
  lo.color = lo.format == engine::log::Format::text && isatty(STDOUT_FILENO);
  engine::log::setup(lo);
  engine::log::progress_enable(lo.color);  // the live table only on a terminal, with text logs
}

// Values no output may show: params declared secret, and inventory variables of the secret kinds.
void register_secrets(const engine::lua::RunbookInfo& info, const nlohmann::json& params,
                      const engine::inventory::Inventory* inv) {
  for (const auto& spec : info.params) {
    if (!spec.secret || !params.contains(spec.name)) continue;
    const auto& v = params[spec.name];
    if (v.is_string()) engine::log::add_secret(v.get<std::string>());
    else if (v.is_array())
      for (const auto& item : v)
        if (item.is_string()) engine::log::add_secret(item.get<std::string>());
  }
  if (!inv) return;
  auto scan = [](const nlohmann::json& vars) {
    for (auto it = vars.begin(); it != vars.end(); ++it)
      if (it->is_string() && engine::log::is_secret_name(it.key())) engine::log::add_secret(it->get<std::string>());
  };
  for (const auto& g : inv->group_names()) scan(inv->group(g)->vars), scan(inv->group(g)->file_vars);
  for (const auto& h : inv->host_names()) scan(inv->host(h)->vars), scan(inv->host(h)->file_vars);
}

// The body shared by run and resume: journal open, runbook run, report written.
int execute(Args& a, engine::lua::Runtime& rt, const engine::lua::RunbookInfo& info, const nlohmann::json& params,
            const engine::run::RunDir& run, bool resuming) {
  engine::run::RunLock lock(run.path);  // held until this process ends: `engine runs` shows it running
  std::vector<std::string> warnings;
  std::unique_ptr<engine::journal::Journal> journal;
  if (!a.dry_run) {
    try {
      journal = std::make_unique<engine::journal::Journal>((run.path / "journal").string(), warnings);
    } catch (const std::exception& e) {
      throw engine::ConfigError(e.what());
    }
  }
  nlohmann::json shown = nlohmann::json::object();
  for (const auto& spec : info.params)
    if (params.contains(spec.name)) shown[spec.name] = spec.secret ? nlohmann::json("<secret>") : params[spec.name];
  engine::run::report().begin(run.id, info.name, a.runbook, shown);
  engine::log::emit(engine::log::Level::info, "", resuming ? "run resumed" : "run started",
                    {{"run", run.id}, {"runbook", info.name}, {"dir", run.path.string()}, {"dry_run", a.dry_run},
                     {"journaled_records", journal ? journal->records() : 0}});
  for (const auto& w : warnings) engine::log::emit(engine::log::Level::warn, "", w);

  engine::lua::RunOptions ro{a.dry_run, a.yes, run.id, a.kubeconfig, a.context, journal.get(), (run.path / "control").string()};
  ro.retry_unknown = a.retry_unknown;
  int code = rt.run(params, ro);
  // What the run wrote must be on disk for it to count: a report or run log that could not be
  // written (a full disk) fails the run, naming the file.
  std::vector<std::string> lost;
  std::string report_path;
  try {
    report_path = engine::run::report().finish(run.path.string(), code);
  } catch (const std::exception& e) {
    lost.push_back(e.what());
  }
  if (auto e = engine::log::file_error(); !e.empty()) lost.push_back("cannot write the run log " + e);
  if (!lost.empty() && code == 0) code = 1;
  if (a.log_format == "text") {
    engine::log::flush();
    std::string tail = engine::run::report().recap_text();
    if (a.dry_run) tail = engine::run::report().plan_text() + tail;
    std::fputs(("\n" + tail).c_str(), stdout);
    std::fflush(stdout);
  }
  for (const auto& l : lost) {
    engine::log::emit(engine::log::Level::error, "", "run record lost", {{"error", l}});
    std::fprintf(stderr, "engine: %s\n", l.c_str());
  }
  engine::log::emit(code == 0 ? engine::log::Level::info : engine::log::Level::error, "", "run finished",
                    {{"run", run.id}, {"exit", code}, {"report", report_path}});
  if (code == 1 || code == 130)
    std::fprintf(stderr, "continue it with: engine resume %s%s\n", run.id.c_str(),
                 a.state_dir.empty() ? "" : (" --state-dir " + a.state_dir).c_str());
  engine::log::flush();
  return code;
}

int do_run(Args& a) {
  engine::lua::Runtime rt(engine::lua::default_stdlib_dir());
  auto info = rt.load(a.runbook);
  if (a.help) {
    std::fputs(engine::lua::help_text(info).c_str(), stdout);
    return 0;
  }
  auto params = rt.resolve_params(parse_extra(a.extra));
  auto inv = load_inventory(a);
  register_secrets(info, params, &inv);
  rt.set_inventory(std::move(inv));
  auto run = engine::run::create(engine::run::state_dir(a.state_dir), info.name, [&](const engine::run::RunDir& r) {
    write_json(r.path / "run.json", run_record(a, r, info, params));
  });
  setup_logs(a, run);
  return execute(a, rt, info, params, run, false);
}

// engine resume RUN_ID: the recorded runbook, params and inventory, run again; finished steps are
// skipped. Refuses when the runbook or its params changed since, unless --force.
int do_resume(Args& a) {
  auto dir = engine::run::state_dir(a.state_dir) / "runs" / a.run_id;
  auto rec = read_json(dir / "run.json");
  if (rec.is_null()) throw engine::ConfigError("no run '" + a.run_id + "' under " + dir.parent_path().string());
  Args r = a;
  r.runbook = rec.value("runbook", "");
  // The recorded -e values, then the ones given now (secret params are given again here).
  r.extra = rec.value("extra", std::vector<std::string>{});
  for (const auto& e : a.extra) r.extra.push_back(e);
  r.inventories = rec.value("inventories", std::vector<std::string>{});
  r.limit = rec.value("limit", "");
  if (r.kubeconfig.empty()) r.kubeconfig = rec.value("kubeconfig", "");
  if (r.context.empty()) r.context = rec.value("context", "");
  auto sha = engine::sha256_file(r.runbook);
  if (!sha) throw engine::ConfigError("the run's runbook " + r.runbook + " is gone");
  if (*sha != rec.value("runbook_sha256", "") && !a.force)
    throw engine::ConfigError("the runbook " + r.runbook + " changed since the run started (sha256 " + sha->substr(0, 12) +
                              ", was " + rec.value("runbook_sha256", "").substr(0, 12) +
                              "): its steps may not mean what the journal says; resume with --force to use it anyway");
  engine::lua::Runtime rt(engine::lua::default_stdlib_dir());
  auto info = rt.load(r.runbook);
  nlohmann::json params;
  try {
    params = rt.resolve_params(parse_extra(r.extra));
  } catch (const engine::ConfigError& e) {
    throw engine::ConfigError(std::string(e.what()) + "\n(secret params are not recorded: give them again with -e)");
  }
  if (engine::sha256_hex(recordable(info, params).dump()) != rec.value("params_sha256", "") && !a.force) {
    bool secrets = std::any_of(info.params.begin(), info.params.end(), [](auto& p) { return p.secret; });
    throw engine::ConfigError(std::string("the runbook's params resolve differently than when the run started (its "
                                          "declarations changed); resume with --force to use them anyway") +
                              (secrets ? "\n(secret params are not recorded: give them again with -e)" : ""));
  }
  auto inv = load_inventory(r);
  register_secrets(info, params, &inv);
  rt.set_inventory(std::move(inv));
  engine::run::RunDir run{a.run_id, dir};
  setup_logs(r, run);
  return execute(r, rt, info, params, run, true);
}

// engine runs: every run under the state directory and how it ended.
int do_runs(Args& a) {
  namespace fs = std::filesystem;
  auto root = engine::run::state_dir(a.state_dir) / "runs";
  std::vector<std::string> ids;
  if (fs::is_directory(root))
    for (auto& e : fs::directory_iterator(root))
      if (e.is_directory()) ids.push_back(e.path().filename().string());
  std::sort(ids.begin(), ids.end());
  std::printf("%-44s %-22s %-12s %s\n", "RUN", "RUNBOOK", "STATE", "FINISHED");
  for (const auto& id : ids) {
    auto rec = read_json(root / id / "run.json");
    auto rep = read_json(root / id / "report.json");
    std::string runbook = rec.is_null() ? "?" : std::filesystem::path(rec.value("runbook", "?")).stem().string();
    // A live process holding the run's lock wins over any report an earlier attempt left.
    auto pid = engine::run::running_pid(root / id);
    std::string outcome = rep.is_null() ? "" : rep.value("outcome", "?");
    std::string state = pid ? "running" : outcome == "ok" ? "finished" : outcome == "failed" ? "failed"
                        : outcome == "interrupted" ? "stopped" : outcome.empty() ? "stopped" : outcome;
    std::string finished = pid ? "pid " + std::to_string(*pid) : rep.is_null() ? "-" : rep.value("finished", "-");
    std::printf("%-44s %-22s %-12s %s\n", id.c_str(), runbook.c_str(), state.c_str(), finished.c_str());
  }
  return 0;
}

// engine ctl RUN_ID pause|continue|skip HOST|abort: a line in the run's control file, which the
// running engine reads a few times a second.
int do_ctl(Args& a) {
  auto dir = engine::run::state_dir(a.state_dir) / "runs" / a.run_id;
  if (!std::filesystem::is_directory(dir)) throw engine::ConfigError("no run '" + a.run_id + "' under " + dir.parent_path().string());
  // Whether it runs now (a resumed run too), not whether an earlier attempt left a report.
  if (!engine::run::running_pid(dir))
    throw engine::ConfigError("run '" + a.run_id + "' is not running: there is nothing to steer (engine resume continues it)");
  const std::string& cmd = a.ctl.at(0);
  if (cmd != "pause" && cmd != "continue" && cmd != "skip" && cmd != "abort")
    throw engine::ConfigError("ctl: '" + cmd + "' is not pause, continue, skip HOST or abort");
  if (cmd == "skip" && a.ctl.size() < 2) throw engine::ConfigError("ctl skip needs the host to skip");
  std::ofstream f(dir / "control", std::ios::app);
  f << cmd << (a.ctl.size() > 1 ? " " + a.ctl[1] : "") << "\n";
  if (!f.flush()) throw engine::ConfigError("cannot write " + (dir / "control").string());
  std::printf("sent %s%s to %s\n", cmd.c_str(), a.ctl.size() > 1 ? (" " + a.ctl[1]).c_str() : "", a.run_id.c_str());
  return 0;
}

// Where each step stands, by host: what an operator needs before `engine resume` (or instead of it).
void print_steps(const engine::journal::Journal& j) {
  auto steps = j.steps();
  if (steps.empty()) return;
  std::printf("\nSTEPS\n");
  for (const auto& [key, e] : steps) {
    auto slash = key.find('/');
    std::string host = slash == std::string::npos ? "-" : key.substr(0, slash);
    std::string name = slash == std::string::npos ? key : key.substr(slash + 1);
    const char* state = e.state == engine::journal::Entry::done     ? "done"
                        : e.state == engine::journal::Entry::failed ? "failed"
                                                                    : "unknown";
    std::string why = e.state == engine::journal::Entry::failed ? e.error
                      : e.state == engine::journal::Entry::intent
                          ? "started, no record of finishing: it may or may not have taken effect"
                          : "";
    if (why.size() > 160) why = why.substr(0, 157) + "...";
    for (auto& c : why)
      if (c == '\n') c = ' ';
    std::printf("  %-8s %-20s %-36s %s\n", state, host.c_str(), name.c_str(), why.c_str());
  }
}

// engine show RUN_ID: the recap of one run and where each of its steps stands.
int do_show(Args& a) {
  auto dir = engine::run::state_dir(a.state_dir) / "runs" / a.run_id;
  auto rec = read_json(dir / "run.json");
  if (rec.is_null()) throw engine::ConfigError("no run '" + a.run_id + "' under " + dir.parent_path().string());
  auto rep = read_json(dir / "report.json");
  std::printf("run       %s\nrunbook   %s\n", a.run_id.c_str(), rec.value("runbook", "?").c_str());
  // A live process holding the run's lock is the run's state; a report is then an earlier attempt's.
  auto pid = engine::run::running_pid(dir);
  if (pid) std::printf("state     running (pid %ld)\n", *pid);
  if (rep.is_null()) {
    if (!pid) std::printf("state     incomplete (stopped before it could write its report)\n");
  } else {
    std::printf("%s %s (exit %d)\nstarted   %s\nfinished  %s\n", pid ? "earlier  " : "state    ", rep.value("outcome", "?").c_str(),
                rep.value("exit_code", -1), rep.value("started", "?").c_str(), rep.value("finished", "?").c_str());
    if (!rep["hosts"].empty()) {
      std::printf("\nRECAP\n");
      for (auto it = rep["hosts"].begin(); it != rep["hosts"].end(); ++it)
        std::printf("  %-30s %-12s %7.1fs  %s\n", it.key().c_str(), it.value().value("status", "?").c_str(),
                    it.value().value("seconds", 0.0), it.value().value("error", "").c_str());
    }
    for (const auto& e : rep["errors"]) std::printf("error     %s %s\n", e.value("host", "").c_str(), e.value("msg", "").c_str());
  }
  if (std::filesystem::exists(dir / "journal")) {
    std::vector<std::string> warnings;
    try {
      engine::journal::Journal j((dir / "journal").string(), warnings, true);
      std::printf("journal   %zu records\n", j.records());
      print_steps(j);
    } catch (const std::exception& e) {
      std::printf("journal   unreadable: %s\n", e.what());
    }
    for (const auto& w : warnings) std::printf("warning   %s\n", w.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  raise_open_files_limit();
  CLI::App app{"engine: Kubernetes operations runbooks in Lua"};
  app.require_subcommand(1);
  Args a;

  auto* run = app.add_subcommand("run", "run a runbook");
  add_common(run, a);
  run->set_help_flag();  // `engine run X.lua --help` shows the runbook's own help
  run->add_flag("-h,--help", a.help, "show the runbook's summary and params");
  run->add_flag("--dry-run", a.dry_run, "record side effects as a plan instead of doing them");
  run->add_flag("--yes", a.yes, "answer yes to confirm() prompts");
  run->add_option("--log-format", a.log_format, "text or json")->check(CLI::IsMember({"text", "json"}));
  run->add_option("--log-level", a.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  run->add_option("--state-dir", a.state_dir, "where run directories live (default $XDG_STATE_HOME/engine)");
  run->add_option("--kubeconfig", a.kubeconfig, "the kubeconfig for engine.k8s (default: the inventory's k8s_kubeconfig, $KUBECONFIG)");
  run->add_option("--context", a.context, "the kubeconfig context for engine.k8s");

  auto* check = app.add_subcommand("check", "compile a runbook and validate params and inventory; runs nothing");
  add_common(check, a);

  auto* resume = app.add_subcommand("resume", "continue a stopped or failed run: finished steps are skipped");
  resume->add_option("run_id", a.run_id, "the run's id (engine runs lists them)")->required();
  resume->add_flag("--force", a.force, "resume even though the runbook or its params changed");
  resume->add_option("-e,--extra", a.extra, "a param again: secret params are not recorded (name=value)");
  resume->add_flag("--retry-unknown", a.retry_unknown, "run again the steps that started but have no record of finishing");
  resume->add_flag("--yes", a.yes, "answer yes to confirm() prompts");
  resume->add_option("--log-format", a.log_format, "text or json")->check(CLI::IsMember({"text", "json"}));
  resume->add_option("--log-level", a.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  resume->add_option("--state-dir", a.state_dir, "where run directories live");
  resume->add_option("--kubeconfig", a.kubeconfig, "the kubeconfig for engine.k8s");
  resume->add_option("--context", a.context, "the kubeconfig context for engine.k8s");

  auto* runs = app.add_subcommand("runs", "list runs and their state");
  runs->add_option("--state-dir", a.state_dir, "where run directories live");
  auto* show = app.add_subcommand("show", "a run's recap");
  show->add_option("run_id", a.run_id, "the run's id")->required();
  show->add_option("--state-dir", a.state_dir, "where run directories live");

  auto* ctl = app.add_subcommand("ctl", "steer a live run: pause, continue, skip HOST, abort");
  ctl->add_option("run_id", a.run_id, "the run's id")->required();
  ctl->add_option("command", a.ctl, "pause | continue | skip HOST | abort")->required()->expected(1, 2);
  ctl->add_option("--state-dir", a.state_dir, "where run directories live");

  auto* version = app.add_subcommand("version", "print the engine's version");

  try {
    // Without a runbook, `engine run --help` is the command's own help.
    if (argc >= 2 && std::string(argv[1]) == "run") {
      bool has_runbook = false;
      for (int i = 2; i < argc; ++i)
        if (std::string(argv[i]).size() > 4 && std::string(argv[i]).ends_with(".lua")) has_runbook = true;
      if (!has_runbook)
        for (int i = 2; i < argc; ++i)
          if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
            std::cout << run->help();
            return 0;
          }
    }
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  try {
    if (*version) {
      std::printf("engine %s\n", ENGINE_VERSION);
      return 0;
    }
    if (*check) return do_check(a);
    if (*resume) return do_resume(a);
    if (*runs) return do_runs(a);
    if (*show) return do_show(a);
    if (*ctl) return do_ctl(a);
    return do_run(a);
  } catch (const engine::ConfigError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const engine::RunbookError& e) {
    std::fprintf(stderr, "runbook failed: %s\n", engine::log::redact(e.what()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
