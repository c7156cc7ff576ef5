// The engine command line, split by command: args.cpp (what every command shares), run.cpp (check,
// run, resume), runs.cpp (runs, show, ctl), main.cpp (the argument parser). cli/ sits on top: it may
// include engine/ and bindings/ (through bindings/runtime.hpp, which is Lua-free).
#pragma once
#include <filesystem>
#include <thread>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/inventory/inventory.hpp"

namespace engine::run {
class ClusterStore;
}

namespace engine::cli {

struct Args {
  std::string runbook;
  std::vector<std::string> inventories;
  std::vector<std::string> extra;
  std::string limit;
  std::string narrower;  // resume --limit: leaves more hosts out of the recorded run (never adds one)
  std::vector<std::string> left_out;  // the run's hosts that narrower left out
  bool dry_run = false, yes = false, help = false;
  std::string log_format = "text", log_level = "info", state_dir;
  std::string kubeconfig, context;
  std::string run_id;          // resume, show
  std::string fixed_id;        // run --run-id: this id; a run of it already there is resumed
  bool force = false, retry_unknown = false;
  std::vector<std::string> ctl;  // ctl: the command and its host
  bool list_hosts = false;
  bool module = false;           // check --module: a Lua module, not a runbook
  std::string junit;             // run/resume/report --junit FILE
  std::string html;              // report --html FILE
  int verbose = 0;               // -v: debug logs; -vv: also every HTTP exchange
  std::string inventory_host;    // inventory --host NAME
  bool inventory_ssh = false;    // inventory --ssh: how each host is reached
  std::string ssh_config;        // inventory --ssh-config FILE (as ssh -F)
};

std::vector<std::pair<std::string, std::string>> parse_extra(const std::vector<std::string>& items);
// Ansible's -e forms made name=value items: @FILE (a YAML or JSON mapping) and an inline JSON (or
// YAML) mapping; name=value stays as given. Done once, first, so secrets and the run record see
// plain items.
std::vector<std::string> expand_extra(const std::vector<std::string>& items);
inventory::Inventory load_inventory(const Args& a);
// The runbook argument: a path as given, or a bare name of a shipped runbook (doctor, doctor.lua).
std::string resolve_runbook(const std::string& path);
// --kubeconfig and --context checked before anything runs (a context the kubeconfig does not have is
// a configuration error, exit 2, not a failed run to resume). Nothing when neither is given.
void check_cluster_flags(const Args& a, const inventory::Inventory& inv);
// Every host's connection vars (ansible_port, ansible_become, ...) as SSH will read them: a bad one
// stops the run before it starts, naming the inventory, the host and the var.
void check_connections(const Args& a, const inventory::Inventory& inv);
// A run's run.json or report.json; null when missing or unreadable.
nlohmann::json read_json(const std::filesystem::path& path);

// --state-dir k8s://NAMESPACE (cli/cluster_state.cpp): the store (nullptr for a directory), the
// local directory runs live in (the working copy for k8s://), how long finished runs are kept, and
// a run's records copied from the cluster into runs/ID (false: the namespace has no such run).
std::unique_ptr<run::ClusterStore> cluster_store(const Args& a);
std::filesystem::path local_state(const Args& a);
double cluster_keep_days(const Args& a);
bool materialize(run::ClusterStore& store, const std::filesystem::path& runs, const std::string& id);
// A run kept in the cluster hears `engine ctl` sent from any machine while this lives.
class ControlRelay {
 public:
  ControlRelay(const Args& a, const std::string& id, std::filesystem::path control_file);
  ~ControlRelay();

 private:
  std::jthread thread_;
};

int do_check(Args& a);
// engine api [--json]: the Lua API as stdlib/meta describes it.
int do_api(bool json, const std::vector<std::string>& params_of);
int do_run(Args& a);
int do_resume(Args& a);
int do_runs(Args& a);
int do_show(Args& a);
int do_ctl(Args& a);
int do_inventory(Args& a);
int do_report(Args& a);
// --list-hosts: the inventory's hosts after --limit, one per line (the runbook chooses among them).
int print_hosts(const inventory::Inventory& inv);

}  // namespace engine::cli
