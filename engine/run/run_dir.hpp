// Where a run keeps its state: one directory per run under the state directory
// ($XDG_STATE_HOME/engine/runs by default), holding the run log and, later, the journal and report.
#pragma once
#include <filesystem>
#include <functional>
#include <string>

namespace engine::run {

struct RunDir {
  std::string id;  // "20261121-101500-k8s-upgrade-3f2a"
  std::filesystem::path path;
};

// --state-dir, else $XDG_STATE_HOME/engine, else ~/.local/state/engine.
std::filesystem::path state_dir(const std::string& flag);

// Creates a fresh run directory: made under STATE/incoming, filled by `fill` (run.json), then
// renamed into STATE/runs, so runs/ only ever holds directories a resume can read, whenever the
// process is killed. fixed_id: that id (engine run --run-id) instead of a new one; a run of that
// id already there is refused. Throws ConfigError when it cannot be made.
RunDir create(const std::filesystem::path& state_dir, const std::string& runbook_name,
              const std::function<void(const RunDir&)>& fill, const std::string& fixed_id = "");

}  // namespace engine::run
