// Reading inventory sources: files, directories, host lists, and the group_vars/ and host_vars/
// directories beside them.
#include <algorithm>
#include <filesystem>
#include <fstream>

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

void load_file(Inventory& inv, const fs::path& p) {
  if (looks_like_yaml(p)) load_yaml(inv, p.string());
  else load_ini(inv, p.string());
}

}  // namespace

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
      std::vector<fs::path> files;
      for (auto& e : fs::directory_iterator(p)) {
        auto name = e.path().filename().string();
        if (e.is_regular_file() && !ignored(e.path()) && name != "group_vars" && name != "host_vars")
          files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      for (auto& f : files) load_file(inv, f);
      dirs.push_back(p.string());
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
