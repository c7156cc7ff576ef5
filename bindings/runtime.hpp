// The engine's Lua runtime as the CLI sees it: load a runbook, check its params, run it on the event
// loop. This header is Lua-free so that engine/cli stays on its side of the layering.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/inventory/inventory.hpp"
#include "engine/journal/journal.hpp"
#include "engine/params/params.hpp"

namespace boost::asio {
class io_context;
}

namespace engine::lua {

struct Vm;

struct RunbookInfo {
  std::string path;
  std::string name;
  std::string summary;
  // Changes nothing anywhere (a check, a diagnosis): its answer is only as fresh as the run, so
  // after a failure it is run again, never resumed (a resume would give back its recorded answers).
  bool read_only = false;
  std::vector<params::Spec> params;
};

struct RunOptions {
  bool dry_run = false;
  bool assume_yes = false;
  std::string run_id;
  std::string kubeconfig;  // --kubeconfig: overrides the inventory's and $KUBECONFIG
  std::string context;     // --context
  journal::Journal* journal = nullptr;  // steps are journaled here (none under --dry-run)
  std::string control_file;             // engine ctl writes commands here
  bool retry_unknown = false;
  bool verbose = false;  // -v: a code error's traceback with the stdlib's and the engine's frames too
};

// How a run ended, for what the CLI says about resuming it.
enum class Ending { ok, declared, code_error, interrupted, lease_lost };

class Runtime {
 public:
  // stdlib_dir: where std.* modules and the prelude live.
  explicit Runtime(const std::string& stdlib_dir);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Compiles and evaluates the runbook file. A syntax error or a file that does not return
  // runbook{...} throws ConfigError; an error while its top level runs throws RunbookError.
  RunbookInfo load(const std::string& path);
  // Typed params from -e pairs (ConfigError lists every problem).
  nlohmann::json resolve_params(const std::vector<std::pair<std::string, std::string>>& given,
                                std::vector<std::string>* missing = nullptr);
  void set_inventory(inventory::Inventory inv);

  // Runs run(p, inv) to the end. Returns the exit code: 0 ok, 1 failed, 130 interrupted.
  // SIGINT once stops admitting hosts; twice cancels what is in flight. SIGTERM cancels.
  int run(const nlohmann::json& params, const RunOptions& opts);
  Ending ending() const { return ending_; }
  // The run's event loop, for what the CLI hands the run that waits on it (the cluster journal).
  boost::asio::io_context& loop();

  // For tests: runs a chunk of Lua as a task to completion; returns "" or the error text.
  std::string run_snippet(const std::string& code);
  // engine check's static pass (stdlib/engine/lint.lua) over the loaded runbook and the Lua files
  // of its lib/ (or over `files` when given: modules checked on their own). "file:line:col: what"
  // for each finding, in order.
  std::vector<std::string> lint(const std::vector<std::string>& files = {});
  // `engine api`: the Lua API as stdlib/meta describes it, as docs/api.md's reference tables
  // ("markdown") or as JSON ("json").
  std::string api(const std::string& format);

 private:
  std::unique_ptr<Vm> vm_;
  Ending ending_ = Ending::ok;
  std::unique_ptr<inventory::Inventory> inventory_;
  RunbookInfo info_;
};

// The LuaCATS class of a runbook's params (`engine api --params`): "params.k8s_upgrade" with a
// typed field per param, for `---@param p params.k8s_upgrade` above its run function.
std::string params_class_name(const std::string& runbook_name);
std::string params_class(const RunbookInfo& info);

// What `engine run RUNBOOK --help` prints.
std::string help_text(const RunbookInfo& info);

// The stdlib directory: $ENGINE_STDLIB, else PREFIX/share/engine/stdlib beside an installed
// binary, else the source tree the build was configured from.
std::string default_stdlib_dir();
// Where the shipped runbooks are: PREFIX/share/engine/runbooks installed, else the source tree's.
std::string shipped_runbooks_dir();

}  // namespace engine::lua
