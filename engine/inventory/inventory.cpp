#include "engine/inventory/inventory.hpp"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <stdexcept>
#include <string_view>

#include "engine/core/text.hpp"

namespace engine::inventory {

Inventory::Inventory() {
  add_group("all");
  add_group("ungrouped");
  add_child("all", "ungrouped");  // first of all's children, as Ansible's InventoryData starts
}

Group& Inventory::add_group(const std::string& name) {
  auto [it, inserted] = groups_.try_emplace(name);
  if (inserted) {
    it->second.name = name;
    group_order_.push_back(name);
  }
  return it->second;
}

Host& Inventory::add_host(const std::string& name) {
  auto [it, inserted] = hosts_.try_emplace(name);
  if (inserted) {
    it->second.name = name;
    host_order_.push_back(name);
  }
  return it->second;
}

void Inventory::add_host_to_group(const std::string& group, const std::string& host) {
  auto& g = add_group(group);
  auto& h = add_host(host);
  if (g.host_set.insert(host).second) g.hosts.push_back(host);
  if (std::find(h.groups.begin(), h.groups.end(), group) == h.groups.end()) h.groups.push_back(group);
}

std::vector<std::string> Inventory::ancestors(const std::string& group) const {
  std::vector<std::string> out;
  std::deque<std::string> todo{group};
  while (!todo.empty()) {
    auto name = todo.front();
    todo.pop_front();
    auto it = groups_.find(name);
    if (it == groups_.end()) continue;
    for (const auto& p : it->second.parents) {
      if (std::find(out.begin(), out.end(), p) == out.end()) {
        out.push_back(p);
        todo.push_back(p);
      }
    }
  }
  return out;
}

void Inventory::add_child(const std::string& parent, const std::string& child) {
  if (parent == child) throw std::invalid_argument("group '" + parent + "' cannot be its own child");
  auto anc = ancestors(parent);
  if (std::find(anc.begin(), anc.end(), child) != anc.end())
    throw std::invalid_argument("adding group '" + child + "' as a child of '" + parent +
                                "' makes a loop: '" + child + "' is already above '" + parent + "'");
  auto& p = add_group(parent);
  auto& c = add_group(child);
  if (std::find(p.children.begin(), p.children.end(), child) == p.children.end()) p.children.push_back(child);
  if (std::find(c.parents.begin(), c.parents.end(), parent) == c.parents.end()) c.parents.push_back(parent);
}

void Inventory::reconcile() {
  for (const auto& name : group_order_) {
    if (name == "all") continue;
    if (groups_[name].parents.empty()) add_child("all", name);
  }
  for (const auto& h : host_order_) {
    auto& host = hosts_[h];
    bool only_all = std::all_of(host.groups.begin(), host.groups.end(), [](auto& g) { return g == "all"; });
    if (only_all) add_host_to_group("ungrouped", h);
  }
  // Depth is the longest path from `all`: a child group's vars override its parent's.
  for (auto& [_, g] : groups_) g.depth = 0;
  bool changed = true;
  for (size_t round = 0; changed && round <= groups_.size(); ++round) {
    changed = false;
    for (auto& [_, g] : groups_) {
      for (const auto& c : g.children) {
        auto& child = groups_[c];
        if (child.depth < g.depth + 1) child.depth = g.depth + 1, changed = true;
      }
    }
  }
}

const Group* Inventory::group(const std::string& name) const {
  auto it = groups_.find(name);
  return it == groups_.end() ? nullptr : &it->second;
}
const Host* Inventory::host(const std::string& name) const {
  auto it = hosts_.find(name);
  return it == hosts_.end() ? nullptr : &it->second;
}
Group* Inventory::mutable_group(const std::string& name) {
  auto it = groups_.find(name);
  return it == groups_.end() ? nullptr : &it->second;
}
Host* Inventory::mutable_host(const std::string& name) {
  auto it = hosts_.find(name);
  return it == hosts_.end() ? nullptr : &it->second;
}

std::vector<std::string> Inventory::hosts_of(const std::string& group) const {
  // The group itself first, then its descendants breadth-first, as Ansible orders them.
  std::vector<std::string> out;
  std::set<std::string> seen_hosts, seen_groups{group};
  std::deque<std::string> todo{group};
  while (!todo.empty()) {
    auto g = this->group(todo.front());
    todo.pop_front();
    if (!g) continue;
    for (const auto& h : g->hosts)
      if (visible(h) && seen_hosts.insert(h).second) out.push_back(h);
    for (const auto& c : g->children)
      if (seen_groups.insert(c).second) todo.push_back(c);
  }
  if (group == "all") {
    // Hosts keep inventory order under `all`, like `ansible all --list-hosts`.
    std::vector<std::string> ordered;
    for (const auto& h : host_order_)
      if (seen_hosts.count(h)) ordered.push_back(h);
    return ordered;
  }
  return out;
}

std::vector<std::string> Inventory::groups_of(const std::string& host) const {
  std::vector<std::string> out;
  auto h = this->host(host);
  if (!h) return out;
  for (const auto& g : h->groups) {
    if (std::find(out.begin(), out.end(), g) == out.end()) out.push_back(g);
    for (const auto& a : ancestors(g))
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  if (std::find(out.begin(), out.end(), "all") == out.end()) out.push_back("all");
  return out;
}

namespace {
// Which variables a merge keeps: all of them, or only those a connection reads.
using Keep = bool (*)(std::string_view key);
bool connection_var(std::string_view k) { return k.starts_with("ansible_") || k.starts_with("engine_"); }
// Ansible's default hash_behaviour=replace: a later source replaces a whole top-level key.
void combine(json& into, const json& from, Keep keep) {
  for (auto it = from.begin(); it != from.end(); ++it)
    if (!keep || keep(it.key())) into[it.key()] = it.value();
}
// ansible_group_priority is a setting of the group, not a variable, and only from the inventory
// source: in group_vars/ it is an ordinary variable (Ansible documents it so).
int priority_of(const Group& g) {
  auto it = g.vars.find("ansible_group_priority");
  if (it == g.vars.end()) return 1;
  if (it->is_number_integer()) return it->get<int>();
  if (it->is_string()) {
    try {
      return std::stoi(it->get<std::string>());
    } catch (...) {
    }
  }
  throw std::invalid_argument("group '" + g.name + "': ansible_group_priority must be an integer, got " + it->dump());
}
void combine_group_vars(json& into, const json& from, Keep keep) {
  for (auto it = from.begin(); it != from.end(); ++it)
    if (it.key() != "ansible_group_priority" && (!keep || keep(it.key()))) into[it.key()] = it.value();
}
}  // namespace

json Inventory::merged_vars(const std::string& name, bool all_vars) const {
  json out = json::object();
  auto h = host(name);
  if (!h) return out;
  Keep keep = all_vars ? nullptr : connection_var;
  const Group& all = groups_.at("all");
  // Ansible's order, lowest first: all's inventory vars, group_vars/all, other groups' inventory vars,
  // their group_vars/ files, the host's inventory vars, host_vars/. Groups sort by (depth, priority, name).
  // Every group the host is in, with its ancestors, but `all` (as groups_of, without copying
  // each name: this runs for every host a run connects to).
  std::vector<const Group*> gs;
  auto add = [&](const std::string& g) {
    auto it = groups_.find(g);
    if (it == groups_.end() || &it->second == &all || std::find(gs.begin(), gs.end(), &it->second) != gs.end()) return false;
    gs.push_back(&it->second);
    return true;
  };
  for (const auto& g : h->groups) {
    size_t from = gs.size();
    add(g);
    for (size_t i = from; i < gs.size(); ++i)  // breadth first up through the parents
      for (const auto& p : gs[i]->parents) add(p);
  }
  std::sort(gs.begin(), gs.end(), [](const Group* a, const Group* b) {
    return std::tuple(a->depth, priority_of(*a), a->name) < std::tuple(b->depth, priority_of(*b), b->name);
  });
  combine_group_vars(out, all.vars, keep);
  combine(out, all.file_vars, keep);
  for (auto g : gs) combine_group_vars(out, g->vars, keep);
  for (auto g : gs) combine(out, g->file_vars, keep);
  combine(out, h->vars, keep);
  combine(out, h->file_vars, keep);
  if (!all_vars) return out;
  out["inventory_hostname"] = name;
  json names = json::array();
  std::vector<std::string> sorted;
  for (auto g : gs) sorted.push_back(g->name);
  std::sort(sorted.begin(), sorted.end());
  for (auto& g : sorted) names.push_back(g);
  out["group_names"] = names;
  return out;
}

json Inventory::vars_of(const std::string& name) const { return merged_vars(name, true); }

json Inventory::connection_vars_of(const std::string& name) const { return merged_vars(name, false); }

Connection Inventory::connection_of(const std::string& name) const { return connection_from_vars(name, connection_vars_of(name)); }

// Ansible's boolean filter: yes/no, true/false, on/off, 1/0, y/n, t/f in any case, or a YAML bool.
bool ansible_bool(const std::string& host, const std::string& key, const json& v, bool dflt) {
  auto it = v.find(key);
  if (it == v.end() || it->is_null()) return dflt;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_number_integer()) return it->get<long long>() != 0;
  std::string s = it->is_string() ? text::lower(it->get<std::string>()) : it->dump();
  if (s == "yes" || s == "true" || s == "on" || s == "1" || s == "y" || s == "t") return true;
  if (s == "no" || s == "false" || s == "off" || s == "0" || s == "n" || s == "f" || s.empty()) return false;
  throw std::invalid_argument("host '" + host + "': " + key + " '" + s + "' is not a boolean (true or false)");
}

Connection connection_from_vars(const std::string& name, const json& v) {
  auto str = [&](std::initializer_list<const char*> keys) -> std::string {
    for (auto k : keys) {
      auto it = v.find(k);
      if (it == v.end() || it->is_null()) continue;
      if (it->is_structured())  // a list or a map where SSH needs one value: never its JSON text
        throw std::invalid_argument("host '" + name + "': " + k + " must be one value, not " + it->dump());
      return it->is_string() ? it->get<std::string>() : it->dump();
    }
    return {};
  };
  Connection c;
  c.address = str({"ansible_host", "ansible_ssh_host"});
  if (c.address.empty()) c.address = name;
  auto port = str({"ansible_port", "ansible_ssh_port"});
  if (!port.empty()) {
    char* end = nullptr;
    long n = std::strtol(port.c_str(), &end, 10);
    if (*end != '\0' || n < 1 || n > 65535)
      throw std::invalid_argument("host '" + name + "': ansible_port '" + port + "' is not a port number (1-65535)");
    c.port = static_cast<int>(n);
  }
  c.user = str({"ansible_user", "ansible_ssh_user"});
  c.private_key_file = str({"ansible_ssh_private_key_file", "ansible_private_key_file"});
  c.become = ansible_bool(name, "ansible_become", v, false);
  c.become_user = str({"ansible_become_user", "ansible_sudo_user"});
  c.become_password = str({"ansible_become_password", "ansible_become_pass", "ansible_sudo_pass", "ansible_sudo_password"});
  // Only sudo: a host that says su, doas or pbrun would otherwise run its commands some other way.
  auto method = str({"ansible_become_method"});
  if (!method.empty() && method != "sudo")
    throw std::invalid_argument("host '" + name + "': ansible_become_method '" + method +
                                "' is not supported (the engine becomes root with sudo only)");
  auto exe = str({"ansible_become_exe"});
  if (!exe.empty() && exe != "sudo")
    throw std::invalid_argument("host '" + name + "': ansible_become_exe '" + exe + "' is not supported (sudo only)");
  if (!str({"ansible_become_flags"}).empty())
    throw std::invalid_argument("host '" + name + "': ansible_become_flags is not supported (the engine runs sudo -n, or -S with ansible_become_password)");
  c.ssh_common_args = str({"ansible_ssh_common_args"});
  return c;
}

}  // namespace engine::inventory
