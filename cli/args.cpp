#include <fstream>

#include <yaml-cpp/yaml.h>

#include "bindings/runtime.hpp"
#include "cli/commands.hpp"
#include "engine/core/errors.hpp"
#include "engine/core/yaml_value.hpp"
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

namespace {

// A typed value from a vars file or a JSON -e, as the text `-e name=value` would give: the param's
// declared type then reads it (a list as a JSON array, so items may hold commas).
std::string as_param_text(const std::string& where, const std::string& name, const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number() || v.is_array()) return v.dump();
  throw ConfigError(where + ": '" + name + "' is " + (v.is_null() ? "null" : "a mapping") +
                    "; a runbook param is a string, number, boolean or list");
}

void add_mapping(const std::string& where, const nlohmann::json& doc, std::vector<std::string>& out) {
  if (!doc.is_object()) throw ConfigError(where + ": expected a mapping of param names to values");
  for (auto it = doc.begin(); it != doc.end(); ++it) out.push_back(it.key() + "=" + as_param_text(where, it.key(), it.value()));
}

}  // namespace

std::vector<std::string> expand_extra(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const auto& e : items) {
    if (!e.empty() && e[0] == '@') {
      std::string path = e.substr(1);
      if (!std::filesystem::is_regular_file(path)) throw ConfigError("-e @" + path + ": no such file");
      YAML::Node doc = yaml::load_file(path);
      if (!doc || doc.IsNull()) continue;
      add_mapping("-e @" + path, yaml::to_json(doc), out);
    } else if (!e.empty() && e[0] == '{') {
      nlohmann::json doc = nlohmann::json::parse(e, nullptr, false);
      if (doc.is_discarded()) {
        try {  // Ansible reads this form as YAML, of which JSON is a part: {a: 1} works too
          doc = yaml::to_json(YAML::Load(e));
        } catch (const YAML::Exception& ex) {
          throw ConfigError("-e '" + e + "': not JSON or YAML: " + ex.msg);
        }
      }
      add_mapping("-e '" + e + "'", doc, out);
    } else {
      out.push_back(e);
    }
  }
  return out;
}

std::string resolve_runbook(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(path, ec) || path.find('/') != std::string::npos) return path;
  // A bare name that is not here: a shipped runbook ("engine run doctor.lua", or "doctor").
  fs::path shipped = fs::path(engine::lua::shipped_runbooks_dir()) / path;
  if (fs::is_regular_file(shipped, ec)) return shipped.string();
  shipped += ".lua";
  if (fs::is_regular_file(shipped, ec)) return shipped.string();
  return path;
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

void check_connections(const Args& a, const inventory::Inventory& inv) {
  std::string files;
  for (const auto& f : a.inventories) files += (files.empty() ? "" : ", ") + f;
  for (const auto& h : inv.host_names()) {
    try {
      inv.connection_of(h);
    } catch (const std::invalid_argument& e) {
      throw ConfigError("inventory " + files + ": " + e.what());
    }
  }
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
