// engine.tls.native: certificates parsed (inspect) and the chain an endpoint serves (served); the
// Lua module engine.tls adds options, targets and SSH tunnels.
#include <chrono>
#include <stdexcept>

#include "bindings/vm.hpp"
#include "engine/tls/served.hpp"
#include "engine/tls/x509.hpp"

namespace engine::lua {

namespace {

void push_strings(lua_State* L, const std::vector<std::string>& v) {
  lua_createtable(L, static_cast<int>(v.size()), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    lua_pushstring(L, v[i].c_str());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

void push_cert(lua_State* L, const tls::CertInfo& c) {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  lua_createtable(L, 0, 16);
  auto str = [&](const char* k, const std::string& v) {
    lua_pushlstring(L, v.data(), v.size());
    lua_setfield(L, -2, k);
  };
  auto num = [&](const char* k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
  };
  str("subject", c.subject);
  str("issuer", c.issuer);
  str("common_name", c.common_name);
  push_strings(L, c.dns_names);
  lua_setfield(L, -2, "dns_names");
  push_strings(L, c.ip_addresses);
  lua_setfield(L, -2, "ip_addresses");
  str("serial", c.serial);
  num("not_before", c.not_before);
  num("not_after", c.not_after);
  str("not_before_text", tls::rfc3339(c.not_before));
  str("not_after_text", tls::rfc3339(c.not_after));
  // Whole days left (10 days and 20 hours: 10); past the end, whole days since as a negative
  // number (0 on the day it expired: `expired` tells).
  auto left = c.not_after - now;
  num("days_left", left / 86400);
  lua_pushboolean(L, left <= 0);
  lua_setfield(L, -2, "expired");
  str("key_algorithm", c.key_algorithm);
  lua_pushboolean(L, c.is_ca);
  lua_setfield(L, -2, "is_ca");
  str("sha256", c.sha256);
  str("pem", c.pem);
}

void push_chain(lua_State* L, const std::vector<tls::CertInfo>& chain) {
  lua_createtable(L, static_cast<int>(chain.size()), 0);
  for (size_t i = 0; i < chain.size(); ++i) {
    push_cert(L, chain[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

// inspect(pem) → list of certificates | nil, "invalid", message
int l_inspect(lua_State* L) {
  size_t n = 0;
  const char* pem = luaL_checklstring(L, 1, &n);
  std::vector<tls::CertInfo> certs;
  try {
    certs = tls::inspect_pem(std::string_view(pem, n));
  } catch (const std::invalid_argument& e) {
    lua_pushnil(L);
    lua_pushstring(L, "invalid");
    lua_pushstring(L, e.what());
    return 3;
  }
  push_chain(L, certs);
  return 1;
}

// served(host, port, server_name, timeout) → chain | nil, word, message. Yields.
int l_served(lua_State* L) {
  std::string host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port > 0 && port < 65536, 2, "not a port number");
  std::string sni = luaL_optstring(L, 3, "");
  double timeout = luaL_optnumber(L, 4, 10);
  Vm& vm = vm_of(L);
  {
    Op op = begin(L, "tls.served");
    auto cancel = tls::served(vm.io, host, static_cast<uint16_t>(port), sni, timeout, [op](tls::Served r) {
      complete(op, [r = std::move(r)](lua_State* co) {
        if (!r.word.empty()) {
          lua_pushnil(co);
          lua_pushstring(co, r.word.c_str());
          lua_pushstring(co, r.message.c_str());
          return 3;
        }
        push_chain(co, r.chain);
        return 1;
      });
    });
    arm(op, cancel);
  }
  return suspend(L);
}

const luaL_Reg kTls[] = {{"inspect", l_inspect}, {"served", l_served}, {nullptr, nullptr}};

int open_module(lua_State* L) {
  new_lib(L, kTls);
  return 1;
}

}  // namespace

void open_tls(lua_State* L) { register_module(L, "engine.tls.native", open_module); }

}  // namespace engine::lua
