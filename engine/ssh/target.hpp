// Where and how to connect to a host, resolved the way OpenSSH resolves it: the inventory's
// connection variables act as command-line options (they win), then ~/.ssh/config for that host
// (first value wins), then defaults. Jump hosts come from ProxyJump, `-J`, or the
// `ssh -W %h:%p bastion` ProxyCommand kubespray writes into ansible_ssh_common_args.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/inventory/inventory.hpp"
#include "engine/ssh/known_hosts.hpp"
#include "engine/ssh/ssh_config.hpp"

namespace engine::ssh {

struct Endpoint {
  std::string host;
  int port = 22;
  std::string user;
  std::vector<std::string> identity_files;
};

struct Target {
  std::string name;  // the inventory name, for logs
  Endpoint at;
  std::vector<Endpoint> jumps;  // connected in order: jumps[0] first
  std::string password;         // secret
  std::string passphrase;       // secret, for encrypted keys
  std::string known_hosts_file;                 // checked, and where accept-new records
  std::vector<std::string> more_known_hosts;    // further UserKnownHostsFile and GlobalKnownHostsFile: read only
  std::string host_key_alias;                   // HostKeyAlias: the name looked up instead of host:port
  bool identities_only = false;                 // IdentitiesOnly: no agent keys
  std::string agent_socket;                     // IdentityAgent: "" $SSH_AUTH_SOCK, "none" no agent, or a path
  HostKeyPolicy policy = HostKeyPolicy::strict;
  double connect_timeout = 10;
  bool legacy_crypto = false;  // engine_ssh_legacy_crypto: libssh2's whole list, warned on every connection
  // ServerAliveInterval / ServerAliveCountMax from ansible_ssh_common_args or ssh_config; unset:
  // ssh.configure's keepalive and keepalive_count.
  std::optional<double> alive_interval;
  std::optional<int> alive_count;
  // ansible_become and friends: how commands without their own sudo option run (bindings/ssh.cpp).
  bool become = false;
  std::string become_user;
  std::string become_password;  // secret; also the password of an explicit sudo

  // One session per key: the same inventory host, user, address, port and path.
  std::string key() const;
};

struct Defaults {
  std::string user;  // the local user
  std::string home;
  std::string config_file;       // ~/.ssh/config
  std::string system_config_file = "/etc/ssh/ssh_config";  // "" once ssh.configure{config} names a file (ssh -F)
  std::string known_hosts_file;  // ~/.ssh/known_hosts
  HostKeyPolicy policy = HostKeyPolicy::strict;
  double connect_timeout = 10;
  std::vector<std::string> identity_files;  // tried when nothing names one
  std::string passphrase;                   // secret: for encrypted key files
};

Defaults default_settings();

// "yes"/"strict", "accept-new", "no"/"off"; nullopt for anything else.
std::optional<HostKeyPolicy> parse_policy(const std::string& s);

// "user@host:port,host2" (ProxyJump). Throws std::invalid_argument on a malformed hop.
std::vector<Endpoint> parse_jumps(const std::string& spec);

// Resolves a host. `vars` are the host's inventory variables (ansible_password and the like).
// Throws std::invalid_argument naming the option it cannot use.
Target resolve(const std::string& name, const inventory::Connection& conn, const nlohmann::json& vars,
               const Defaults& defaults, const SshConfig& config);

}  // namespace engine::ssh
