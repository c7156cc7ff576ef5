// engine runs, engine show and engine ctl: what an operator reads of runs, and how a live one is steered.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "engine/core/errors.hpp"
#include "engine/journal/journal.hpp"
#include "engine/run/cluster_store.hpp"
#include "engine/run/control.hpp"
#include "engine/run/lock.hpp"
#include "engine/run/report.hpp"
#include "engine/run/report_html.hpp"
#include "engine/run/run_dir.hpp"

namespace engine::cli {

// engine runs: every run under the state directory and how it ended.
int do_runs(Args& a) {
  namespace fs = std::filesystem;
  auto root = local_state(a) / "runs";
  // k8s://: the cluster's runs, each copied here first (a run another pod started too).
  if (auto store = cluster_store(a))
    for (const auto& id : store->runs())
      if (!engine::run::running_pid(root / id)) materialize(*store, root, id);
  std::vector<std::string> ids;
  if (fs::is_directory(root))
    for (auto& e : fs::directory_iterator(root))
      if (e.is_directory()) ids.push_back(e.path().filename().string());
  std::sort(ids.begin(), ids.end());
  std::printf("%-44s %-22s %-16s %s\n", "RUN", "RUNBOOK", "STATE", "FINISHED");
  for (const auto& id : ids) {
    auto rec = read_json(root / id / "run.json");
    auto rep = read_json(root / id / "report.json");
    std::string runbook = rec.is_null() ? "?" : std::filesystem::path(rec.value("runbook", "?")).stem().string();
    // A live process holding the run's lock wins over any report an earlier attempt left.
    auto pid = engine::run::running_pid(root / id);
    std::string outcome = rep.is_null() ? "" : rep.value("outcome", "?");
    std::string state = pid ? "running" : outcome == "ok" ? "finished" : outcome == "failed" ? "failed"
                        : outcome == "interrupted" ? "stopped" : outcome.empty() ? "stopped" : outcome;
    // A rehearsal is not a run that finished (or one to resume): one word, for awk '{print $3}'.
    if (!rec.is_null() && rec.value("dry_run", false)) state = "dry-run-" + state;
    // Ended ok without the hosts a resume's --limit left out: a plain resume finishes them.
    if (state == "finished" && rep.contains("left_out") && !rep["left_out"].empty()) state = "partial";
    std::string finished = pid ? "pid " + std::to_string(*pid) : rep.is_null() ? "-" : rep.value("finished", "-");
    std::printf("%-44s %-22s %-16s %s\n", id.c_str(), runbook.c_str(), state.c_str(), finished.c_str());
  }
  return 0;
}

// engine ctl RUN_ID pause|continue|skip HOST|abort (engine/run/control.hpp has the words and the file).
int do_ctl(Args& a) {
  if (auto store = cluster_store(a)) {  // k8s://: the run may be on another machine; it polls its ctl ConfigMap
    auto c = engine::run::parse_control(a.ctl);
    store->send_control(a.run_id, engine::run::to_line(c));
    std::printf("sent %s to %s in the cluster (%s): the engine running it acts within a few seconds; an attempt "
                "started later does not\n", engine::run::to_line(c).c_str(), a.run_id.c_str(), store->ns().c_str());
    return 0;
  }
  auto dir = local_state(a) / "runs" / a.run_id;
  if (!std::filesystem::is_directory(dir)) throw engine::ConfigError("no run '" + a.run_id + "' under " + dir.parent_path().string());
  // Whether it runs now (a resumed run too), not whether an earlier attempt left a report.
  if (!engine::run::running_pid(dir))
    throw engine::ConfigError("run '" + a.run_id + "' is not running: there is nothing to steer (engine resume continues it)");
  auto c = engine::run::parse_control(a.ctl);
  engine::run::send_control(dir / "control", c);
  std::printf("sent %s to %s\n", engine::run::to_line(c).c_str(), a.run_id.c_str());
  return 0;
}

namespace {

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
    // How long it took, from its INTENT to its DONE or FAILED (journals before 0.1 have no times).
    std::string took = e.started_ms && e.ended_ms ? fmt::format("{:.1f}s", static_cast<double>(e.ended_ms - e.started_ms) / 1000)
                       : e.started_ms            ? "running"
                                                 : "-";
    std::printf("  %-8s %-20s %-36s %8s  %s\n", state, host.c_str(), name.c_str(), took.c_str(), why.c_str());
  }
}

// Where the time went besides the steps: drains and gate waits one by one, and per host the
// commands run and the seconds spent in them.
void print_waits(const nlohmann::json& rep) {
  if (!rep.contains("spans") || rep["spans"].empty()) return;
  std::map<std::string, std::pair<int, double>> execs;
  std::vector<std::string> waits;
  for (const auto& s : rep["spans"]) {
    double took = s.value("end", 0.0) - s.value("start", 0.0);
    std::string kind = s.value("kind", ""), host = s.value("host", "");
    if (kind == "exec") {
      auto& e = execs[host.empty() ? "-" : host];
      e.first += 1;
      e.second += took;
    } else {
      waits.push_back(fmt::format("  {:<6} {:<20} {:>8.1f}s  at {:.1f}s  {}  {}", kind, host.empty() ? "-" : host, took,
                                  s.value("start", 0.0), s.value("name", ""), s.value("outcome", "")));
    }
  }
  if (!waits.empty()) {
    std::printf("\nWAITS\n");
    for (const auto& w : waits) std::printf("%s\n", w.c_str());
  }
  if (!execs.empty()) {
    std::printf("\nCOMMANDS\n");
    for (const auto& [host, e] : execs) std::printf("  %-20s %5d commands %8.1fs\n", host.c_str(), e.first, e.second);
  }
  if (rep.contains("spans_dropped")) std::printf("  (%s more not recorded)\n", rep["spans_dropped"].dump().c_str());
}

// engine show RUN_ID: the recap of one run and where each of its steps stands.
}  // namespace

// engine report RUN_ID --html FILE --junit FILE: a finished run's report.json drawn again.
// A run's directory to read (k8s://: copied from the cluster first, unless it runs here now).
std::filesystem::path readable_run(Args& a) {
  auto root = local_state(a) / "runs";
  if (auto store = cluster_store(a))
    if (!engine::run::running_pid(root / a.run_id) && !materialize(*store, root, a.run_id))
      throw engine::ConfigError("no run '" + a.run_id + "' in the cluster's namespace " + store->ns());
  return root / a.run_id;
}

int do_report(Args& a) {
  auto dir = readable_run(a);
  auto rep = read_json(dir / "report.json");
  if (rep.is_null()) throw engine::ConfigError("run '" + a.run_id + "' has no report.json under " + dir.string());
  if (a.html.empty() && a.junit.empty()) throw engine::ConfigError("engine report: say what to write: --html FILE and/or --junit FILE");
  auto write = [](const std::string& path, const std::string& text) {
    std::ofstream f(path);
    f << text;
    f.flush();
    if (!f) throw engine::ConfigError("cannot write " + path);
    std::printf("wrote %s\n", path.c_str());
  };
  if (!a.html.empty()) write(a.html, engine::run::html_report(rep));
  if (!a.junit.empty()) write(a.junit, engine::run::junit_of(rep));
  return 0;
}

int do_show(Args& a) {
  auto dir = readable_run(a);
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
    if (rec.value("dry_run", false)) std::printf("dry run   nothing was changed; a resume is refused\n");
    if (rep.contains("left_out") && !rep["left_out"].empty()) {  // a resume's --limit: not done for these
      std::string names;
      for (const auto& h : rep["left_out"]) names += (names.empty() ? "" : ", ") + h.get<std::string>();
      std::printf("left out  %s (by a resume's --limit: engine resume %s finishes them)\n", names.c_str(), a.run_id.c_str());
    }
    if (!rep["hosts"].empty()) {
      std::printf("\nRECAP\n");
      for (auto it = rep["hosts"].begin(); it != rep["hosts"].end(); ++it)
        std::printf("  %-30s %-12s %7.1fs  %s\n", it.key().c_str(), it.value().value("status", "?").c_str(),
                    it.value().value("seconds", 0.0), it.value().value("error", "").c_str());
    }
    for (const auto& e : rep["errors"]) std::printf("error     %s %s\n", e.value("host", "").c_str(), e.value("msg", "").c_str());
    print_waits(rep);
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

}  // namespace engine::cli
