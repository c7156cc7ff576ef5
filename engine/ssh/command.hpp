// The line a remote shell runs for host:exec, and what goes on its stdin: the caller's command
// wrapped in its cwd, its environment (delivered on stdin, never in an argv that every user's `ps`
// shows), the node's own deadline (`timeout -k`) and sudo (a marker line proves the command started;
// a password travels on stdin). Built here, once, so that each wrapping is unit-tested on its own.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/ssh/error.hpp"
#include "engine/ssh/exec.hpp"

namespace engine::ssh {

struct CommandSpec {
  std::string command;                                     // as the runbook wrote it
  std::vector<std::pair<std::string, std::string>> env;   // NAME = value, names checked by valid_env_name
  std::string cwd;
  std::string input;        // the command's own stdin
  double timeout = 0;       // seconds; the node kills the command a second after we give up on it
  bool sudo = false;
  std::string sudo_user;    // "" is root
  std::string sudo_password;  // "": sudo -n (passwordless, or fail at once)
};

struct RemoteCommand {
  std::string line;    // what the remote shell runs
  std::string input;   // stdin: the sudo password, the env block, then the command's own stdin
  std::string marker;  // the first stdout line under sudo ("" without sudo): not the command's
};

// A shell variable name: letters, digits and '_', not starting with a digit.
bool valid_env_name(std::string_view name);

// nonce makes the sudo marker unguessable to the command (it must not be able to fake "sudo let me
// start"); tests pass a fixed one. Throws std::invalid_argument for an env name valid_env_name refuses.
RemoteCommand build_command(const CommandSpec& spec, const std::string& nonce);

// Wraps a command in sudo: `marker` and `input` are set as build_command sets them.
std::string with_sudo(const std::string& inner, const std::string& user, const std::string& password,
                      const std::string& nonce, std::string& marker, std::string& input);

// Removes the marker from stdout, or says sudo refused ("sudo failed", with sudo's own words).
std::optional<Failure> strip_sudo_marker(ExecResult& res, const std::string& marker);

// 16 random hex digits.
std::string nonce();

}  // namespace engine::ssh
