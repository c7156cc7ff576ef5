// --state-dir k8s://NAMESPACE[?keep_days=N]: runs kept in the cluster's API (engine/run/cluster_store),
// so the pod that resumes a run need not be the one that started it. This machine keeps a working
// copy under the default state directory (cluster/NAMESPACE/runs/ID), made again from the cluster
// whenever a run is resumed, shown or listed: the cluster's records are the ones that count.
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "cli/commands.hpp"
#include "engine/core/errors.hpp"
#include "engine/k8s/kubeconfig.hpp"
#include "engine/run/cluster_store.hpp"
#include "engine/run/control.hpp"
#include "engine/run/run_dir.hpp"

namespace engine::cli {

namespace {

// The cluster the state lives in: --kubeconfig/--context, else $KUBECONFIG or ~/.kube/config,
// else the pod's service account (the order engine.k8s uses).
k8s::Cluster state_cluster(const Args& a) {
  if (!a.kubeconfig.empty()) return k8s::load_kubeconfig({a.kubeconfig}, a.context);
  bool any_file = false;
  for (const auto& p : k8s::default_kubeconfig_paths()) any_file = any_file || std::filesystem::exists(p);
  if (!any_file && a.context.empty())
    if (auto in = k8s::in_cluster()) return *in;
  return k8s::load_kubeconfig({}, a.context);
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.flush();
  if (!f) throw ConfigError("cannot write " + path.string());
}

}  // namespace

std::unique_ptr<run::ClusterStore> cluster_store(const Args& a) {
  auto spec = a.state_dir.substr(0, a.state_dir.find('?'));
  auto ns = run::cluster_namespace(spec);
  if (!ns) return nullptr;
  return std::make_unique<run::ClusterStore>(state_cluster(a), *ns);
}

double cluster_keep_days(const Args& a) {
  auto q = a.state_dir.find("?keep_days=");
  if (q == std::string::npos) return 30;
  char* end = nullptr;
  double d = std::strtod(a.state_dir.c_str() + q + 11, &end);
  if (end == a.state_dir.c_str() + q + 11 || *end || d <= 0)
    throw ConfigError("--state-dir " + a.state_dir + ": keep_days must be a positive number of days");
  return d;
}

std::filesystem::path local_state(const Args& a) {
  auto spec = a.state_dir.substr(0, a.state_dir.find('?'));
  if (auto ns = run::cluster_namespace(spec)) return run::state_dir("") / "cluster" / *ns;
  return run::state_dir(a.state_dir);
}

// engine ctl from any machine: every 2 s a thread of its own (its own connection, never the run's
// event loop) reads the run's ctl ConfigMap and appends what is new to the local control file,
// which the run reads as it reads a local `engine ctl`. Commands sent before this attempt began are
// not acted on again (as a resumed run ignores an old control file's lines).
ControlRelay::ControlRelay(const Args& a, const std::string& id, std::filesystem::path control_file) {
  auto spec = a.state_dir.substr(0, a.state_dir.find('?'));
  thread_ = std::jthread([cluster = state_cluster(a), ns = *run::cluster_namespace(spec), id,
                          file = std::move(control_file)](std::stop_token stop) {
    run::ClusterStore store(cluster, ns);
    std::optional<std::map<std::string, std::string>> seen;
    std::mutex m;
    std::condition_variable_any cv;
    for (;;) {
      if (auto now = store.controls(id)) {
        if (seen)
          for (const auto& [key, line] : *now)
            if (!seen->count(key))
              if (auto c = run::parse_control_line(line)) {
                try {
                  run::send_control(file, *c);
                } catch (const std::exception&) {  // the run directory went: the run is ending
                }
              }
        seen = std::move(now);
      }
      std::unique_lock lock(m);
      if (cv.wait_for(lock, stop, std::chrono::seconds(2), [] { return false; }) || stop.stop_requested()) return;
    }
  });
}

ControlRelay::~ControlRelay() = default;  // the jthread asks its loop to stop and joins it

bool materialize(run::ClusterStore& store, const std::filesystem::path& runs, const std::string& id) {
  auto saved = store.load(id);
  if (!saved) return false;
  auto dir = runs / id;
  std::filesystem::create_directories(dir);
  write_text(dir / "run.json", saved->run_json);
  write_text(dir / "journal", saved->journal);  // the cluster's records replace whatever was here
  if (saved->report) write_text(dir / "report.json", *saved->report);
  else std::filesystem::remove(dir / "report.json");
  return true;
}

}  // namespace engine::cli
