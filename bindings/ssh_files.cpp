// Files on a host over SFTP: host:upload, download, read_file, write_file, stat, exists.
// Uploads are atomic: the bytes land under a temporary name, fsynced, and the node renames them
// over the destination; with sudo (root-owned paths) the temporary file is installed beside the
// destination by root first, so the final step is still a rename.
#include <filesystem>

#include "bindings/options.hpp"
#include "bindings/ssh.hpp"
#include "engine/ssh/command.hpp"
#include "engine/log/log.hpp"
#include "engine/ssh/sftp.hpp"

namespace engine::lua {

using namespace engine::ssh;

namespace {

struct PutSpec {
  std::optional<std::string> data;
  std::string local, remote;
  unsigned mode = 0644;
  std::string owner, group;
  bool sudo = false;
  bool sudo_given = false;  // the call said sudo = true or false (else the inventory's become decides)
  std::string sudo_password;
};

unsigned opt_mode(lua_State* L, int idx, unsigned dflt) {
  unsigned mode = dflt;
  int t = lua_getfield(L, idx, "mode");
  if (t == LUA_TNUMBER) mode = static_cast<unsigned>(lua_tointeger(L, -1));
  else if (t == LUA_TSTRING) mode = static_cast<unsigned>(std::stoul(lua_tostring(L, -1), nullptr, 8));
  else if (t != LUA_TNIL) luaL_error(L, "mode must be a number (0644) or an octal string (\"0644\")");
  lua_pop(L, 1);
  if (mode > 07777) luaL_error(L, "mode %o is not a permission mode", mode);
  return mode;
}

std::string dirname(const std::string& p) {
  auto slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}
std::string basename(const std::string& p) {
  auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// What a cancelled transfer needs: the flag the SFTP Op reads, and the session to kick so the Op
// sees it now rather than at its next socket event.
struct Cancel {
  std::shared_ptr<bool> flag = std::make_shared<bool>(false);
  std::weak_ptr<Session> session;
  void operator()() const {
    *flag = true;
    if (auto s = session.lock()) s->kick();
  }
};

// The shared tail of upload and write_file: put the bytes, then rename them into place. Cancelled
// (a timeout, a second Ctrl-C, a lost lease) before the rename, it never renames: the temporary
// file is removed and the destination is as it was.
void put(const Op& op, Vm& vm, const Target& target, std::shared_ptr<PutSpec> spec) {
  std::string tag = nonce();
  std::string tmp = spec->sudo ? "/tmp/.engine-upload-" + tag
                               : dirname(spec->remote) + "/." + basename(spec->remote) + ".engine-" + tag;
  if (vm.dry_run) {
    log::emit(log::Level::info, target.name, "dry-run: would write", {{"path", spec->remote}, {"sudo", spec->sudo}});
    complete(op, [](lua_State* co) {
      lua_createtable(co, 0, 2);
      lua_pushboolean(co, 1);
      lua_setfield(co, -2, "dry_run");
      return 1;
    });
    arm(op, nothing_to_undo);  // after complete(), which then waits for the yield
    return;
  }
  std::string host = target.name;
  auto cancel = std::make_shared<Cancel>();
  with_session(ssh_state(vm).pool, target, [op, spec, tmp, host, cancel](std::shared_ptr<Session> s, Result r, Again again) {
    if (*cancel->flag) return;
    if (r) {
      complete(op, [f = *r](lua_State* co) { return push_failure(co, f); });
      return;
    }
    cancel->session = s;
    sftp_put(s, spec->data, spec->local, tmp, spec->mode, [op, spec, tmp, host, s, cancel, again](uint64_t bytes, Result r) {
      if (r && !*cancel->flag && again(*r)) return;
      if (*cancel->flag) {
        ExecRequest rm;  // whatever part of it arrived
        rm.command = "rm -f " + shell_quote(tmp);
        if (spec->sudo) rm.command = "sudo -n rm -f " + shell_quote(tmp) + " 2>/dev/null || " + rm.command;
        exec(s, rm, [](ExecResult, Result) {});
        log::emit(log::Level::warn, host, "upload cancelled before its rename: the destination is unchanged", {{"path", spec->remote}});
        return;
      }
      if (r) {
        complete(op, [f = *r](lua_State* co) { return push_failure(co, f); });
        return;
      }
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", spec->mode);
      std::string cmd;
      std::string input, marker;
      if (spec->sudo) {
        std::string staged = dirname(spec->remote) + "/." + basename(spec->remote) + ".engine-" + basename(tmp);
        std::string own = (spec->owner.empty() ? "" : " -o " + shell_quote(spec->owner)) +
                          (spec->group.empty() ? "" : " -g " + shell_quote(spec->group));
        std::string inner = "install -m " + std::string(mode) + own + " " + shell_quote(tmp) + " " + shell_quote(staged) +
                            " && mv -f " + shell_quote(staged) + " " + shell_quote(spec->remote) + "; rc=$?; rm -f " +
                            shell_quote(tmp) + "; exit $rc";
        cmd = with_sudo(inner, "", spec->sudo_password, nonce(), marker, input);
      } else {
        cmd = "mv -f " + shell_quote(tmp) + " " + shell_quote(spec->remote) + " || { rc=$?; rm -f " + shell_quote(tmp) +
              "; exit $rc; }";
      }
      ExecRequest req;
      req.command = cmd;
      req.input = input;
      req.timeout = 120;
      exec(s, req, [op, spec, bytes, marker, host, tmp, s, cancel, again](ExecResult res, Result f) {
        // The session gone before the rename left (not_sent): the whole put once more on a new
        // connection, to the same temporary name, unless the put itself already took that chance.
        if (f && !*cancel->flag && again(*f)) return;
        if (!f) f = strip_sudo_marker(res, marker);
        if (!f && res.code != 0) f = Failure{Error::failed, "rename into " + spec->remote + ": " + res.err};
        if (f) {
          if (f->kind == Error::sudo_failed) {  // the temporary file is the login user's: remove it
            ExecRequest rm;
            rm.command = "rm -f " + shell_quote(tmp);
            exec(s, rm, [](ExecResult, Result) {});
          }
          log::emit(log::Level::warn, host, "upload failed", {{"path", spec->remote}, {"detail", f->detail}});
          complete(op, [f = *f](lua_State* co) { return push_failure(co, f); });
          return;
        }
        complete(op, [bytes](lua_State* co) {
          lua_createtable(co, 0, 1);
          lua_pushinteger(co, static_cast<lua_Integer>(bytes));
          lua_setfield(co, -2, "bytes");
          return 1;
        });
      });
    }, cancel->flag);
  });
  arm(op, [cancel] { (*cancel)(); });  // last: a completion that came already waits for the yield
}

std::shared_ptr<PutSpec> put_options(lua_State* L, int idx, const char* what) {
  auto spec = std::make_shared<PutSpec>();
  if (lua_isnoneornil(L, idx)) return spec;
  luaL_checktype(L, idx, LUA_TTABLE);
  check_options(L, idx, {"mode", "owner", "group", "sudo", "sudo_password"}, what);
  spec->mode = opt_mode(L, idx, 0644);
  spec->owner = opt_string(L, idx, "owner", what);
  spec->group = opt_string(L, idx, "group", what);
  spec->sudo_given = lua_getfield(L, idx, "sudo") != LUA_TNIL;
  lua_pop(L, 1);
  spec->sudo = opt_bool(L, idx, "sudo", what);
  spec->sudo_password = opt_string(L, idx, "sudo_password", what);
  if (!spec->sudo_password.empty()) spec->sudo = true;
  return spec;
}

// The inventory's become on top of the call's options. Files are written by root under sudo (the
// install step); become_user does not apply to them.
void put_privilege(lua_State* L, PutSpec& spec, const Target& target, const char* what) {
  std::string user;
  apply_become(target, spec.sudo_given, spec.sudo, user, spec.sudo_password);
  if ((!spec.owner.empty() || !spec.group.empty()) && !spec.sudo)
    luaL_error(L, "%s: owner and group need sudo = true", what);
}

// host:upload(local_path, remote_path, {mode=, owner=, group=, sudo=}) → {bytes} | nil, err, detail
int l_upload(lua_State* L) {
  std::string local = luaL_checkstring(L, 2);
  std::string remote = luaL_checkstring(L, 3);
  auto spec = put_options(L, 4, "upload");
  spec->local = local;
  spec->remote = remote;
  if (!std::filesystem::is_regular_file(local)) luaL_error(L, "upload: no local file '%s'", local.c_str());
  refuse_if_read_only(L, "upload");
  guard(L, "upload");
  Target target = target_for(L, 1);
  put_privilege(L, *spec, target, "upload");
  {
    Op op = begin(L, "upload");
    put(op, vm_of(L), target, spec);
  }
  return suspend(L);
}

// host:write_file(remote_path, content, {mode=, owner=, group=, sudo=}) → {bytes} | nil, err, detail
int l_write_file(lua_State* L) {
  std::string remote = luaL_checkstring(L, 2);
  size_t len = 0;
  const char* data = luaL_checklstring(L, 3, &len);
  auto spec = put_options(L, 4, "write_file");
  spec->data = std::string(data, len);
  spec->remote = remote;
  refuse_if_read_only(L, "write_file");
  guard(L, "write_file");
  Target target = target_for(L, 1);
  put_privilege(L, *spec, target, "write_file");
  {
    Op op = begin(L, "write_file");
    put(op, vm_of(L), target, spec);
  }
  return suspend(L);
}

// Reading: download to a local path, or read_file into a string.
int get(lua_State* L, const std::string& remote, const std::string& local, uint64_t max, const char* what,
        unsigned mode = 0600) {
  Target target = target_for(L, 1);
  Vm& vm = vm_of(L);
  {
    Op op = begin(L, what);
    bool to_string = local.empty();
    auto cancel = std::make_shared<Cancel>();
    with_session(ssh_state(vm).pool, target, [op, remote, local, max, to_string, cancel, mode](std::shared_ptr<Session> s, Result r, Again again) {
      if (*cancel->flag) return;
      if (r) {
        complete(op, [f = *r](lua_State* co) { return push_failure(co, f); });
        return;
      }
      cancel->session = s;
      sftp_get(s, remote, local, max, [op, to_string, cancel, again](std::string data, uint64_t bytes, Result r) {
        if (*cancel->flag) return;
        if (r && again(*r)) return;
        if (r) {
          complete(op, [f = *r](lua_State* co) { return push_failure(co, f); });
          return;
        }
        complete(op, [data = std::move(data), bytes, to_string](lua_State* co) {
          if (to_string) {
            lua_pushlstring(co, data.data(), data.size());
          } else {
            lua_createtable(co, 0, 1);
            lua_pushinteger(co, static_cast<lua_Integer>(bytes));
            lua_setfield(co, -2, "bytes");
          }
          return 1;
        });
      }, cancel->flag, mode);
    });
    arm(op, [cancel] { (*cancel)(); });
  }
  return suspend(L);
}

// host:download(remote_path, local_path, {mode = 0600}) → {bytes} | nil, err, detail (nothing at
// local_path on failure). The local file is 0600 unless the runbook says otherwise: what is fetched
// from a node is often a secret (a snapshot, a key).
int l_download(lua_State* L) {
  std::string remote = luaL_checkstring(L, 2);
  std::string local = luaL_checkstring(L, 3);
  unsigned mode = 0600;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    check_options(L, 4, {"mode"}, "download");
    mode = opt_mode(L, 4, 0600);
  }
  return get(L, remote, local, 0, "download", mode);
}

// host:read_file(remote_path, {max = bytes}) → content | nil, err, detail
int l_read_file(lua_State* L) {
  std::string remote = luaL_checkstring(L, 2);
  uint64_t max = 64ull << 20;
  if (lua_istable(L, 3)) {
    check_options(L, 3, {"max"}, "read_file");
    if (lua_getfield(L, 3, "max") == LUA_TNUMBER) max = static_cast<uint64_t>(lua_tointeger(L, -1));
    lua_pop(L, 1);
  }
  return get(L, remote, "", max, "read_file");
}

int stat_common(lua_State* L, bool exists_only) {
  std::string remote = luaL_checkstring(L, 2);
  Target target = target_for(L, 1);
  Vm& vm = vm_of(L);
  {
    Op op = begin(L, exists_only ? "exists" : "stat");
    with_session(ssh_state(vm).pool, target, [op, remote, exists_only](std::shared_ptr<Session> s, Result r, Again again) {
      if (r) {
        complete(op, [f = *r](lua_State* co) { return push_failure(co, f); });
        return;
      }
      sftp_stat(s, remote, true, [op, exists_only, again](FileInfo info, Result r) {
        if (r && again(*r)) return;
        if (r && exists_only && r->kind == Error::not_found) {
          complete(op, [](lua_State* co) { lua_pushboolean(co, 0); return 1; });
          return;
        }
        if (r) {
          complete(op, [f = *r](lua_State* co) { return push_failure(co, f); });
          return;
        }
        complete(op, [info, exists_only](lua_State* co) {
          if (exists_only) {
            lua_pushboolean(co, 1);
            return 1;
          }
          lua_createtable(co, 0, 6);
          lua_pushinteger(co, static_cast<lua_Integer>(info.size));
          lua_setfield(co, -2, "size");
          lua_pushinteger(co, info.mode);
          lua_setfield(co, -2, "mode");
          lua_pushinteger(co, info.uid);
          lua_setfield(co, -2, "uid");
          lua_pushinteger(co, info.gid);
          lua_setfield(co, -2, "gid");
          lua_pushinteger(co, static_cast<lua_Integer>(info.mtime));
          lua_setfield(co, -2, "mtime");
          lua_pushstring(co, info.type.c_str());
          lua_setfield(co, -2, "type");
          return 1;
        });
      });
    });
    arm(op, nothing_to_undo);  // stat only reads: a late answer is dropped
  }
  return suspend(L);
}

// host:stat(path) → {size, mode, uid, gid, mtime, type} | nil, "not found" | nil, err, detail
int l_stat(lua_State* L) { return stat_common(L, false); }
// host:exists(path) → true | false | nil, err, detail
int l_exists(lua_State* L) { return stat_common(L, true); }

const luaL_Reg kFileFns[] = {{"upload", l_upload},       {"download", l_download}, {"read_file", l_read_file},
                             {"write_file", l_write_file}, {"stat", l_stat},         {"exists", l_exists},
                             {nullptr, nullptr}};

}  // namespace

void add_file_methods(lua_State* L) { set_funcs(L, kFileFns); }
void add_file_functions(lua_State* L) { set_funcs(L, kFileFns); }

}  // namespace engine::lua
