#include "engine/ssh/target.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "engine/core/errors.hpp"
#include "engine/core/text.hpp"

namespace engine::ssh {

namespace {

using text::lower;

std::string expand_home(const std::string& p, const std::string& home) {
  if (p == "~") return home;
  if (text::starts_with(p, "~/")) return home + p.substr(1);
  return p;
}

// %h %p %r %u %% in HostName and IdentityFile, as ssh_config(5) defines them.
std::string expand_tokens(const std::string& s, const std::string& host, int port, const std::string& user,
                          const std::string& local_user) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%' || i + 1 >= s.size()) {
      out += s[i];
      continue;
    }
    char c = s[++i];
    if (c == 'h') out += host;
    else if (c == 'p') out += std::to_string(port);
    else if (c == 'r') out += user;
    else if (c == 'u') out += local_user;
    else if (c == '%') out += '%';
    else out += std::string("%") + c;
  }
  return out;
}

// The options of `-o K=V`, `-J`, `-p`, `-l`, `-i` in ansible_ssh_common_args, as an entry whose

// values override ssh_config's.
ConfigEntry parse_common_args(const std::string& args) {
  ConfigEntry e;
  std::vector<text::Word> words;
  try {
    words = text::shell_words(args, false);
  } catch (const text::BadQuote& q) {
    throw std::invalid_argument("ansible_ssh_common_args: unterminated quote at column " + std::to_string(q.column));
  }
  auto set = [&](std::string key, const std::string& value) {
    key = lower(key);
    if (key == "proxyjump") e.proxy_jump = value;
    else if (key == "proxycommand") e.proxy_command = value;
    else if (key == "userknownhostsfile") e.known_hosts_files = text::split(value, ' ');
    else if (key == "globalknownhostsfile") e.global_known_hosts_files = text::split(value, ' ');
    else if (key == "hostkeyalias") e.host_key_alias = value;
    else if (key == "identitiesonly") e.identities_only = lower(value) == "yes";
    else if (key == "identityagent") e.identity_agent = value;
    else if (key == "certificatefile" || key == "remotecommand" || key == "pkcs11provider")
      throw std::invalid_argument("ansible_ssh_common_args: -o " + key + " is not something the engine can honour");
    else if (key == "stricthostkeychecking") e.strict = value;
    else if (key == "port") e.port = parse_port(value, "ansible_ssh_common_args Port");
    else if (key == "user") e.user = value;
    else if (key == "identityfile") e.identity_files.push_back(value);
    else if (key == "connecttimeout") e.connect_timeout = std::stod(value);
    else if (key == "hostname") e.hostname = value;
    else if (key == "serveraliveinterval") e.alive_interval = parse_alive(value, "ansible_ssh_common_args ServerAliveInterval");
    else if (key == "serveralivecountmax") e.alive_count = static_cast<int>(parse_alive(value, "ansible_ssh_common_args ServerAliveCountMax"));
    // Other -o options (ControlMaster, ControlPersist...) concern OpenSSH's client only.
  };
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i].text;
    auto next = [&]() -> std::string {
      if (i + 1 >= words.size()) throw std::invalid_argument("ansible_ssh_common_args: " + w + " needs a value");
      return words[++i].text;
    };
    std::string opt;
    if (w == "-o") opt = next();
    else if (text::starts_with(w, "-o")) opt = w.substr(2);
    else if (w == "-J") set("proxyjump", next());
    else if (w == "-p") set("port", next());
    else if (w == "-l") set("user", next());
    else if (w == "-i") set("identityfile", next());
    if (opt.empty()) continue;
    auto eq = opt.find('=');
    if (eq != std::string::npos) set(opt.substr(0, eq), opt.substr(eq + 1));
    else set(opt, next());
  }
  return e;
}

// `ssh [-p port] [-l user] [-o ...] -W %h:%p [user@]bastion` → the bastion as a jump host.
Endpoint parse_proxy_command(const std::string& cmd) {
  auto words = text::shell_words(cmd, false);
  if (words.empty() || (words[0].text != "ssh" && !text::starts_with(words[0].text, "/") ) ||
      std::none_of(words.begin(), words.end(), [](auto& w) { return w.text == "-W"; }))
    throw std::invalid_argument("ProxyCommand '" + cmd + "': only `ssh ... -W %h:%p bastion` is supported (or use ProxyJump)");
  Endpoint ep;
  static const std::string with_value = "bcDEeFIiJLlmOoPpQRSWw";
  for (size_t i = 1; i < words.size(); ++i) {
    const std::string& w = words[i].text;
    if (w.size() == 2 && w[0] == '-' && with_value.find(w[1]) != std::string::npos) {
      if (i + 1 >= words.size()) break;
      const std::string& v = words[++i].text;
      if (w == "-p") ep.port = parse_port(v, "ProxyCommand -p");
      else if (w == "-l") ep.user = v;
      else if (w == "-i") ep.identity_files.push_back(v);
      continue;
    }
    if (w[0] == '-') continue;
    auto at = w.find('@');
    ep.host = at == std::string::npos ? w : w.substr(at + 1);
    if (at != std::string::npos) ep.user = w.substr(0, at);
  }
  if (ep.host.empty()) throw std::invalid_argument("ProxyCommand '" + cmd + "' names no bastion host");
  return ep;
}

}  // namespace

std::string Target::key() const {
  std::string k;
  for (const auto& j : jumps) k += j.user + "@" + j.host + ":" + std::to_string(j.port) + ">";
  // The inventory name is part of the key: 200 aliases of one address are 200 hosts, 200 sessions.
  return k + name + "=" + at.user + "@" + at.host + ":" + std::to_string(at.port);
}

Defaults default_settings() {
  Defaults d;
  const char* home = std::getenv("HOME");
  passwd* pw = getpwuid(getuid());
  d.home = home && *home ? home : (pw ? pw->pw_dir : "/");
  d.user = pw ? pw->pw_name : "root";
  if (const char* u = std::getenv("USER"); u && *u) d.user = u;
  d.config_file = d.home + "/.ssh/config";
  d.known_hosts_file = d.home + "/.ssh/known_hosts";
  for (const char* f : {"id_ed25519", "id_ecdsa", "id_rsa"}) d.identity_files.push_back(d.home + "/.ssh/" + f);
  return d;
}

std::optional<HostKeyPolicy> parse_policy(const std::string& s) {
  auto l = lower(s);
  if (l == "yes" || l == "strict") return HostKeyPolicy::strict;
  if (l == "accept-new") return HostKeyPolicy::accept_new;
  if (l == "no" || l == "off") return HostKeyPolicy::off;
  return std::nullopt;
}

std::vector<Endpoint> parse_jumps(const std::string& spec) {
  std::vector<Endpoint> out;
  if (lower(spec) == "none") return out;
  for (auto& hop : text::split(spec, ',')) {
    std::string h = text::trim(hop);
    if (text::starts_with(h, "ssh://")) h = h.substr(6);
    Endpoint e;
    auto at = h.rfind('@');
    if (at != std::string::npos) e.user = h.substr(0, at), h = h.substr(at + 1);
    if (!h.empty() && h[0] == '[') {
      auto close = h.find(']');
      if (close == std::string::npos) throw std::invalid_argument("ProxyJump hop '" + hop + "': missing ']'");
      e.host = h.substr(1, close - 1);
      if (close + 1 < h.size() && h[close + 1] == ':') e.port = parse_port(h.substr(close + 2), "ProxyJump");
    } else {
      auto colon = h.find(':');
      e.host = h.substr(0, colon);
      if (colon != std::string::npos) e.port = parse_port(h.substr(colon + 1), "ProxyJump");
    }
    if (e.host.empty()) throw std::invalid_argument("ProxyJump hop '" + hop + "' names no host");
    out.push_back(e);
  }
  return out;
}

Target resolve(const std::string& name, const inventory::Connection& conn, const nlohmann::json& vars,
               const Defaults& d, const SshConfig& config) {
  auto str = [&](std::initializer_list<const char*> keys) -> std::string {
    for (auto k : keys)
      if (auto it = vars.find(k); it != vars.end() && it->is_string()) return it->get<std::string>();
    return {};
  };
  ConfigEntry cli = parse_common_args(conn.ssh_common_args);
  // ssh is invoked with the address as its host argument, so Host blocks match the address; the
  // inventory's user and port are its command line, which Match user sees.
  std::string cli_user = !conn.user.empty() ? conn.user : cli.user ? *cli.user : "";
  int cli_port = conn.port ? conn.port : cli.port ? *cli.port : 0;
  ConfigEntry cfg = config.lookup(conn.address, cli_user, cli_port);
  if (!cfg.unsupported.empty())
    throw std::invalid_argument("host '" + name + "': the ssh config sets " + cfg.unsupported.front() +
                                " for it, which the engine cannot honour (remove it for this host, or use a Host block the engine does not match)");

  Target t;
  t.name = name;
  std::string user = !conn.user.empty() ? conn.user : cli.user ? *cli.user : cfg.user ? *cfg.user : d.user;
  int port = conn.port ? conn.port : cli.port ? *cli.port : cfg.port ? *cfg.port : 22;
  std::string host = cli.hostname ? *cli.hostname : cfg.hostname ? *cfg.hostname : conn.address;
  host = expand_tokens(host, conn.address, port, user, d.user);
  t.at = {host, port, user, {}};

  std::vector<std::string> ids;
  if (!conn.private_key_file.empty()) ids.push_back(conn.private_key_file);
  for (auto& f : cli.identity_files) ids.push_back(f);
  for (auto& f : cfg.identity_files) ids.push_back(f);
  bool named = !ids.empty();
  if (!named) ids = d.identity_files;
  for (auto& f : ids) t.at.identity_files.push_back(expand_home(expand_tokens(f, host, port, user, d.user), d.home));
  (void)named;

  t.become = conn.become;
  t.become_user = conn.become_user;
  t.become_password = conn.become_password;
  t.password = str({"ansible_password", "ansible_ssh_pass", "ansible_ssh_password"});
  t.passphrase = str({"ansible_ssh_private_key_passphrase"});
  if (t.passphrase.empty()) t.passphrase = d.passphrase;
  // UserKnownHostsFile: the first is checked and written, the others read; GlobalKnownHostsFile
  // (default /etc/ssh/ssh_known_hosts and ..2) read too, as OpenSSH does.
  std::vector<std::string> user_files = cli.known_hosts_files ? *cli.known_hosts_files
                                        : cfg.known_hosts_files ? *cfg.known_hosts_files
                                                                : std::vector<std::string>{d.known_hosts_file};
  if (user_files.empty()) user_files.push_back(d.known_hosts_file);
  t.known_hosts_file = expand_home(expand_tokens(user_files[0], host, port, user, d.user), d.home);
  for (size_t i = 1; i < user_files.size(); ++i)
    t.more_known_hosts.push_back(expand_home(expand_tokens(user_files[i], host, port, user, d.user), d.home));
  auto global = cli.global_known_hosts_files ? *cli.global_known_hosts_files
                : cfg.global_known_hosts_files ? *cfg.global_known_hosts_files
                                               : std::vector<std::string>{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"};
  for (auto& f : global)
    if (lower(f) != "none") t.more_known_hosts.push_back(expand_home(f, d.home));
  t.host_key_alias = cli.host_key_alias ? *cli.host_key_alias : cfg.host_key_alias ? *cfg.host_key_alias : "";
  t.identities_only = cli.identities_only ? *cli.identities_only : cfg.identities_only.value_or(false);
  if (auto a = cli.identity_agent ? cli.identity_agent : cfg.identity_agent) {
    // IdentityAgent: none, SSH_AUTH_SOCK (the environment's, the default), $VAR, or a socket path.
    std::string v = *a;
    if (v == "SSH_AUTH_SOCK") v = "";
    else if (!v.empty() && v[0] == '$') {
      const char* e = std::getenv(v.substr(1).c_str());
      v = e && *e ? e : "none";
    } else if (lower(v) != "none") {
      v = expand_home(expand_tokens(v, host, port, user, d.user), d.home);
    } else {
      v = "none";
    }
    t.agent_socket = v;
  }
  t.policy = d.policy;
  if (auto s = cli.strict ? cli.strict : cfg.strict) {
    auto p = parse_policy(*s);
    if (!p) throw std::invalid_argument("host '" + name + "': StrictHostKeyChecking '" + *s + "' is not yes, accept-new or no");
    t.policy = *p;
  }
  t.connect_timeout = cli.connect_timeout ? *cli.connect_timeout : cfg.connect_timeout ? *cfg.connect_timeout : d.connect_timeout;
  t.alive_interval = cli.alive_interval ? cli.alive_interval : cfg.alive_interval;
  t.alive_count = cli.alive_count ? cli.alive_count : cfg.alive_count;
  if (auto it = vars.find("engine_ssh_legacy_crypto"); it != vars.end()) {
    if (it->is_boolean()) t.legacy_crypto = it->get<bool>();
    else if (it->is_string() && (*it == "true" || *it == "yes" || *it == "True")) t.legacy_crypto = true;
    else if (!(it->is_string() && (*it == "false" || *it == "no" || *it == "False")))
      throw std::invalid_argument("host '" + name + "': engine_ssh_legacy_crypto must be true or false");
  }

  std::optional<std::string> jump = cli.proxy_jump ? cli.proxy_jump : cli.proxy_command ? std::nullopt : cfg.proxy_jump;
  std::optional<std::string> command = cli.proxy_command ? cli.proxy_command : cli.proxy_jump ? std::nullopt : cfg.proxy_command;
  if (jump) t.jumps = parse_jumps(*jump);
  else if (command && lower(*command) != "none") t.jumps.push_back(parse_proxy_command(*command));
  // Each hop is itself resolved through ssh_config (its HostName, User, Port, IdentityFile).
  for (auto& j : t.jumps) {
    ConfigEntry jc = config.lookup(j.host, j.user, j.port == 22 ? 0 : j.port);
    if (j.user.empty()) j.user = jc.user ? *jc.user : d.user;
    if (j.port == 22 && jc.port) j.port = *jc.port;
    if (jc.hostname) j.host = expand_tokens(*jc.hostname, j.host, j.port, j.user, d.user);
    for (auto& f : jc.identity_files) j.identity_files.push_back(expand_home(f, d.home));
    if (j.identity_files.empty()) j.identity_files = t.at.identity_files;
  }
  return t;
}

}  // namespace engine::ssh
