// ssh_config(5) as OpenSSH applies it: the user's file then /etc/ssh/ssh_config (or only the file
// `-F` / ssh.configure{config} names), Include (globs, nested, conditional inside a block), Host
// and Match blocks (host, originalhost, user, localuser, all; negations), first value wins.
// Match criteria that need OpenSSH itself (exec, canonical, final, localnetwork, tagged) make the
// lookup ask `ssh -G`, once per distinct host, user and port. An option that would change where or
// how the engine connects and that it cannot do (CertificateFile, RemoteCommand, ...) is an error
// naming it, never dropped.
#pragma once
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace engine::ssh {

// What the config says for one host (unset: the config did not say).
struct ConfigEntry {
  std::optional<std::string> hostname, user, proxy_jump, proxy_command, strict, host_key_alias, identity_agent;
  std::optional<int> port;
  std::optional<double> connect_timeout;
  std::optional<double> alive_interval;  // ServerAliveInterval
  std::optional<int> alive_count;        // ServerAliveCountMax
  std::optional<bool> identities_only;
  std::optional<std::vector<std::string>> known_hosts_files;         // UserKnownHostsFile
  std::optional<std::vector<std::string>> global_known_hosts_files;  // GlobalKnownHostsFile
  std::vector<std::string> identity_files;
  // Set options the engine cannot honour, by their ssh_config name: the caller refuses the host.
  std::vector<std::string> unsupported;
  // Back-compat with the single-file callers: the first UserKnownHostsFile.
  std::optional<std::string> known_hosts_file() const {
    if (!known_hosts_files || known_hosts_files->empty()) return std::nullopt;
    return known_hosts_files->front();
  }
};

class SshConfig {
 public:
  struct Context {
    std::string home;        // ~ in paths, and where a relative Include of the user's file looks (~/.ssh)
    std::string local_user;  // Match localuser, and Match user when nothing set a user
  };
  // user_file: ~/.ssh/config or the file ssh.configure{config} names; system_file: "" when -F
  // semantics apply (only the named file). Missing files are empty. Throws ConfigError (file:line).
  static SshConfig load(const std::string& user_file, const std::string& system_file, const Context& ctx);
  static SshConfig parse(const std::string& text, const std::string& path, const Context& ctx = {});

  // host as given (the inventory's address); user and port as the command line (the inventory)
  // gives them, which Match user sees. Throws ConfigError when `ssh -G` is needed and fails.
  ConfigEntry lookup(const std::string& host, const std::string& user = "", int port = 0) const;
  bool needs_openssh() const { return needs_openssh_; }

 private:
  struct Cond {
    bool is_match = false;
    std::vector<std::string> host_patterns;                 // Host: whitespace-separated, !negated
    std::vector<std::pair<std::string, std::string>> match;  // Match: (criterion with its !, argument)
    bool never = false;                                      // Include under an inactive block
  };
  struct Block {
    std::vector<Cond> conds;  // all must hold (an Include's enclosing block, then its own)
    std::vector<std::tuple<std::string, std::string, std::string>> options;  // keyword, value, file:line
  };
  void read_file(const std::string& path, std::vector<Cond> outer, bool system, int depth);
  void read_stream(std::istream& in, const std::string& path, std::vector<Cond> outer, bool system, int depth);
  bool holds(const Cond& c, const std::string& original, const ConfigEntry& so_far, const std::string& user) const;
  ConfigEntry ask_openssh(const std::string& host, const std::string& user, int port) const;

  std::vector<Block> blocks_;
  std::vector<std::string> files_;  // what was read, for ssh -G (user then system)
  Context ctx_;
  bool needs_openssh_ = false;
  mutable std::map<std::string, ConfigEntry> cache_;  // ssh -G results
};

int parse_port(const std::string& s, const std::string& what);
// A ServerAlive* value: a non-negative number (0 turns keepalives off, as in OpenSSH).
double parse_alive(const std::string& v, const char* what);

}  // namespace engine::ssh
