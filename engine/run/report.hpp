// report.json in the run's directory: what ran, with which params (secrets redacted), every
// warning and error the run logged (a failed Pushgateway push among them), each host's outcome in
// fleet.each, and how it ended. Written atomically at the end of the run.
#pragma once
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/core/huge_pages.hpp"

namespace engine::run {

class Report {
 public:
  void begin(const std::string& run_id, const std::string& runbook, const std::string& path, nlohmann::json params);
  // A warning or an error the run logged.
  void note(std::string_view level, std::string_view host, std::string_view msg, const nlohmann::json& fields);
  // A journaled step's outcome: "done", "failed", or "skipped" (done in an earlier run). It ended
  // now and took `seconds`: report.json gets its start and end (wall clock, and seconds since the
  // run began on the monotonic clock).
  void step(const std::string& key, const std::string& status, double seconds, const nlohmann::json& results,
            const std::string& error);
  // Seconds since the run began, on the monotonic clock: where spans start.
  double clock() const;
  double clock(std::chrono::steady_clock::time_point at) const;  // that reading of the clock, on this scale
  // Something that took time on a host, beside the steps: an exec, a drain, a gate's wait. Kept up
  // to kMaxSpans (report.json says how many were left out beyond).
  void span(std::string_view kind, std::string_view host, std::string_view name, double start, std::string_view outcome);
  static constexpr size_t kMaxSpans = 20000;
  // Something a dry run would have done.
  void plan(std::string_view host, std::string_view step, std::string_view action, const nlohmann::json& fields);
  struct HostOutcome {
    std::string name, status, error;
    double seconds = 0;
    double started = -1;  // seconds since the run began; -1: never started
    std::string phase;    // the step the fleet.each ran in ("" outside one): what "ok" was about
  };
  // One per host of a fleet.each: 14 MB at 100,000 hosts, kept to the end of the run.
  using HostOutcomes = std::vector<HostOutcome, HugeAllocator<HostOutcome>>;
  // Every host's outcome in one fleet.each, recorded once when it ends (the last one wins when a
  // host is in several).
  void hosts(HostOutcomes outcomes);
  // A host the run could not connect to over SSH (refused, unreachable, timed out): `why` is the
  // first such failure's word and detail.
  void unreachable(std::string_view host, std::string why);
  // Connected to it since (a node back from its reboot): no longer one to leave out. Without a
  // lock while no host was ever unreachable (it is called for every session handed out).
  void reached(std::string_view host);
  // Those of them whose last fleet.each failed them (or that no fleet.each ran on), by name: what
  // a failed run's hint offers to leave out (--limit '!w3').
  std::vector<std::pair<std::string, std::string>> unreachable_failed() const;
  // Hosts of the run a resume's --limit left out (report.json's left_out): the run is not finished
  // for them, and `engine runs` says partial when it ended ok.
  void left_out(std::vector<std::string> hosts);
  // Writes DIR/report.json (through a temporary, renamed); throws std::runtime_error naming the
  // file when it cannot be written whole.
  std::string finish(const std::string& dir, int exit_code);
  nlohmann::json snapshot() const;
  // The plan grouped by host and step, and the recap per host, as a person reads them.
  std::string plan_text() const;
  std::string recap_text() const;
  // JUnit XML (for CI systems): a testsuite per host, a testcase per journaled step (failed ones
  // with their error, steps done by an earlier run skipped), and each host's outcome as a testcase.
  std::string junit() const;

 private:
  // Host outcomes are kept as plain records and become JSON only when the report is read or
  // written; the first fleet.each's list is taken as it is, so a run with one fleet hashes no
  // host name (per host, that hashing cost more than the rest of its bookkeeping in fleet.each).
  nlohmann::json hosts_json() const;       // {name: {status, seconds[, error]}}
  std::vector<const HostOutcome*> hosts_by_name() const;

  mutable std::mutex mu_;
  nlohmann::json doc_ = nlohmann::json::object();
  HostOutcomes hosts_;  // a name may repeat within one fleet.each's list; the last wins
  std::chrono::system_clock::time_point started_;
  std::chrono::steady_clock::time_point mono_started_ = std::chrono::steady_clock::now();
  size_t spans_dropped_ = 0;
  std::map<std::string, std::string, std::less<>> unreachable_;
  std::atomic<bool> any_unreachable_{false};
};

Report& report();

// JUnit XML of a report.json (what Report::junit writes for the live run).
std::string junit_of(const nlohmann::json& report);

}  // namespace engine::run
