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
  struct HostOutcome {
    std::string name, status, error;
    double seconds = 0;
  };
  // Every host's outcome in one fleet.each, recorded once when it ends (the last one wins when a
  // host is in several).
  void hosts(std::vector<HostOutcome> outcomes);
  // Writes DIR/report.json (through a temporary, renamed); throws std::runtime_error naming the
  // file when it cannot be written whole.
  std::string finish(const std::string& dir, int exit_code);
  nlohmann::json snapshot() const;
  // The plan grouped by host and step, and the recap per host, as a person reads them.
  std::string plan_text() const;
  std::string recap_text() const;

 private:
  // Host outcomes are kept as plain records and become JSON only when the report is read or
  // written; the first fleet.each's list is taken as it is, so a run with one fleet hashes no
  // host name (per host, that hashing cost more than the rest of its bookkeeping in fleet.each).
  nlohmann::json hosts_json() const;       // {name: {status, seconds[, error]}}
  std::vector<const HostOutcome*> hosts_by_name() const;

  mutable std::mutex mu_;
  nlohmann::json doc_ = nlohmann::json::object();
  std::vector<HostOutcome> hosts_;  // a name may repeat within one fleet.each's list; the last wins
  std::chrono::system_clock::time_point started_;
};

Report& report();

}  // namespace engine::run
