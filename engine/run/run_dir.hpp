// Where a run keeps its state: one directory per run under the state directory
// ($XDG_STATE_HOME/engine/runs by default), holding the run log and, later, the journal and report.
#pragma once
#include <filesystem>
#include <string>

namespace engine::run {

struct RunDir {
  std::string id;  // "20261121-101500-k8s-upgrade-3f2a"
  std::filesystem::path path;
};

// --state-dir, else $XDG_STATE_HOME/engine, else ~/.local/state/engine.
std::filesystem::path state_dir(const std::string& flag);

// Creates a fresh run directory. Throws ConfigError when it cannot be made.
RunDir create(const std::filesystem::path& state_dir, const std::string& runbook_name);

}  // namespace engine::run
