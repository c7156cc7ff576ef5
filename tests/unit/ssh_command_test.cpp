// The remote command line host:exec builds, run here by /bin/sh as sshd would run it: what a
// command sees (its env, its cwd, its own stdin) and what it cannot see (the env in an argv).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "engine/ssh/command.hpp"
#include "scratch.hpp"

using engine::ssh::build_command;
using engine::ssh::CommandSpec;

namespace {

// Runs the line with /bin/sh -c and the input on stdin; returns stdout.
std::string run_sh(const engine::ssh::RemoteCommand& rc, const Scratch& dir) {
  std::filesystem::create_directories(dir.path);
  auto script = dir.path / "line", in = dir.path / "in", out = dir.path / "out";
  std::ofstream(script) << rc.line;
  std::ofstream(in, std::ios::binary) << rc.input;
  std::string cmd = "/bin/sh -c \"$(cat '" + script.string() + "')\" < '" + in.string() + "' > '" + out.string() + "'";
  REQUIRE(std::system(cmd.c_str()) != -1);
  std::ifstream f(out);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("a plain command is sent as written, with its own stdin") {
  CommandSpec s;
  s.command = "cat";
  s.input = "hello\n";
  auto rc = build_command(s, "n");
  CHECK(rc.line == "cat");
  CHECK(rc.input == "hello\n");
  CHECK(rc.marker.empty());
}

TEST_CASE("env travels on stdin, reaches the command, and leaves its stdin untouched") {
  Scratch dir("engine-ssh-command-env");
  CommandSpec s;
  s.command = "printf '%s|%s|' \"$TOKEN\" \"$EMPTY\"; cat";
  s.env = {{"TOKEN", "a'b $(id) `x`\"c"}, {"EMPTY", ""}};
  s.input = "rest of stdin\n";
  auto rc = build_command(s, "n");
  CHECK(rc.line.find("a'b") == std::string::npos);  // never in the argv
  CHECK(rc.input.rfind("2\n", 0) == 0);
  CHECK(run_sh(rc, dir) == "a'b $(id) `x`\"c||rest of stdin\n");
}

TEST_CASE("cwd is quoted and a missing one stops the command") {
  Scratch dir("engine-ssh-command-cwd");
  std::filesystem::create_directories(dir.path / "a dir; rm -rf x");
  CommandSpec s;
  s.command = "pwd";
  s.cwd = (dir.path / "a dir; rm -rf x").string();
  CHECK(run_sh(build_command(s, "n"), dir) == s.cwd + "\n");
  s.cwd = (dir.path / "missing").string();
  s.command = "echo ran";
  CHECK(run_sh(build_command(s, "n"), dir).empty());
}

TEST_CASE("a timeout is enforced on the node too, a second after ours") {
  Scratch dir("engine-ssh-command-timeout");
  CommandSpec s;
  s.command = "echo start; sleep 30; echo never";
  s.timeout = 0.5;
  auto rc = build_command(s, "n");
  CHECK(rc.line.rfind("timeout -k 5 1.5 sh -c ", 0) == 0);
  CHECK(run_sh(rc, dir) == "start\n");
}

TEST_CASE("sudo: a marker proves the start, the password goes first on stdin") {
  CommandSpec s;
  s.command = "id -u";
  s.sudo = true;
  auto rc = build_command(s, "0123");
  CHECK(rc.marker == "ENGINE-SUDO-OK-0123");
  CHECK(rc.line == "sudo -n -u 'root' -- sh -c 'echo ENGINE-SUDO-OK-0123; id -u'");
  s.sudo = false;  // a user or a password implies sudo
  s.sudo_user = "postgres";
  s.sudo_password = "pw";
  s.input = "in";
  rc = build_command(s, "0123");
  CHECK(rc.line == "sudo -k -S -p '' -u 'postgres' -- sh -c 'echo ENGINE-SUDO-OK-0123; id -u'");
  CHECK(rc.input == "pw\nin");
}

TEST_CASE("sudo's marker is stripped, or its absence says sudo refused") {
  engine::ssh::ExecResult r;
  r.out = "ENGINE-SUDO-OK-1\n0\n";
  CHECK(!engine::ssh::strip_sudo_marker(r, "ENGINE-SUDO-OK-1"));
  CHECK(r.out == "0\n");
  r.out = "";
  r.err = "sudo: a password is required\n";
  r.code = 1;
  auto f = engine::ssh::strip_sudo_marker(r, "ENGINE-SUDO-OK-1");
  REQUIRE(f);
  CHECK(f->kind == engine::ssh::Error::sudo_failed);
  CHECK(f->detail == "sudo: a password is required");
}

TEST_CASE("an env name that is not a shell variable is refused") {
  CHECK(engine::ssh::valid_env_name("KUBECONFIG"));
  CHECK(engine::ssh::valid_env_name("_x1"));
  CHECK(!engine::ssh::valid_env_name("1X"));
  CHECK(!engine::ssh::valid_env_name("A-B"));
  CHECK(!engine::ssh::valid_env_name("A;B"));
  CommandSpec s;
  s.command = "true";
  s.env = {{"A=B", "x"}};
  CHECK_THROWS_AS(build_command(s, "n"), std::invalid_argument);
}
