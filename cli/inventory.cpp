// `engine inventory`: the inventory as the engine reads it, in the shape `ansible-inventory --list`
// prints, so a user can compare the two and see which hosts a run would touch.
#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/commands.hpp"
#include "engine/core/errors.hpp"
#include "engine/ssh/target.hpp"

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

// How the engine would reach each host: the inventory's connection variables, then the ssh config,
// then defaults (what `ssh -G` shows for OpenSSH).
json as_ssh(const inventory::Inventory& inv, const std::string& config_file) {
  auto d = ssh::default_settings();
  passwd* pw = getpwuid(getuid());
  ssh::SshConfig::Context ctx{d.home, pw ? pw->pw_name : d.user};
  ssh::SshConfig cfg = config_file.empty() ? ssh::SshConfig::load(d.config_file, d.system_config_file, ctx)
                                           : ssh::SshConfig::load(config_file, "", ctx);
  json out = json::object();
  for (const auto& h : inv.host_names()) {
    if (!inv.visible(h)) continue;
    json vars = inv.vars_of(h);
    ssh::Target t;
    try {
      t = ssh::resolve(h, inventory::connection_from_vars(h, vars), vars, d, cfg);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(e.what());
    }
    json jumps = json::array();
    for (const auto& j : t.jumps) jumps.push_back(j.user + "@" + j.host + ":" + std::to_string(j.port));
    json known = json::array({t.known_hosts_file});
    for (const auto& f : t.more_known_hosts) known.push_back(f);
    const char* policy = t.policy == ssh::HostKeyPolicy::strict ? "strict" : t.policy == ssh::HostKeyPolicy::accept_new ? "accept-new" : "off";
    out[h] = {{"hostname", t.at.host}, {"port", t.at.port}, {"user", t.at.user}, {"identityfile", t.at.identity_files},
              {"proxyjump", jumps}, {"knownhostsfiles", known}, {"stricthostkeychecking", policy},
              {"hostkeyalias", t.host_key_alias}, {"identitiesonly", t.identities_only}, {"identityagent", t.agent_socket},
              {"connecttimeout", t.connect_timeout}};
    if (t.alive_interval) out[h]["serveraliveinterval"] = *t.alive_interval;
    if (t.alive_count) out[h]["serveralivecountmax"] = *t.alive_count;
  }
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
  if (a.inventory_ssh) {
    std::cout << as_ssh(inv, a.ssh_config).dump(4) << "\n";
    return 0;
  }
  std::cout << as_list(inv).dump(4) << "\n";
  return 0;
}

}  // namespace engine::cli
