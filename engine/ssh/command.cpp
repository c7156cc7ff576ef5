#include "engine/ssh/command.hpp"

#include <algorithm>
#include <cstdio>
#include <random>
#include <stdexcept>

#include "engine/core/text.hpp"

namespace engine::ssh {

namespace {

// Reads the env block put before the command's stdin (a count, then that many lines) with the
// shell's `read` builtin (byte by byte, so the command's own stdin after it is untouched) and evals
// it in the command's own shell.
constexpr const char* kEnvReader =
    "IFS= read -r __engine_n || exit 111; __engine_e=; "
    "while [ \"$__engine_n\" -gt 0 ]; do IFS= read -r __engine_l; __engine_e=\"$__engine_e$__engine_l\n\"; "
    "__engine_n=$((__engine_n - 1)); done; eval \"$__engine_e\"; unset __engine_n __engine_e __engine_l; ";

}  // namespace

bool valid_env_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string with_sudo(const std::string& inner, const std::string& user, const std::string& password,
                      const std::string& nonce, std::string& marker, std::string& input) {
  marker = "ENGINE-SUDO-OK-" + nonce;
  std::string script = "echo " + marker + "; " + inner;
  std::string who = " -u " + shell_quote(user.empty() ? "root" : user);
  if (password.empty()) return "sudo -n" + who + " -- sh -c " + shell_quote(script);
  input = password + "\n" + input;
  return "sudo -k -S -p ''" + who + " -- sh -c " + shell_quote(script);
}

RemoteCommand build_command(const CommandSpec& spec, const std::string& nonce) {
  RemoteCommand rc;
  std::string env_script;  // "export K='v'\n..."
  for (const auto& [k, v] : spec.env) {
    if (!valid_env_name(k)) throw std::invalid_argument("env name '" + k + "' is not a valid variable name");
    env_script += "export " + k + "=" + shell_quote(v) + "\n";
  }
  std::string prefix = env_script.empty() ? "" : kEnvReader;
  if (!spec.cwd.empty()) prefix += "cd " + shell_quote(spec.cwd) + " || exit 1; ";
  std::string line = prefix + spec.command;
  rc.input = spec.input;
  if (!env_script.empty()) {
    auto lines = static_cast<size_t>(std::count(env_script.begin(), env_script.end(), '\n'));
    rc.input = std::to_string(lines) + "\n" + env_script + rc.input;
  }
  if (spec.timeout > 0) {
    // Closing the channel does not stop a command (sshd signals nothing without a pty), so the
    // node enforces the deadline too, a second after we report it.
    char t[32];
    std::snprintf(t, sizeof t, "%g", spec.timeout + 1);
    line = std::string("timeout -k 5 ") + t + " sh -c " + shell_quote(line);
  }
  bool sudo = spec.sudo || !spec.sudo_user.empty() || !spec.sudo_password.empty();
  if (sudo) line = with_sudo(line, spec.sudo_user, spec.sudo_password, nonce, rc.marker, rc.input);
  rc.line = line;
  return rc;
}

std::optional<Failure> strip_sudo_marker(ExecResult& res, const std::string& marker) {
  if (marker.empty()) return std::nullopt;
  std::string first = marker + "\n";
  if (res.out.compare(0, first.size(), first) != 0)
    return Failure{Error::sudo_failed, text::trim(res.err.empty() ? "sudo exited " + std::to_string(res.code) : res.err)};
  res.out.erase(0, first.size());
  return std::nullopt;
}

std::string nonce() {
  static std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace engine::ssh
