// Inventories that are programs or program output, as Ansible reads them: an executable script
// (run with --list, and --host NAME when its output has no _meta), the JSON `ansible-inventory
// --list` prints, and inventory plugin files (plugin: aws_ec2, constructed, ...) that only Ansible
// itself can evaluate, read through `ansible-inventory -i FILE --list`.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "engine/core/errors.hpp"
#include "engine/core/subprocess.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"

namespace engine::inventory {

namespace {

// Ansible runs scripts without a deadline; a cloud API that hangs would hang the run before it
// starts, so the engine gives up and says so.
double script_timeout() {
  if (const char* t = std::getenv("ENGINE_INVENTORY_TIMEOUT")) {
    try {
      return std::stod(t);
    } catch (...) {
      throw ConfigError(std::string("ENGINE_INVENTORY_TIMEOUT '") + t + "' is not a number of seconds");
    }
  }
  return 60;
}

std::string tail(const std::string& s) {
  auto t = text::trim(s);
  return t.size() > 600 ? "..." + t.substr(t.size() - 600) : t;
}

json run_for_json(const std::vector<std::string>& argv, const std::string& source, const std::string& what) {
  double timeout = script_timeout();
  auto r = run_process(argv, timeout);
  if (!r.started) throw ConfigError(source + ": cannot run " + what + ": " + r.error);
  if (r.timed_out)
    throw ConfigError(source + ": " + what + " did not finish within " + text::trim(std::to_string(static_cast<int>(timeout))) +
                      " s (ENGINE_INVENTORY_TIMEOUT sets the limit)");
  if (r.code != 0)
    throw ConfigError(source + ": " + what + " exited " + std::to_string(r.code) + (r.err.empty() ? "" : ": " + tail(r.err)));
  json doc = json::parse(r.out, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    throw ConfigError(source + ": " + what + " printed no JSON object" +
                      (r.out.empty() ? "" : " (it printed: " + tail(r.out.substr(0, 300)) + ")"));
  return doc;
}

void set_vars(json& into, const json& vars, const std::string& source, const std::string& what) {
  if (vars.is_null()) return;
  if (!vars.is_object()) throw ConfigError(source + ": the vars of " + what + " must be an object");
  for (auto it = vars.begin(); it != vars.end(); ++it) into[it.key()] = it.value();
}

}  // namespace

bool is_inventory_script(const std::string& path) {
  if (::access(path.c_str(), X_OK) == 0) return true;
  std::ifstream in(path, std::ios::binary);
  char head[2] = {0, 0};
  in.read(head, 2);
  return head[0] == '#' && head[1] == '!';
}

bool looks_like_list_json(const json& doc) {
  if (!doc.is_object()) return false;
  if (doc.contains("_meta")) return true;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it->is_array()) return true;
    if (it->is_object() && ((it->contains("hosts") && (*it)["hosts"].is_array()) ||
                            (it->contains("children") && (*it)["children"].is_array())))
      return true;
  }
  return false;
}

// group: [hosts] | {hosts: [..], vars: {..}, children: [..]} | {var: value} (a host of that name);
// _meta.hostvars: {host: {var: value}}.
void load_list_json(Inventory& inv, const std::string& source, const json& doc, const std::string& script) {
  json hostvars;
  bool has_meta = false;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& name = it.key();
    if (name == "_meta") {
      if (it->is_object() && it->contains("hostvars")) {
        has_meta = true;
        hostvars = (*it)["hostvars"];
        if (!hostvars.is_object()) throw ConfigError(source + ": _meta.hostvars must be an object");
      }
      continue;
    }
    json data = *it;
    if (!data.is_object()) data = json{{"hosts", data}};
    else if (!data.contains("hosts") && !data.contains("vars") && !data.contains("children"))
      data = json{{"hosts", json::array({name})}, {"vars", data}};
    inv.add_group(name);
    if (data.contains("hosts")) {
      if (!data["hosts"].is_array()) throw ConfigError(source + ": group '" + name + "': hosts must be a list of names");
      for (const auto& h : data["hosts"]) {
        if (!h.is_string()) throw ConfigError(source + ": group '" + name + "': a host name must be a string, got " + h.dump());
        inv.add_host_to_group(name, h.get<std::string>());
      }
    }
    if (data.contains("vars")) set_vars(inv.mutable_group(name)->vars, data["vars"], source, "group '" + name + "'");
    if (data.contains("children")) {
      if (!data["children"].is_array()) throw ConfigError(source + ": group '" + name + "': children must be a list of group names");
      for (const auto& c : data["children"]) {
        if (!c.is_string()) throw ConfigError(source + ": group '" + name + "': a child must be a group name, got " + c.dump());
        try {
          inv.add_child(name, c.get<std::string>());
        } catch (const std::invalid_argument& e) {
          throw ConfigError(source + ": " + e.what());
        }
      }
    }
  }
  for (const auto& name : inv.host_names()) {
    json vars;
    if (has_meta) {
      if (!hostvars.contains(name)) continue;
      vars = hostvars[name];
    } else if (!script.empty()) {
      // No _meta: ask the script for each host, as Ansible does.
      vars = run_for_json({script, "--host", name}, source, "inventory script (--host " + name + ")");
    } else {
      continue;
    }
    set_vars(inv.mutable_host(name)->vars, vars, source, "host '" + name + "'");
  }
  if (!has_meta) return;
  for (auto it = hostvars.begin(); it != hostvars.end(); ++it) {
    if (inv.host(it.key())) continue;  // a host only in hostvars is still a host, as Ansible has it
    inv.add_host_to_group("ungrouped", it.key());
    set_vars(inv.mutable_host(it.key())->vars, it.value(), source, "host '" + it.key() + "'");
  }
}

void load_script(Inventory& inv, const std::string& path) {
  std::string exe = path.find('/') == std::string::npos ? "./" + path : path;
  if (::access(path.c_str(), X_OK) != 0)
    throw ConfigError(path + ": starts with #! but is not executable; an inventory script needs chmod +x (as Ansible's script plugin runs it)");
  json doc = run_for_json({exe, "--list"}, path, "inventory script");
  load_list_json(inv, path, doc, exe);
}

void load_with_ansible(Inventory& inv, const std::string& path, const std::string& why) {
  std::string tool = find_program("ansible-inventory");
  if (tool.empty())
    throw ConfigError(path + ": " + why + "; only Ansible can evaluate it, and ansible-inventory is not installed "
                      "(apt-get install ansible-core), or give the engine the output of `ansible-inventory -i " + path +
                      " --list` saved as a .json file");
  json doc = run_for_json({tool, "-i", path, "--list"}, path, "ansible-inventory");
  load_list_json(inv, path, doc, "");
}

}  // namespace engine::inventory
