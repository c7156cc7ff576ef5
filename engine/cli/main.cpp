// The engine command line: run, check, version. Exit codes: 0 ok, 1 runbook failed,
// 2 usage or configuration error, 130 interrupted.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "bindings/runtime.hpp"
#include "engine/core/errors.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/log/log.hpp"
#include "engine/run/report.hpp"
#include "engine/run/run_dir.hpp"

namespace {

struct Args {
  std::string runbook;
  std::vector<std::string> inventories;
  std::vector<std::string> extra;
  std::string limit;
  bool dry_run = false, yes = false, help = false;
  std::string log_format = "text", log_level = "info", state_dir;
  std::string kubeconfig, context;
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

int do_check(Args& a) {
  engine::lua::Runtime rt(engine::lua::default_stdlib_dir());
  auto info = rt.load(a.runbook);
  auto params = rt.resolve_params(parse_extra(a.extra));
  auto inv = load_inventory(a);
  size_t hosts = 0;
  for (const auto& h : inv.host_names()) hosts += inv.visible(h);
  std::printf("ok: runbook '%s' (%zu params), inventory %zu hosts in %zu groups\n", info.name.c_str(),
              info.params.size(), hosts, inv.group_names().size());
  return 0;
}

int do_run(Args& a) {
  engine::lua::Runtime rt(engine::lua::default_stdlib_dir());
  auto info = rt.load(a.runbook);
  if (a.help) {
    std::fputs(engine::lua::help_text(info).c_str(), stdout);
    return 0;
  }
  auto params = rt.resolve_params(parse_extra(a.extra));
  rt.set_inventory(load_inventory(a));

  auto run = engine::run::create(engine::run::state_dir(a.state_dir), info.name);
  engine::log::Options lo;
  lo.format = a.log_format == "json" ? engine::log::Format::json : engine::log::Format::text;
  lo.level = *engine::log::parse_level(a.log_level);
  lo.file = (run.path / "run.log").string();
  lo.color = lo.format == engine::log::Format::text && isatty(STDOUT_FILENO);
  engine::log::setup(lo);
  nlohmann::json shown = nlohmann::json::object();
  for (const auto& spec : info.params)
    if (params.contains(spec.name)) shown[spec.name] = spec.secret ? nlohmann::json("<secret>") : params[spec.name];
  engine::run::report().begin(run.id, info.name, a.runbook, shown);
  engine::log::emit(engine::log::Level::info, "", "run started",
                    {{"run", run.id}, {"runbook", info.name}, {"dir", run.path.string()}, {"dry_run", a.dry_run}});

  int code = rt.run(params, {a.dry_run, a.yes, run.id, a.kubeconfig, a.context});
  auto report_path = engine::run::report().finish(run.path.string(), code);
  engine::log::emit(code == 0 ? engine::log::Level::info : engine::log::Level::error, "", "run finished",
                    {{"run", run.id}, {"exit", code}, {"report", report_path}});
  engine::log::flush();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
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
    return do_run(a);
  } catch (const engine::ConfigError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const engine::RunbookError& e) {
    std::fprintf(stderr, "runbook failed: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
