// Reading inventory sources: files, directories, host lists, and the group_vars/ and host_vars/
// directories beside them.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include "engine/core/errors.hpp"
#include "engine/core/text.hpp"
#include "engine/core/yaml_value.hpp"
#include "engine/inventory/inventory.hpp"

namespace fs = std::filesystem;

namespace engine::inventory {

namespace {

bool has_ext(const fs::path& p, std::initializer_list<const char*> exts) {
  auto e = p.extension().string();
  for (auto x : exts)
    if (e == x) return true;
  return false;
}

// Ansible skips these in inventory directories (INVENTORY_IGNORE_EXTS) and vars directories.
bool ignored(const fs::path& p) {
  auto name = p.filename().string();
  if (name.empty() || name[0] == '.' || name.back() == '~') return true;
  return has_ext(p, {".pyc", ".pyo", ".swp", ".bak", ".rpm", ".md", ".txt", ".rst", ".orig", ".ini~", ".cfg", ".retry"});
}

// One vars file: a YAML (or JSON) mapping. Returns its variables, which later files override.
json read_vars_file(const fs::path& file) {
  YAML::Node doc = yaml::load_file(file.string());
  if (!doc || doc.IsNull()) return json::object();
  if (!doc.IsMap()) throw ConfigError(yaml::where(file.string(), doc) + ": a vars file must be a mapping of names to values");
  return yaml::to_json(doc);
}

// group_vars/NAME, NAME.yml, NAME.yaml, NAME.json, or a directory NAME/ of such files (read in
// lexical order, recursively), as Ansible's host_group_vars plugin finds them.
json read_vars_for(const fs::path& dir, const std::string& name) {
  json out = json::object();
  auto merge = [&](const fs::path& f) {
    json v = read_vars_file(f);
    for (auto it = v.begin(); it != v.end(); ++it) out[it.key()] = it.value();
  };
  for (const char* ext : {"", ".yml", ".yaml", ".json"}) {
    fs::path f = dir / (name + ext);
    if (fs::is_regular_file(f)) merge(f);
  }
  fs::path sub = dir / name;
  if (fs::is_directory(sub)) {
    std::vector<fs::path> files;
    for (auto& e : fs::recursive_directory_iterator(sub))
      if (e.is_regular_file() && !ignored(e.path()) && (has_ext(e.path(), {".yml", ".yaml", ".json"}) || !e.path().has_extension()))
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (auto& f : files) merge(f);
  }
  return out;
}

bool looks_like_yaml(const fs::path& p) { return has_ext(p, {".yml", ".yaml", ".json"}); }

// Which reader a file needs, in the order of Ansible's default enabled plugins (script, auto,
// yaml, ini, toml).
void load_file(Inventory& inv, const fs::path& p) {
  std::string path = p.string();
  if (has_ext(p, {".toml"})) {
    load_with_ansible(inv, path, "is a TOML inventory");
  } else if (looks_like_yaml(p)) {
    YAML::Node doc = yaml::load_file(path);
    if (doc && doc.IsMap() && doc["plugin"] && doc["plugin"].IsScalar()) {
      load_with_ansible(inv, path, "is the configuration of Ansible's inventory plugin '" + doc["plugin"].Scalar() + "'");
      return;
    }
    if (doc && doc.IsMap()) {
      json data = yaml::to_json(doc);
      if (looks_like_list_json(data)) {
        load_list_json(inv, path, data, "");
        return;
      }
    }
    load_yaml(inv, path);
  } else if (is_inventory_script(path)) {
    load_script(inv, path);
  } else {
    load_ini(inv, path);
  }
}

std::vector<std::string> env_list(const char* name, std::vector<std::string> dflt) {
  const char* v = std::getenv(name);
  if (!v) return dflt;
  std::vector<std::string> out;
  for (auto& s : text::split(v, ','))
    if (auto t = text::trim(s); !t.empty()) out.push_back(t);
  return out;
}

// A directory: every entry Ansible does not ignore, in sorted order, subdirectories recursively.
void load_dir(Inventory& inv, const fs::path& dir, std::vector<std::string>& dirs) {
  std::vector<fs::path> entries;
  for (auto& e : fs::directory_iterator(dir)) entries.push_back(e.path());
  std::sort(entries.begin(), entries.end());
  for (auto& e : entries) {
    if (ignored_in_inventory_dir(e.filename().string())) {
      inv.skipped.push_back(e.string());
      continue;
    }
    std::error_code ec;
    if (fs::is_directory(e, ec)) load_dir(inv, e, dirs);
    else if (fs::is_regular_file(e, ec)) load_file(inv, e);
  }
  dirs.push_back(dir.string());
}

}  // namespace

bool ignored_in_inventory_dir(const std::string& name) {
  static const std::vector<std::string> exts = env_list(
      "ANSIBLE_INVENTORY_IGNORE",
      {".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".ini", ".cfg", ".retry"});
  static const std::vector<std::string> patterns = env_list("ANSIBLE_INVENTORY_IGNORE_REGEX", {});
  if (name.empty() || name[0] == '.' || name == "host_vars" || name == "group_vars" || name == "vars_plugins") return true;
  for (const auto& e : exts)
    if (name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) return true;
  for (const auto& p : patterns) {
    try {
      if (std::regex_search(name, std::regex(p))) return true;
    } catch (const std::regex_error&) {
      throw ConfigError("ANSIBLE_INVENTORY_IGNORE_REGEX: '" + p + "' is not a regular expression");
    }
  }
  return false;
}

void load_vars_dirs(Inventory& inv, const std::string& dir) {
  fs::path gv = fs::path(dir) / "group_vars", hv = fs::path(dir) / "host_vars";
  if (fs::is_directory(gv)) {
    for (const auto& name : inv.group_names()) {
      json v = read_vars_for(gv, name);
      auto& g = *inv.mutable_group(name);
      for (auto it = v.begin(); it != v.end(); ++it) g.file_vars[it.key()] = it.value();
    }
  }
  if (fs::is_directory(hv)) {
    for (const auto& name : inv.host_names()) {
      json v = read_vars_for(hv, name);
      auto& h = *inv.mutable_host(name);
      for (auto it = v.begin(); it != v.end(); ++it) h.file_vars[it.key()] = it.value();
    }
  }
}

Inventory load(const std::vector<std::string>& sources) {
  Inventory inv;
  std::vector<std::string> dirs;
  for (const auto& src : sources) {
    fs::path p(src);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      load_dir(inv, p, dirs);
    } else if (fs::exists(p, ec)) {
      load_file(inv, p);
      dirs.push_back(p.has_parent_path() ? p.parent_path().string() : ".");
    } else if (src.find(',') != std::string::npos) {
      // "node1,node2," — a host list, as `ansible -i` takes it.
      for (auto& h : text::split(src, ',')) {
        auto name = text::trim(h);
        if (name.empty()) continue;
        auto [host, port] = split_port(name);
        inv.add_host_to_group("ungrouped", host);
        if (port) inv.mutable_host(host)->vars["ansible_port"] = *port;
      }
    } else {
      throw ConfigError(src + ": no such inventory file or directory (a host list needs a comma: '" + src + ",')");
    }
  }
  inv.reconcile();
  for (const auto& d : dirs) load_vars_dirs(inv, d);
  inv.source_dirs = dirs;
  return inv;
}

}  // namespace engine::inventory
