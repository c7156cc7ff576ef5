// YAML (and JSON) inventories, in the shape Ansible's yaml plugin reads:
// group: {hosts: {name: vars|null}, vars: {...}, children: {group: ...}}, `all` at the top.
#include <stdexcept>

#include "engine/core/errors.hpp"
#include "engine/core/text.hpp"
#include "engine/core/yaml_value.hpp"
#include "engine/inventory/inventory.hpp"

namespace engine::inventory {

namespace {

struct YamlLoader {
  Inventory& inv;
  const std::string& path;

  [[noreturn]] void fail(const YAML::Node& n, const std::string& msg) { throw ConfigError(yaml::where(path, n) + ": " + msg); }

  void group(const std::string& name, const YAML::Node& data) {
    inv.add_group(name);
    if (!data || data.IsNull()) return;
    if (!data.IsMap())
      fail(data, "group '" + name + "' must be a mapping with hosts, vars or children");
    for (const auto& kv : data) {
      const std::string key = kv.first.Scalar();
      const YAML::Node& section = kv.second;
      if (key != "hosts" && key != "vars" && key != "children")
        fail(kv.first, "unexpected key '" + key + "' in group '" + name + "'" +
                           text::did_you_mean(key, {"hosts", "vars", "children"}) +
                           "; a group holds only hosts, vars and children");
      if (section.IsNull()) continue;
      if (!section.IsMap())
        fail(section, "'" + key + "' of group '" + name + "' must be a mapping, found a " +
                          (section.IsSequence() ? "list" : "scalar"));
      if (key == "vars") {
        auto& g = *inv.mutable_group(name);
        for (const auto& v : section) g.vars[v.first.Scalar()] = yaml::to_json(v.second);
      } else if (key == "hosts") {
        for (const auto& h : section) host(name, h.first, h.second);
      } else {
        for (const auto& c : section) {
          const std::string child = c.first.Scalar();
          try {
            inv.add_child(name, child);
          } catch (const std::invalid_argument& e) {
            fail(c.first, e.what());
          }
          group(child, c.second);
        }
      }
    }
  }

  void host(const std::string& group_name, const YAML::Node& key, const YAML::Node& vars) {
    std::vector<std::string> names;
    std::optional<int> port;
    try {
      auto [pattern, p] = split_port(key.Scalar());
      port = p;
      names = expand_host_range(pattern);
    } catch (const std::invalid_argument& e) {
      fail(key, e.what());
    }
    if (!vars.IsNull() && !vars.IsMap())
      fail(vars, "variables of host '" + key.Scalar() + "' must be a mapping");
    for (const auto& n : names) {
      inv.add_host_to_group(group_name, n);
      auto& h = *inv.mutable_host(n);
      if (port) h.vars["ansible_port"] = *port;
      if (vars.IsMap())
        for (const auto& v : vars) h.vars[v.first.Scalar()] = yaml::to_json(v.second);
    }
  }
};

}  // namespace

void load_yaml(Inventory& inv, const std::string& path) {
  YAML::Node doc = yaml::load_file(path);
  if (!doc || doc.IsNull()) return;
  if (!doc.IsMap()) throw ConfigError(yaml::where(path, doc) + ": an inventory must be a mapping of groups (all: ...)");
  YamlLoader loader{inv, path};
  try {
    for (const auto& kv : doc) loader.group(kv.first.Scalar(), kv.second);
  } catch (const YAML::Exception& e) {
    throw ConfigError(at(path, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

}  // namespace engine::inventory
