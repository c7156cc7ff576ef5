// The engine command line: run, check, version. Exit codes: 0 ok, 1 runbook failed,
// 2 usage or configuration error, 130 interrupted.
#include <algorithm>
#include <cctype>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "cli/commands.hpp"
#include "engine/core/errors.hpp"
#include "engine/log/log.hpp"
#include "engine/run/control.hpp"

using namespace engine::cli;

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

void add_common(CLI::App* cmd, Args& a) {
  cmd->add_option("runbook", a.runbook, "the runbook file (.lua)")->required();
  cmd->add_option("-i,--inventory", a.inventories, "inventory file, directory or host list (repeatable)");
  cmd->add_option("-e,--extra", a.extra, "a runbook param: name=value, @FILE (YAML/JSON) or a JSON mapping (repeatable)");
  cmd->add_option("--limit", a.limit, "only these hosts: an Ansible pattern (web:&prod:!web3)");
  cmd->add_flag("--list-hosts", a.list_hosts, "print the hosts the run would touch (after --limit) and stop");
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
  run->add_option("--run-id", a.fixed_id, "this run id (a Job's pods: the same id each time); a run of it already there is resumed, one that finished is left")
      ->check([](const std::string& v) {
        bool ok = !v.empty() && v.size() <= 200 && std::isalnum(static_cast<unsigned char>(v.front())) &&
                  std::all_of(v.begin(), v.end(), [](char c) { return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'; });
        return ok ? std::string() : "a run id is lowercase letters, digits, '-' and '.' (a ConfigMap name in a k8s:// state)";
      });
  run->add_option("--state-dir", a.state_dir, "where run directories live (default $XDG_STATE_HOME/engine), or k8s://NAMESPACE[?keep_days=N]: in the cluster");
  run->add_flag("-v,--verbose", a.verbose, "more output: -v debug logs, -vv also every HTTP request");
  run->add_option("--junit", a.junit, "also write the run's steps as JUnit XML to this file (for CI systems)");
  run->add_option("--kubeconfig", a.kubeconfig, "the kubeconfig for engine.k8s (default: the inventory's k8s_kubeconfig, $KUBECONFIG)");
  run->add_option("--context", a.context, "the kubeconfig context for engine.k8s");

  auto* check = app.add_subcommand("check", "compile a runbook and validate params and inventory; runs nothing");
  add_common(check, a);
  check->add_option("--kubeconfig", a.kubeconfig, "checked: the file and the context exist");
  check->add_option("--context", a.context, "checked against the kubeconfig");
  check->add_flag("--module", a.module, "the file is a Lua module (a runbook's lib/ or the stdlib), checked on its own");

  auto* resume = app.add_subcommand("resume", "continue a stopped or failed run: finished steps are skipped");
  resume->add_option("run_id", a.run_id, "the run's id (engine runs lists them)")->required();
  resume->add_flag("--force", a.force, "resume even though the runbook or its params changed");
  resume->add_option("-e,--extra", a.extra, "a param again: secret params are not recorded (name=value)");
  resume->add_option("--limit", a.narrower,
                     "leave more hosts out (a host pattern applied within the run's recorded --limit; it never adds one)");
  resume->add_flag("--retry-unknown", a.retry_unknown, "run again the steps that started but have no record of finishing");
  resume->add_flag("--yes", a.yes, "answer yes to confirm() prompts");
  resume->add_option("--log-format", a.log_format, "text or json")->check(CLI::IsMember({"text", "json"}));
  resume->add_option("--log-level", a.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  resume->add_option("--state-dir", a.state_dir, "where run directories live");
  resume->add_flag("-v,--verbose", a.verbose, "more output: -v debug logs, -vv also every HTTP request");
  resume->add_option("--junit", a.junit, "also write the run's steps as JUnit XML to this file (for CI systems)");
  resume->add_option("--kubeconfig", a.kubeconfig, "the kubeconfig for engine.k8s");
  resume->add_option("--context", a.context, "the kubeconfig context for engine.k8s");

  auto* runs = app.add_subcommand("runs", "list runs and their state");
  runs->add_option("--state-dir", a.state_dir, "where run directories live (k8s://NAMESPACE: in the cluster)");
  runs->add_option("--kubeconfig", a.kubeconfig, "the cluster of a k8s:// state");
  runs->add_option("--context", a.context, "the kubeconfig context of a k8s:// state");
  auto* show = app.add_subcommand("show", "a run's recap");
  show->add_option("run_id", a.run_id, "the run's id")->required();
  show->add_option("--state-dir", a.state_dir, "where run directories live (k8s://NAMESPACE: in the cluster)");
  show->add_option("--kubeconfig", a.kubeconfig, "the cluster of a k8s:// state");
  show->add_option("--context", a.context, "the kubeconfig context of a k8s:// state");

  auto* report = app.add_subcommand("report", "a run's report again: report.html (drawn at the end of every run) or JUnit XML");
  report->add_option("run_id", a.run_id, "the run's id")->required();
  report->add_option("--html", a.html, "write the self-contained HTML report to this file");
  report->add_option("--junit", a.junit, "write the steps as JUnit XML to this file");
  report->add_option("--state-dir", a.state_dir, "where run directories live");

  auto* ctl = app.add_subcommand("ctl", "steer a live run: pause, continue, skip HOST, abort");
  ctl->add_option("run_id", a.run_id, "the run's id")->required();
  ctl->add_option("command", a.ctl, engine::run::control_usage)->required()->expected(1, 2);
  ctl->add_option("--state-dir", a.state_dir, "where run directories live (k8s://NAMESPACE: a run kept in the cluster, on any machine)");
  ctl->add_option("--kubeconfig", a.kubeconfig, "the cluster of a k8s:// state");
  ctl->add_option("--context", a.context, "the kubeconfig context of a k8s:// state");

  auto* api = app.add_subcommand("api", "the Lua API as stdlib/meta describes it: docs/api.md's reference tables, or JSON");
  static bool api_json = false;
  api->add_flag("--json", api_json, "the description as JSON (modules, functions, arguments, option and result classes)");
  static std::vector<std::string> api_params;
  api->add_option("--params", api_params, "instead, the LuaCATS classes of these runbooks' params (stdlib/meta/runbooks.lua for the shipped ones)");

  auto* version = app.add_subcommand("version", "print the engine's version");
  app.add_flag_callback("--version", [] {
    std::printf("engine %s (%s)\n", ENGINE_VERSION, ENGINE_COMMIT);
    throw CLI::Success();
  }, "print the engine's version and stop");

  auto* inventory = app.add_subcommand("inventory", "the inventory as the engine reads it, as ansible-inventory --list prints it");
  inventory->add_option("-i,--inventory", a.inventories, "inventory file, directory, script or host list (repeatable)");
  inventory->add_option("--limit", a.limit, "only these hosts: an Ansible pattern");
  static bool list = true;  // the default output; the flag is Ansible's spelling of it
  inventory->add_flag("--list", list, "every group and host with its variables, as JSON (the default)");
  inventory->add_option("--host", a.inventory_host, "one host's variables, as JSON");
  inventory->add_flag("--list-hosts", a.list_hosts, "the host names, one per line");
  inventory->add_flag("--ssh", a.inventory_ssh, "how each host is reached (address, port, user, keys, jump hosts), as ssh -G shows it");
  inventory->add_option("--ssh-config", a.ssh_config, "read this ssh config alone, as ssh -F (default ~/.ssh/config, then /etc/ssh/ssh_config)");

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
    a.extra = expand_extra(a.extra);
    if (!a.runbook.empty()) a.runbook = resolve_runbook(a.runbook);
    if (*version) {
      std::printf("engine %s (%s)\n", ENGINE_VERSION, ENGINE_COMMIT);
      return 0;
    }
    if (*inventory) return do_inventory(a);
    if (*api) {
      return do_api(api_json, api_params);
    }
    if (*report) return do_report(a);
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

