// SSH for runbooks: host:exec(cmd, opts), ssh.configure{...}. Commands run over one pooled session
// per host; a failure of the outside world returns nil and one of the stable words ("timeout",
// "refused", "unreachable", "auth failed", "host key unknown", "host key changed", "closed",
// "sudo failed"); a command's non-zero exit is a result.
#include "bindings/ssh.hpp"

#include <pwd.h>
#include <unistd.h>

#include "bindings/options.hpp"
#include "engine/ssh/command.hpp"

#include "engine/core/text.hpp"
#include "engine/log/log.hpp"
#include "engine/run/report.hpp"
#include "engine/params/params.hpp"

namespace engine::lua {

using namespace engine::ssh;

namespace {

const std::vector<std::string> kExecOptions = {"sudo", "sudo_user", "sudo_password", "env", "stdin", "cwd",
                                               "timeout", "stream", "max_output", "read_only"};

}  // namespace

namespace {

struct ExecCall {
  ExecRequest req;
  std::string host;
  std::string marker;  // sudo's success marker, "" without sudo
  std::string what;     // the command's start, for report.json's timeline
  double started = 0;
  std::function<void()> cancel;
  bool cancelled = false;
};

}  // namespace

int push_failure(lua_State* co, const Failure& f) {
  lua_pushnil(co);
  lua_pushstring(co, word(f.kind));
  lua_pushstring(co, f.detail.c_str());
  return 3;
}

namespace {

void push_result(lua_State* co, const ExecResult& r) {
  lua_createtable(co, 0, 6);
  lua_pushinteger(co, r.code);
  lua_setfield(co, -2, "code");
  if (!r.signal.empty()) {
    lua_pushstring(co, r.signal.c_str());
    lua_setfield(co, -2, "signal");
  }
  lua_pushlstring(co, r.out.data(), r.out.size());
  lua_setfield(co, -2, "stdout");
  lua_pushlstring(co, r.err.data(), r.err.size());
  lua_setfield(co, -2, "stderr");
  lua_pushnumber(co, r.duration);
  lua_setfield(co, -2, "duration");
  if (r.truncated) {
    lua_pushboolean(co, 1);
    lua_setfield(co, -2, "truncated");
  }
}

void session_for(Pool& pool, std::shared_ptr<const Target> target, UseSession use, bool may_retry) {
  // The pool is touched again only while it is open: the run's end closes it, then frees it before
  // the callbacks its closing posted have run.
  pool.get(target, [&pool, open = pool.open_flag(), target, use, may_retry](std::shared_ptr<Session> s, Result r) {
    Again again = [&pool, open, target, use, may_retry](const Failure& f) {
      if (!f.not_sent || !may_retry || !*open) return false;
      log::emit(log::Level::info, target->name, "the SSH connection was gone before the request was sent; sending it on a new one",
                {{"detail", f.detail}});
      session_for(pool, target, use, false);
      return true;
    };
    // Not connected at all (unlike a connection lost mid-command): a failed run offers to leave it
    // out, unless it was reached after all (a node back from its reboot).
    if (r && (r->kind == Error::refused || r->kind == Error::unreachable || r->kind == Error::timeout))
      run::report().unreachable(target->name, std::string(word(r->kind)) + " (" + r->detail + ")");
    else if (!r)
      run::report().reached(target->name);
    use(std::move(s), std::move(r), std::move(again));
  });
}

}  // namespace

void with_session(Pool& pool, Target target, UseSession use) {
  session_for(pool, std::make_shared<const Target>(std::move(target)), std::move(use), true);
}

namespace {

// Runs the call's command on the target's session (a new one, once, if the command never left).
void start_exec(Op op, std::shared_ptr<ExecCall> call, Pool& pool, Target target) {
  with_session(pool, std::move(target), [op, call](std::shared_ptr<Session> s, Result r, Again again) {
    if (call->cancelled) return;
    if (r) {
      log::emit(log::Level::warn, call->host, "ssh failed", {{"error", word(r->kind)}, {"detail", r->detail}});
      complete(op, [f = *r](lua_State* co) { return push_failure(co, f); });
      return;
    }
    call->cancel = ssh::exec(s, call->req, [op, call, again](ExecResult res, Result f) {
      if (f && !call->cancelled && again(*f)) return;
      if (f && (f->kind == Error::unreachable || f->kind == Error::closed)) op.task->uncertain = true;
      run::report().span("exec", call->host, call->what, call->started,
                         f ? std::string(word(f->kind)) : res.signal.empty() ? "exit " + std::to_string(res.code) : "signal " + res.signal);
      if (f) {
        log::emit(log::Level::warn, call->host, "exec failed", {{"error", word(f->kind)}, {"detail", f->detail}});
        complete(op, [f = *f](lua_State* co) { return push_failure(co, f); });
        return;
      }
      if (auto sf = strip_sudo_marker(res, call->marker)) {
        log::emit(log::Level::warn, call->host, "sudo failed", {{"detail", sf->detail}});
        complete(op, [sf = *sf](lua_State* co) { return push_failure(co, sf); });
        return;
      }
      complete(op, [res = std::move(res)](lua_State* co) {
        push_result(co, res);
        return 1;
      });
    });
  });
}

// host:exec(cmd, opts) → {code, signal, stdout, stderr, duration} | nil, err, detail
int l_exec(lua_State* L) {
  std::string name = host_name(L, 1);
  size_t cmd_len = 0;
  const char* cmd = luaL_checklstring(L, 2, &cmd_len);
  if (lua_isnoneornil(L, 3)) {
    lua_settop(L, 2);
    lua_newtable(L);
  }
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  check_options(L, 3, kExecOptions, "exec");

  auto call = std::make_shared<ExecCall>();
  call->host = name;
  CommandSpec spec;
  spec.command.assign(cmd, cmd_len);
  if (lua_getfield(L, 3, "env") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "exec: env keys must be names");
      std::string k = lua_tostring(L, -2);
      if (!valid_env_name(k)) luaL_error(L, "exec: env name '%s' is not a valid variable name", k.c_str());
      size_t vl = 0;
      const char* v = luaL_tolstring(L, -1, &vl);
      spec.env.emplace_back(k, std::string(v, vl));
      lua_pop(L, 2);
    }
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "exec: env must be a table of NAME = value");
  }
  lua_pop(L, 1);
  spec.cwd = opt_string(L, 3, "cwd", "exec");
  spec.input = opt_string(L, 3, "stdin", "exec");
  spec.timeout = opt_seconds(L, 3, "timeout", "exec");
  if (lua_getfield(L, 3, "max_output") == LUA_TNUMBER) {
    lua_Integer m = lua_tointeger(L, -1);
    if (m <= 0) luaL_error(L, "exec: max_output must be a positive number of bytes");
    call->req.max_output = static_cast<size_t>(m);
  }
  lua_pop(L, 1);
  bool sudo_given = lua_getfield(L, 3, "sudo") != LUA_TNIL;
  lua_pop(L, 1);
  spec.sudo = opt_bool(L, 3, "sudo", "exec");
  spec.sudo_user = opt_string(L, 3, "sudo_user", "exec");
  spec.sudo_password = opt_string(L, 3, "sudo_password", "exec");
  bool read_only = opt_bool(L, 3, "read_only", "exec");
  bool stream = opt_bool(L, 3, "stream", "exec");
  if (!read_only) {
    refuse_if_read_only(L, "exec", "; a command that only reads is run with { read_only = true }");
    guard(L, "exec");
  }
  Target target = target_for(L, 1);
  Vm& vm = vm_of(L);
  apply_become(target, sudo_given, spec.sudo, spec.sudo_user, spec.sudo_password);
  bool sudo = spec.sudo || !spec.sudo_user.empty() || !spec.sudo_password.empty();

  log::add_secret(spec.sudo_password);
  auto remote = build_command(spec, nonce());
  call->req.command = std::move(remote.line);
  call->req.input = std::move(remote.input);
  call->req.timeout = spec.timeout;
  call->marker = std::move(remote.marker);
  if (stream) {
    std::string host = name;
    // sudo's marker is the first stdout line; it is ours, not the command's, so it is not shown.
    call->req.on_line = [host, marker = call->marker, first = true](bool is_err, std::string_view line) mutable {
      if (!is_err && first) {
        first = false;
        if (!marker.empty() && line == marker) return;
      }
      // Binary output is summed up, not escaped byte by byte into the console and the run log.
      if (text::looks_binary(line)) {
        log::emit(log::Level::info, host, "[" + std::to_string(line.size()) + " bytes of binary output]",
                  is_err ? json{{"fd", "stderr"}} : json());
        return;
      }
      log::emit(log::Level::info, host, line, is_err ? json{{"fd", "stderr"}} : json());
    };
  }

  if (vm.dry_run && !read_only) {
    // A plan, not an action: the command is shown (its sudo password never is) and not run.
    log::emit(log::Level::info, name, "dry-run: would run", {{"cmd", std::string(cmd, cmd_len)}, {"sudo", sudo}});
    ExecResult r;
    r.code = 0;
    push_result(L, r);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "dry_run");
    return 1;
  }

  call->started = run::report().clock();
  call->what = std::string(text::prefix({cmd, cmd_len}, 120));
  {
    Op op = begin(L, "exec");
    start_exec(op, call, ssh_state(vm).pool, std::move(target));
    arm(op, [call] {
      call->cancelled = true;
      if (call->cancel) call->cancel();
    });
  }
  return suspend(L);
}

SshConfig::Context config_context(const Defaults& d) {
  passwd* pw = getpwuid(getuid());
  return {d.home, pw ? pw->pw_name : d.user};
}

// ssh.configure{known_hosts=, host_key_policy=, config=, identity_files=, user=, connect_timeout=,
// max_handshakes=, channels_per_host=, keepalive=, keepalive_count=, idle_timeout=}: settings for
// connections made from now on.
int l_configure(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_options(L, 1, {"known_hosts", "host_key_policy", "config", "identity_files", "user", "connect_timeout",
                       "max_handshakes", "channels_per_host", "keepalive", "keepalive_count", "idle_timeout", "passphrase"}, "ssh.configure");
  SshState& st = ssh_state(vm_of(L));
  if (auto v = opt_string(L, 1, "known_hosts", "ssh.configure"); !v.empty()) st.defaults.known_hosts_file = v;
  if (auto v = opt_string(L, 1, "host_key_policy", "ssh.configure"); !v.empty()) {
    auto p = parse_policy(v);
    if (!p) luaL_error(L, "ssh.configure: host_key_policy '%s' is not strict, accept-new or off", v.c_str());
    st.defaults.policy = *p;
  }
  if (auto v = opt_string(L, 1, "config", "ssh.configure"); !v.empty()) {
    st.defaults.config_file = v;
    st.defaults.system_config_file.clear();  // as `ssh -F FILE`: that file alone
    try {
      st.config = SshConfig::load(v, "", config_context(st.defaults));
      st.config_error.clear();
    } catch (const std::exception& e) {
      luaL_error(L, "ssh.configure: %s", e.what());
    }
  }
  if (auto v = opt_string(L, 1, "user", "ssh.configure"); !v.empty()) st.defaults.user = v;
  if (auto v = opt_string(L, 1, "passphrase", "ssh.configure"); !v.empty()) st.defaults.passphrase = v;
  if (lua_getfield(L, 1, "identity_files") == LUA_TTABLE) {
    st.defaults.identity_files.clear();
    for (auto& f : to_json(L, -1)) st.defaults.identity_files.push_back(f.get<std::string>());
  }
  lua_pop(L, 1);
  double t = opt_seconds(L, 1, "connect_timeout", "ssh.configure");
  if (t > 0) st.defaults.connect_timeout = t;
  if (lua_getfield(L, 1, "max_handshakes") == LUA_TNUMBER) st.pool.set_max_handshakes(static_cast<size_t>(lua_tointeger(L, -1)));
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "channels_per_host") == LUA_TNUMBER) st.options.channels_per_host = static_cast<size_t>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "keepalive") != LUA_TNIL) st.options.keepalive = opt_seconds(L, 1, "keepalive", "ssh.configure");
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "keepalive_count") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) luaL_error(L, "ssh.configure: keepalive_count must be a whole number of at least 1");
    st.options.keepalive_count = static_cast<int>(lua_tointeger(L, -1));
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "idle_timeout") != LUA_TNIL) st.options.idle_timeout = opt_seconds(L, 1, "idle_timeout", "ssh.configure");
  lua_pop(L, 1);
  st.pool.set_options(st.options);
  return 0;
}

}  // namespace

SshState& ssh_state(Vm& vm) {
  if (!vm.ssh) {
    vm.ssh = std::make_shared<SshState>(vm.io);
    try {
      const auto& d = vm.ssh->defaults;
      vm.ssh->config = SshConfig::load(d.config_file, d.system_config_file, config_context(d));
    } catch (const std::exception& e) {
      // OpenSSH refuses to connect with a config it cannot read; so does every host here.
      vm.ssh->config_error = e.what();
    }
  }
  return *vm.ssh;
}

std::string host_name(lua_State* L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) return lua_tostring(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_getfield(L, idx, "name") != LUA_TSTRING) luaL_error(L, "expected a host (a table with a name)");
  std::string n = lua_tostring(L, -1);
  lua_pop(L, 1);
  return n;
}

void apply_become(const Target& t, bool sudo_given, bool& sudo, std::string& user, std::string& password) {
  // As Ansible's become: the inventory's choice for commands that do not make their own; an
  // explicit `sudo = true` means root unless sudo_user says otherwise, `sudo = false` opts out.
  if (!sudo_given && t.become && user.empty() && password.empty()) {
    sudo = true;
    user = t.become_user;
  }
  bool any = sudo || !user.empty() || !password.empty();
  if (any && password.empty()) password = t.become_password;
}

Target target_for(lua_State* L, int idx) {
  Vm& vm = vm_of(L);
  std::string name = host_name(L, idx);
  json vars;
  if (vm.inventory && vm.inventory->host(name)) {
    vars = vm.inventory->connection_vars_of(name);  // what resolve reads
  } else if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "vars");
    vars = lua_istable(L, -1) ? to_json(L, -1) : json::object();
    lua_pop(L, 1);
  } else {
    vars = json::object();
  }
  if (!vars.is_object()) vars = json::object();
  SshState& st = ssh_state(vm);
  if (!st.config_error.empty()) luaL_error(L, "host '%s': ssh config: %s", name.c_str(), st.config_error.c_str());
  try {
    return resolve(name, inventory::connection_from_vars(name, vars), vars, st.defaults, st.config);
  } catch (const std::exception& e) {
    std::string why = e.what(), prefix = "host '" + name + "': ";
    luaL_error(L, "%s%s", why.rfind(prefix, 0) == 0 ? "" : prefix.c_str(), why.c_str());  // named once
  }
  return {};
}

void close_ssh(Vm& vm) {
  if (vm.ssh) vm.ssh->pool.close_all();
  vm.ssh.reset();
}

const luaL_Reg kHostMethods[] = {{"exec", l_exec}, {nullptr, nullptr}};

void push_host_methods(lua_State* L) {
  new_lib(L, kHostMethods);
  add_file_methods(L);
}

namespace {
// ssh.quote(text) → text single-quoted for sh: the quoting exec itself uses, for runbooks that
// build commands from paths and names.
int l_quote(lua_State* L) {
  size_t n = 0;
  const char* s = luaL_checklstring(L, 1, &n);
  std::string q = ssh::shell_quote(std::string_view(s, n));
  lua_pushlstring(L, q.data(), q.size());
  return 1;
}

const luaL_Reg kSsh[] = {{"quote", l_quote}, {"exec", l_exec}, {"configure", l_configure}, {nullptr, nullptr}};

int open_module(lua_State* L) {
  new_lib(L, kSsh);
  add_tunnel(L);
  add_file_functions(L);
  return 1;
}
}  // namespace

void open_ssh(lua_State* L) { register_module(L, "engine.ssh", open_module); }

}  // namespace engine::lua
