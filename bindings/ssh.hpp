// Shared by the SSH bindings (exec, files, tunnels): the run's pool and settings.
#pragma once
#include <functional>
#include <memory>

#include "bindings/vm.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/ssh/exec.hpp"
#include "engine/ssh/pool.hpp"
#include "engine/ssh/target.hpp"

namespace engine::lua {

struct SshState {
  explicit SshState(asio::io_context& io) : defaults(ssh::default_settings()), pool(io, options) {}
  ssh::Defaults defaults;
  ssh::SshConfig config;
  std::string config_error;  // the ssh config could not be read: every host lookup raises it
  ssh::Options options;
  ssh::Pool pool;
};

SshState& ssh_state(Vm& vm);
// The inventory name of the host at idx (a host table or a name).
std::string host_name(lua_State* L, int idx);
// Where and how to reach the host at idx (raises on a bad connection setting).
ssh::Target target_for(lua_State* L, int idx);
// Ansible's become on top of a command's own sudo options: with ansible_become and no `sudo` key
// the command runs under sudo as ansible_become_user; any sudo uses ansible_become_password when
// the command gives no sudo_password.
void apply_become(const ssh::Target& t, bool sudo_given, bool& sudo, std::string& user, std::string& password);

// Filled in by bindings/ssh_files.cpp and bindings/ssh_tunnel.cpp.
void add_file_methods(lua_State* L);    // on the host methods table at -1
void add_file_functions(lua_State* L);  // on the engine.ssh module table at -1
void add_tunnel(lua_State* L);          // ssh.tunnel on the module table at -1

}  // namespace engine::lua

namespace engine::lua {

// nil, word, detail on the coroutine's stack.
int push_failure(lua_State* co, const ssh::Failure& f);

// Asks again, on a new connection, for what failed before it reached the server.
using Again = std::function<bool(const ssh::Failure&)>;
// The target's pooled session for one request (an exec, an SFTP operation): `use` gets the session
// or the failure to reach it, and `again`. A request that failed not_sent (the connection was found
// gone before the request left: a firewall that forgot the idle connection resets it at our next
// packet, so nothing ran on the node) is handed to again(failure), which gets a new connection and
// calls `use` once more, and answers true; it answers false (the caller reports the failure) for
// any other failure, for the second attempt, and while the run closes its sessions.
using UseSession = std::function<void(std::shared_ptr<ssh::Session>, ssh::Result, Again again)>;
void with_session(ssh::Pool& pool, ssh::Target target, UseSession use);

}  // namespace engine::lua
