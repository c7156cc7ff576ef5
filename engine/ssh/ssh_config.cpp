#include "engine/ssh/ssh_config.hpp"

#include <glob.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/core/errors.hpp"
#include "engine/core/subprocess.hpp"
#include "engine/core/text.hpp"

namespace engine::ssh {

using text::lower;

int parse_port(const std::string& s, const std::string& what) {
  try {
    size_t used = 0;
    int p = std::stoi(s, &used);
    if (used == s.size() && p > 0 && p < 65536) return p;
  } catch (...) {
  }
  throw std::invalid_argument(what + ": '" + s + "' is not a port");
}

double parse_alive(const std::string& v, const char* what) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || d < 0) throw std::invalid_argument(std::string(what) + " '" + v + "' is not a number of seconds");
  return d;
}

namespace {

constexpr int kMaxIncludeDepth = 16;  // OpenSSH's READCONF_MAX_DEPTH

std::string expand_home(const std::string& p, const std::string& home) {
  if (p == "~") return home;
  if (text::starts_with(p, "~/")) return home + p.substr(1);
  return p;
}

std::vector<std::string> words_of(const std::string& value, const std::string& where) {
  std::vector<std::string> out;
  try {
    for (auto& w : text::shell_words(value, false)) out.push_back(w.text);
  } catch (const text::BadQuote&) {
    throw ConfigError(where + ": unterminated quote");
  }
  return out;
}

// OpenSSH's match_pattern_list: comma-separated globs, any negated one that matches vetoes.
bool pattern_list_matches(const std::string& s, const std::string& list) {
  bool positive = false;
  for (auto& raw : text::split(list, ',')) {
    std::string p = text::trim(raw);
    bool neg = !p.empty() && p[0] == '!';
    if (neg) p = p.substr(1);
    if (text::glob_match(p, s, false)) {
      if (neg) return false;
      positive = true;
    }
  }
  return positive;
}

bool yes(const std::string& v) {
  auto l = lower(v);
  return l == "yes" || l == "true" || l == "always";
}

// Options that change where or how the connection is made and that the engine cannot do.
bool unsupported(const std::string& key, const std::string& value) {
  if (key == "certificatefile" || key == "pkcs11provider" || key == "remotecommand" || key == "bindaddress" ||
      key == "bindinterface")
    return lower(value) != "none";
  if (key == "proxyusefdpass" || key == "canonicalizehostname") return yes(value);
  return false;
}

const char* canonical_name(const std::string& key) {
  static const std::map<std::string, const char*> names = {
      {"certificatefile", "CertificateFile"}, {"pkcs11provider", "PKCS11Provider"}, {"remotecommand", "RemoteCommand"},
      {"bindaddress", "BindAddress"},         {"bindinterface", "BindInterface"},   {"proxyusefdpass", "ProxyUseFdpass"},
      {"canonicalizehostname", "CanonicalizeHostname"}};
  auto it = names.find(key);
  return it == names.end() ? "?" : it->second;
}

// First value wins; IdentityFile accumulates.
void apply(ConfigEntry& e, const std::string& k, const std::string& v, const std::string& where) {
  try {
    if (k == "hostname" && !e.hostname) e.hostname = v;
    else if (k == "user" && !e.user) e.user = v;
    else if (k == "port" && !e.port) e.port = parse_port(v, where + ": Port");
    else if (k == "identityfile") e.identity_files.push_back(v);
    else if (k == "proxyjump" && !e.proxy_jump) e.proxy_jump = v;
    else if (k == "proxycommand" && !e.proxy_command) e.proxy_command = v;
    else if (k == "userknownhostsfile" && !e.known_hosts_files) e.known_hosts_files = words_of(v, where);
    else if (k == "globalknownhostsfile" && !e.global_known_hosts_files) e.global_known_hosts_files = words_of(v, where);
    else if (k == "stricthostkeychecking" && !e.strict) e.strict = v;
    else if (k == "connecttimeout" && !e.connect_timeout) e.connect_timeout = lower(v) == "none" ? 0 : std::stod(v);
    else if (k == "serveraliveinterval" && !e.alive_interval) e.alive_interval = parse_alive(v, (where + ": ServerAliveInterval").c_str());
    else if (k == "serveralivecountmax" && !e.alive_count) e.alive_count = static_cast<int>(parse_alive(v, (where + ": ServerAliveCountMax").c_str()));
    else if (k == "hostkeyalias" && !e.host_key_alias) e.host_key_alias = v;
    else if (k == "identitiesonly" && !e.identities_only) e.identities_only = yes(v);
    else if (k == "identityagent" && !e.identity_agent) e.identity_agent = v;
    else if (unsupported(k, v) && std::find(e.unsupported.begin(), e.unsupported.end(), canonical_name(k)) == e.unsupported.end())
      e.unsupported.push_back(canonical_name(k));
    // Everything else (SendEnv, HashKnownHosts, Ciphers, ControlMaster, ...) concerns OpenSSH's
    // own client or is decided by the engine's crypto policy: documented in docs/api.md.
  } catch (const std::invalid_argument& ex) {
    throw ConfigError(ex.what());
  }
}

}  // namespace

SshConfig SshConfig::parse(const std::string& text, const std::string& path, const Context& ctx) {
  SshConfig cfg;
  cfg.ctx_ = ctx;
  std::istringstream in(text);
  cfg.read_stream(in, path, {}, false, 0);
  return cfg;
}

SshConfig SshConfig::load(const std::string& user_file, const std::string& system_file, const Context& ctx) {
  SshConfig cfg;
  cfg.ctx_ = ctx;
  if (!user_file.empty()) cfg.read_file(user_file, {}, false, 0);
  if (!system_file.empty()) cfg.read_file(system_file, {}, true, 0);
  return cfg;
}

void SshConfig::read_file(const std::string& path, std::vector<Cond> outer, bool system, int depth) {
  if (depth > kMaxIncludeDepth) throw ConfigError(path + ": Include nested deeper than " + std::to_string(kMaxIncludeDepth));
  std::ifstream in(path);
  if (!in) return;  // a missing file is an empty one, as for OpenSSH
  if (depth == 0) files_.push_back(path);
  read_stream(in, path, std::move(outer), system, depth);
}

void SshConfig::read_stream(std::istream& in, const std::string& path, std::vector<Cond> outer, bool system, int depth) {
  blocks_.push_back({outer, {}});
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::string where = path + ":" + std::to_string(lineno);
    std::string t = text::trim(line);
    if (t.empty() || t[0] == '#') continue;
    auto sep = t.find_first_of(" \t=");
    if (sep == std::string::npos) throw ConfigError(at(path, lineno, 1, "'" + t + "' has no value"));
    std::string key = lower(t.substr(0, sep));
    std::string value = text::trim(t.substr(sep));
    if (!value.empty() && value[0] == '=') value = text::trim(value.substr(1));
    if (key == "host") {
      Cond c;
      c.host_patterns = words_of(value, where);
      auto conds = outer;
      conds.push_back(c);
      blocks_.push_back({conds, {}});
    } else if (key == "match") {
      Cond c;
      c.is_match = true;
      auto args = words_of(value, where);
      for (size_t i = 0; i < args.size(); ++i) {
        std::string crit = lower(args[i]);
        std::string bare = crit[0] == '!' ? crit.substr(1) : crit;
        if (bare == "all" || bare == "canonical" || bare == "final") {
          if (bare != "all") needs_openssh_ = true;
          c.match.emplace_back(crit, "");
        } else if (bare == "host" || bare == "originalhost" || bare == "user" || bare == "localuser" || bare == "exec" ||
                   bare == "localnetwork" || bare == "tagged") {
          if (i + 1 >= args.size()) throw ConfigError(at(path, lineno, 1, "Match " + bare + " needs an argument"));
          if (bare == "exec" || bare == "localnetwork" || bare == "tagged") needs_openssh_ = true;
          c.match.emplace_back(crit, args[++i]);
        } else {
          throw ConfigError(at(path, lineno, 1, "Match criterion '" + args[i] + "' is not one OpenSSH knows"));
        }
      }
      auto conds = outer;
      conds.push_back(c);
      blocks_.push_back({conds, {}});
    } else if (key == "include") {
      auto here = blocks_.back().conds;  // the block the Include sits in
      for (auto& arg : words_of(value, where)) {
        std::string p = expand_home(arg, ctx_.home);
        if (p.empty() || p[0] != '/') p = (system ? std::string("/etc/ssh/") : ctx_.home + "/.ssh/") + p;
        glob_t g{};
        if (::glob(p.c_str(), 0, nullptr, &g) == 0) {
          std::vector<std::string> files(g.gl_pathv, g.gl_pathv + g.gl_pathc);
          ::globfree(&g);
          for (const auto& f : files) read_file(f, here, system, depth + 1);
        } else {
          ::globfree(&g);
        }
      }
      blocks_.push_back({here, {}});  // back in the enclosing block
    } else {
      blocks_.back().options.emplace_back(key, value, where);
    }
  }
}

bool SshConfig::holds(const Cond& c, const std::string& original, const ConfigEntry& so_far, const std::string& user) const {
  if (c.never) return false;
  if (!c.is_match) {
    bool hit = false;
    for (const auto& p : c.host_patterns) {
      if (p[0] == '!') {
        if (text::glob_match(p.substr(1), original, false)) return false;
      } else {
        hit |= text::glob_match(p, original, false);
      }
    }
    return hit;
  }
  // Match host sees HostName as set so far (%h expanded); user: the command line's, the config's
  // so far, or the local user.
  std::string host = original;
  if (so_far.hostname) {
    host.clear();
    const std::string& h = *so_far.hostname;
    for (size_t i = 0; i < h.size(); ++i) {
      if (h[i] == '%' && i + 1 < h.size() && h[i + 1] == 'h') host += original, ++i;
      else if (h[i] == '%' && i + 1 < h.size() && h[i + 1] == '%') host += '%', ++i;
      else host += h[i];
    }
  }
  std::string ruser = !user.empty() ? user : so_far.user ? *so_far.user : ctx_.local_user;
  for (const auto& [crit, arg] : c.match) {
    bool neg = crit[0] == '!';
    std::string bare = neg ? crit.substr(1) : crit;
    bool r = true;
    if (bare == "all") r = true;
    else if (bare == "host") r = pattern_list_matches(lower(host), arg);
    else if (bare == "originalhost") r = pattern_list_matches(original, arg);
    else if (bare == "user") r = pattern_list_matches(ruser, arg);
    else if (bare == "localuser") r = pattern_list_matches(ctx_.local_user, arg);
    if (r == neg) return false;
  }
  return true;
}

ConfigEntry SshConfig::lookup(const std::string& host_arg, const std::string& user, int port) const {
  if (needs_openssh_) return ask_openssh(host_arg, user, port);
  std::string original = lower(host_arg);
  ConfigEntry e;
  for (const auto& b : blocks_) {
    bool all = true;
    for (const auto& c : b.conds)
      if (!holds(c, original, e, user)) {
        all = false;
        break;
      }
    if (!all) continue;
    for (const auto& [k, v, where] : b.options) apply(e, k, v, where);
  }
  return e;
}

// `ssh -G` over the same files (an Include of each, in order) against `ssh -G -F /dev/null` for
// the same host: what differs is what the config said.
ConfigEntry SshConfig::ask_openssh(const std::string& host, const std::string& user, int port) const {
  std::string key = host + "\n" + user + "\n" + std::to_string(port);
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  std::string ssh = find_program("ssh");
  if (ssh.empty())
    throw ConfigError("the ssh config uses Match exec, canonical, final, localnetwork or tagged, which only OpenSSH can "
                      "evaluate, and the ssh command is not installed (apt-get install openssh-client)");
  std::string name = "/tmp/.engine-ssh-G-" + std::string(6, 'X');  // mkstemp's pattern
  std::vector<char> tmpl(name.begin(), name.end());
  tmpl.push_back('\0');
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) throw ConfigError("ssh -G: cannot make a temporary file");
  std::string body;
  for (const auto& f : files_) body += "Include \"" + f + "\"\n";
  [[maybe_unused]] auto n = ::write(fd, body.data(), body.size());
  ::close(fd);
  auto run = [&](const std::string& file) {
    std::vector<std::string> argv = {ssh, "-G", "-F", file};
    if (!user.empty()) argv.insert(argv.end(), {"-l", user});
    if (port) argv.insert(argv.end(), {"-p", std::to_string(port)});
    argv.push_back(host);
    auto r = run_process(argv, 30);
    if (!r.started || r.timed_out || r.code != 0)
      throw ConfigError("ssh -G " + host + " failed: " + text::trim(r.err.empty() ? r.error : r.err));
    std::map<std::string, std::vector<std::string>> out;
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
      auto sp = line.find(' ');
      if (sp == std::string::npos) continue;
      out[line.substr(0, sp)].push_back(line.substr(sp + 1));
    }
    return out;
  };
  std::map<std::string, std::vector<std::string>> got, base;
  try {
    got = run(tmpl.data());
    base = run("/dev/null");
  } catch (...) {
    std::remove(tmpl.data());
    throw;
  }
  std::remove(tmpl.data());
  ConfigEntry e;
  for (const auto& [k, values] : got) {
    if (base.count(k) && base[k] == values) continue;  // OpenSSH's default (or the command line's)
    if (k == "identityfile") {
      e.identity_files = values;
      continue;
    }
    for (const auto& v : values) apply(e, k, v, "ssh -G " + host);
  }
  if (got.count("hostname") && got["hostname"] != base["hostname"]) e.hostname = got["hostname"].front();
  cache_[key] = e;
  return e;
}

}  // namespace engine::ssh
