// engine.etcd.native: the etcd snapshot, streamed to disk (the rest of engine.etcd is Lua over
// engine.http, in stdlib/engine/etcd.lua).
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bindings/vm.hpp"
#include "engine/core/hash.hpp"
#include "engine/etcd/retention.hpp"
#include "engine/etcd/snapshot.hpp"

namespace engine::lua {

http::Client& http_client(Vm& vm);  // bindings/http.cpp

namespace {

std::string field(lua_State* L, int idx, const char* name) {
  std::string out;
  if (lua_istable(L, idx) && lua_getfield(L, idx, name) == LUA_TSTRING) out = lua_tostring(L, -1);
  if (lua_istable(L, idx)) lua_pop(L, 1);
  return out;
}

// snapshot(endpoint, path, {ca_file, cert_file, key_file, ca_data, cert_data, key_data})
//   → {size, sha256} | nil, "timeout"|"unreachable"|"cut"|"corrupt"|"failed", message
int l_snapshot(lua_State* L) {
  std::string endpoint = luaL_checkstring(L, 1);
  std::string path = luaL_checkstring(L, 2);
  http::Tls tls;
  tls.ca_file = field(L, 3, "ca_file");
  tls.cert_file = field(L, 3, "cert_file");
  tls.key_file = field(L, 3, "key_file");
  tls.ca_data = field(L, 3, "ca_data");
  tls.cert_data = field(L, 3, "cert_data");
  tls.key_data = field(L, 3, "key_data");
  double idle = 60;
  if (lua_istable(L, 3)) {
    if (lua_getfield(L, 3, "idle_timeout") == LUA_TNUMBER) idle = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  Vm& vm = vm_of(L);
  {
    Op op = begin(L, "etcd.snapshot");
    auto cancel = etcd::snapshot(http_client(vm), endpoint, tls, path, [op](etcd::SnapshotResult r) {
      complete(op, [r](lua_State* co) {
        if (!r.error.empty()) {
          lua_pushnil(co);
          lua_pushstring(co, r.error_word.c_str());
          lua_pushstring(co, r.error.c_str());
          return 3;
        }
        lua_createtable(co, 0, 2);
        lua_pushinteger(co, static_cast<lua_Integer>(r.size));
        lua_setfield(co, -2, "size");
        lua_pushstring(co, r.sha256.c_str());
        lua_setfield(co, -2, "sha256");
        return 1;
      });
    }, idle);
    arm(op, cancel);
  }
  return suspend(L);
}

// sha256_file(path) → hex | nil, err: to verify a snapshot downloaded from a node.
int l_sha256_file(lua_State* L) {
  std::string path = luaL_checkstring(L, 1);
  auto hex = engine::sha256_file(path);
  if (!hex) {
    lua_pushnil(L);
    lua_pushstring(L, "not found");
    return 2;
  }
  lua_pushstring(L, hex->c_str());
  return 1;
}

// check_snapshot(path) → {size, sha256} | nil, "not found"|"corrupt", message: a snapshot file on
// this machine, its trailer checked (engine/etcd/snapshot.hpp). Reads only.
int l_check_snapshot(lua_State* L) {
  auto r = etcd::check_snapshot_file(luaL_checkstring(L, 1));
  if (!r.error.empty()) {
    lua_pushnil(L);
    lua_pushstring(L, r.error_word.c_str());
    lua_pushstring(L, r.error.c_str());
    return 3;
  }
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, static_cast<lua_Integer>(r.size));
  lua_setfield(L, -2, "size");
  lua_pushstring(L, r.sha256.c_str());
  lua_setfield(L, -2, "sha256");
  return 1;
}

// commit_download(path, want_sha256) → {sha256} | nil, "corrupt", message: PATH.part (a download)
// becomes PATH when its sha256 is the one expected; otherwise it is removed. Only .part files, so
// the sandbox gains no general way to move or delete files.
int l_commit_download(lua_State* L) {
  std::string path = luaL_checkstring(L, 1);
  std::string want = luaL_checkstring(L, 2);
  std::string part = path + ".part";
  auto got = engine::sha256_file(part);
  if (!got || *got != want) {
    ::unlink(part.c_str());
    lua_pushnil(L);
    lua_pushstring(L, "corrupt");
    lua_pushfstring(L, "the downloaded snapshot's sha256 (%s) is not the node's (%s); nothing kept",
                    got ? got->c_str() : "unreadable", want.c_str());
    return 3;
  }
  if (::rename(part.c_str(), path.c_str()) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, "failed");
    lua_pushfstring(L, "rename %s: %s", part.c_str(), std::strerror(errno));
    return 3;
  }
  lua_createtable(L, 0, 1);
  lua_pushstring(L, got->c_str());
  lua_setfield(L, -2, "sha256");
  return 1;
}

// prune_snapshots(dir, keep, newest, remove) → {removed = {...}, kept = {...}} | nil, "failed",
// message: the etcd-*.db snapshots in dir beyond the keep newest (engine/etcd/retention.hpp). Only
// those files, so the sandbox gains no general way to delete files.
int l_prune_snapshots(lua_State* L) {
  std::string dir = luaL_checkstring(L, 1);
  lua_Integer keep = luaL_checkinteger(L, 2);
  if (keep < 1) return luaL_error(L, "etcd.prune_snapshots: keep must be 1 or more (got %d)", static_cast<int>(keep));
  std::string newest = luaL_optstring(L, 3, "");
  bool remove = lua_isnoneornil(L, 4) || lua_toboolean(L, 4);
  auto r = etcd::prune_snapshots(dir, static_cast<size_t>(keep), newest, remove);
  if (!r.error.empty()) {
    lua_pushnil(L);
    lua_pushstring(L, "failed");
    lua_pushstring(L, r.error.c_str());
    return 3;
  }
  lua_createtable(L, 0, 2);
  for (auto [field, list] : {std::pair{"removed", &r.removed}, std::pair{"kept", &r.kept}}) {
    lua_createtable(L, static_cast<int>(list->size()), 0);
    for (size_t i = 0; i < list->size(); ++i) {
      lua_pushstring(L, (*list)[i].c_str());
      lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
    }
    lua_setfield(L, -2, field);
  }
  return 1;
}

// guard(what), before each etcd write: raises if the run's cluster lease is lost (see guard() in
// task.cpp), or the runbook is declared read_only.
int l_guard(lua_State* L) {
  refuse_if_read_only(L, luaL_checkstring(L, 1));
  guard(L, luaL_checkstring(L, 1));
  return 0;
}

const luaL_Reg kEtcd[] = {{"guard", l_guard}, {"snapshot", l_snapshot}, {"sha256_file", l_sha256_file}, {"commit_download", l_commit_download},
                          {"check_snapshot", l_check_snapshot},
                          {"prune_snapshots", l_prune_snapshots},
                          {nullptr, nullptr}};

int open_module(lua_State* L) {
  new_lib(L, kEtcd);
  return 1;
}

}  // namespace

void open_etcd(lua_State* L) { register_module(L, "engine.etcd.native", open_module); }

}  // namespace engine::lua
