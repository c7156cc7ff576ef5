// `engine inventory`: the inventory as the engine reads it, in the shape `ansible-inventory --list`
// prints, so a user can compare the two and see which hosts a run would touch.
#include <cstdio>
#include <iostream>

#include "cli/commands.hpp"
#include "engine/core/errors.hpp"

namespace engine::cli {

namespace {

using nlohmann::json;

// Ansible's --list shows a host's merged variables without the magic ones it adds at run time.
json shown_vars(const inventory::Inventory& inv, const std::string& host) {
  json v = inv.vars_of(host);
  v.erase("inventory_hostname");
  v.erase("group_names");
  return v;
}

json as_list(const inventory::Inventory& inv) {
  json out = json::object();
  json hostvars = json::object();
  for (const auto& name : inv.group_names()) {
    const auto* g = inv.group(name);
    json entry = json::object();
    json hosts = json::array();
    for (const auto& h : g->hosts)
      if (inv.visible(h) && name != "all") hosts.push_back(h);  // Ansible lists no hosts under all
    if (!hosts.empty()) entry["hosts"] = hosts;
    if (!g->children.empty()) entry["children"] = g->children;
    if (!entry.empty() || name == "all") out[name] = entry;
  }
  for (const auto& h : inv.host_names())
    if (inv.visible(h))
      if (json v = shown_vars(inv, h); !v.empty()) hostvars[h] = v;  // Ansible lists only hosts with vars
  out["_meta"] = {{"hostvars", hostvars}};
  return out;
}

}  // namespace

int print_hosts(const inventory::Inventory& inv) {
  for (const auto& h : inv.host_names())
    if (inv.visible(h)) std::printf("%s\n", h.c_str());
  return 0;
}

int do_inventory(Args& a) {
  if (a.inventories.empty()) throw ConfigError("inventory: give the inventory with -i (file, directory, script or host list)");
  auto inv = load_inventory(a);
  for (const auto& s : inv.skipped) std::fprintf(stderr, "skipped (as Ansible skips it): %s\n", s.c_str());
  if (a.list_hosts) return print_hosts(inv);
  if (!a.inventory_host.empty()) {
    if (!inv.host(a.inventory_host)) throw ConfigError("--host " + a.inventory_host + ": no such host in the inventory");
    std::cout << shown_vars(inv, a.inventory_host).dump(4) << "\n";
    return 0;
  }
  std::cout << as_list(inv).dump(4) << "\n";
  return 0;
}

}  // namespace engine::cli
