// report.json in the run's directory: what ran, with which params (secrets redacted), every
// warning and error the run logged (a failed Pushgateway push among them), each host's outcome in
// fleet.each, and how it ended. Written atomically at the end of the run.
#pragma once
#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace engine::run {

class Report {
 public:
  void begin(const std::string& run_id, const std::string& runbook, const std::string& path, nlohmann::json params);
  // A warning or an error the run logged.
  void note(std::string_view level, std::string_view host, std::string_view msg, const nlohmann::json& fields);
  // A journaled step's outcome: "done", "failed", or "skipped" (done in an earlier run).
  void step(const std::string& key, const std::string& status, double seconds, const nlohmann::json& results,
            const std::string& error);
  // Something a dry run would have done.
  void plan(std::string_view host, std::string_view step, std::string_view action, const nlohmann::json& fields);
  // One host's outcome in a fleet.each (the last one wins when a host is in several).
  void host(const std::string& name, const std::string& status, const std::string& error, double seconds);
  // Writes report.json (through a temporary name) and returns its path.
  std::string finish(const std::string& dir, int exit_code);
  nlohmann::json snapshot() const;
  // The plan grouped by host and step, and the recap per host, as a person reads them.
  std::string plan_text() const;
  std::string recap_text() const;

 private:
  // Host outcomes are kept as plain records and become JSON only when the report is read or
  // written: fleet.each records one per host, and a JSON object per host (a string-keyed tree
  // insert) cost more than the rest of a host's bookkeeping.
  struct HostOutcome {
    std::string name, status, error;
    double seconds = 0;
  };
  nlohmann::json hosts_json() const;       // {name: {status, seconds[, error]}}
  std::vector<const HostOutcome*> hosts_by_name() const;

  mutable std::mutex mu_;
  nlohmann::json doc_ = nlohmann::json::object();
  std::vector<HostOutcome> hosts_;
  std::unordered_map<std::string, size_t> host_index_;
  std::chrono::system_clock::time_point started_;
};

Report& report();

}  // namespace engine::run
