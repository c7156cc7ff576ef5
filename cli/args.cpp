#include <fstream>

#include "cli/commands.hpp"
#include "engine/core/errors.hpp"
#include "engine/k8s/kubeconfig.hpp"

namespace engine::cli {

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
nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream f(path);
  if (!f) return nullptr;
  nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  return j.is_discarded() ? nullptr : j;
}

void check_cluster_flags(const Args& a, const inventory::Inventory& inv) {
  if (a.kubeconfig.empty() && a.context.empty()) return;
  std::vector<std::string> paths;
  if (const auto* all = inv.group("all")) {
    nlohmann::json vars = all->vars;
    for (auto it = all->file_vars.begin(); it != all->file_vars.end(); ++it) vars[it.key()] = it.value();
    if (vars.contains("k8s_kubeconfig") && vars["k8s_kubeconfig"].is_string()) paths.push_back(vars["k8s_kubeconfig"]);
  }
  if (!a.kubeconfig.empty()) {
    if (!std::filesystem::exists(a.kubeconfig)) throw ConfigError("--kubeconfig " + a.kubeconfig + ": no such file");
    paths = {a.kubeconfig};
  }
  try {
    k8s::load_kubeconfig(paths, a.context);
  } catch (const ConfigError& e) {
    throw ConfigError(std::string(a.context.empty() ? "--kubeconfig: " : "--context: ") + e.what());
  }
}

}  // namespace engine::cli
