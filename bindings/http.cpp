// engine.http: HTTP requests for the Lua modules that speak plain HTTP (Pushgateway, Prometheus),
// over the project's one HTTP client. Yields; expected failures return nil, err, message.
#include "bindings/vm.hpp"
#include "engine/http/escape.hpp"
#include "engine/http/client.hpp"
#include "engine/core/yaml_value.hpp"
#include "engine/ssh/known_hosts.hpp"

namespace engine::lua {

struct HttpState {
  explicit HttpState(asio::io_context& io) : client(io) {}
  http::Client client;
};

http::Client& http_client(Vm& vm) {
  if (!vm.http) vm.http = std::make_shared<HttpState>(vm.io);
  return vm.http->client;
}

namespace {

std::string field(lua_State* L, int idx, const char* name) {
  std::string out;
  if (lua_getfield(L, idx, name) == LUA_TSTRING) out = lua_tostring(L, -1);
  lua_pop(L, 1);
  return out;
}

// http.request{method, url, headers = {name = value}, body, timeout, retries, bearer,
//   basic_auth = {user, password}, ca_file, ca_data, cert_file, key_file, insecure, idle_timeout, keep_alive}
// → {status, body, headers} | nil, "timeout"|"unreachable"|"cancelled", message
int l_request(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  http::Request req;
  req.method = field(L, 1, "method");
  if (req.method.empty()) req.method = "GET";
  req.url = field(L, 1, "url");
  if (req.url.empty()) return luaL_error(L, "http.request: url is required");
  req.body = field(L, 1, "body");
  req.bearer = field(L, 1, "bearer");
  req.tls.ca_file = field(L, 1, "ca_file");
  req.tls.ca_data = field(L, 1, "ca_data");
  req.tls.cert_file = field(L, 1, "cert_file");
  req.tls.key_file = field(L, 1, "key_file");
  req.tls.cert_data = field(L, 1, "cert_data");
  req.tls.key_data = field(L, 1, "key_data");
  if (lua_getfield(L, 1, "insecure") == LUA_TBOOLEAN) req.tls.insecure = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "timeout") == LUA_TNUMBER) req.timeout = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "idle_timeout") == LUA_TNUMBER) req.idle_timeout = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "keep_alive") == LUA_TBOOLEAN) req.keep_alive = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "retries") == LUA_TNUMBER) req.max_retries = static_cast<int>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "headers") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        std::string name = lua_tostring(L, -2);
        size_t n = 0;
        const char* v = luaL_tolstring(L, -1, &n);
        req.headers.emplace_back(name, std::string(v, n));
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "basic_auth") == LUA_TTABLE) {
    std::string user = field(L, -1, "user"), password = field(L, -1, "password");
    std::string cred = user + ":" + password;
    req.headers.emplace_back("Authorization", "Basic " + ssh::base64_encode(reinterpret_cast<const unsigned char*>(cred.data()), cred.size()));
  }
  lua_pop(L, 1);
  Vm& vm = vm_of(L);
  {
    Op op = begin(L, "http.request");
    auto cancel = http_client(vm).send(std::move(req), [op](http::Response r) {
      complete(op, [r = std::move(r)](lua_State* co) {
        if (r.status == 0) {
          lua_pushnil(co);
          lua_pushstring(co, r.error == "cancelled" ? "cancelled" : r.timed_out ? "timeout" : "unreachable");
          lua_pushstring(co, r.error.c_str());
          return 3;
        }
        lua_createtable(co, 0, 3);
        lua_pushinteger(co, r.status);
        lua_setfield(co, -2, "status");
        lua_pushlstring(co, r.body.data(), r.body.size());
        lua_setfield(co, -2, "body");
        lua_createtable(co, 0, static_cast<int>(r.headers.size()));
        for (auto& [k, v] : r.headers) {
          lua_pushstring(co, v.c_str());
          lua_setfield(co, -2, k.c_str());
        }
        lua_setfield(co, -2, "headers");
        return 1;
      });
    });
    arm(op, cancel);
  }
  return suspend(L);
}

// http.json_decode(text) → table | nil, "invalid json", message;  http.json_encode(table) → text
int l_json_decode(lua_State* L) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, 1, &len);
  json j = json::parse(std::string(s, len), nullptr, false);
  if (j.is_discarded()) {
    lua_pushnil(L);
    lua_pushstring(L, "invalid json");
    return 2;
  }
  push_json(L, j);
  return 1;
}

// http.yaml_decode(text) → table | nil, "invalid yaml", message. One document, typed as Ansible
// (PyYAML) types it; runbooks read kubeadm's manifests and ClusterConfiguration with it.
int l_yaml_decode(lua_State* L) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, 1, &len);
  try {
    push_json(L, yaml::to_json(YAML::Load(std::string(s, len))));
    return 1;
  } catch (const YAML::Exception& e) {
    lua_pushnil(L);
    lua_pushstring(L, "invalid yaml");
    lua_pushfstring(L, "line %d, column %d: %s", e.mark.line + 1, e.mark.column + 1, e.msg.c_str());
    return 3;
  }
}

// http.yaml_encode(table) → text: one block-style document, keys sorted, read back by yaml_decode
// as the same table (kubeadm's ClusterConfiguration is written back with it).
int l_yaml_encode(lua_State* L) {
  std::string s = yaml::dump(to_json(L, 1));
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}

int l_json_encode(lua_State* L) {
  std::string s = to_json(L, 1).dump();
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}

// http.json_array(t) → t, marked so that json_encode writes it as an array even when empty.
int l_json_array(lua_State* L) {
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  mark_json_array(L, 1);
  return 1;
}

// http.base64_encode(s) / http.base64_decode(s): etcd's JSON gateway carries keys and values so.
int l_b64e(lua_State* L) {
  size_t n = 0;
  const char* s = luaL_checklstring(L, 1, &n);
  std::string out = ssh::base64_encode(reinterpret_cast<const unsigned char*>(s), n);
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

int l_b64d(lua_State* L) {
  std::string out = ssh::base64_decode(luaL_checkstring(L, 1));
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

// http.query_escape(s), http.path_escape(s), http.base64url(s): engine/http/escape.hpp.
template <std::string (*F)(std::string_view)>
int l_escape(lua_State* L) {
  size_t n = 0;
  const char* s = luaL_checklstring(L, 1, &n);
  std::string out = F(std::string_view(s, n));
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

// http.dry_run() → true under --dry-run.
int l_dry_run(lua_State* L) {
  lua_pushboolean(L, vm_of(L).dry_run);
  return 1;
}

const luaL_Reg kHttp[] = {{"request", l_request}, {"json_decode", l_json_decode}, {"json_encode", l_json_encode},
                          {"json_array", l_json_array},
                          {"yaml_decode", l_yaml_decode}, {"yaml_encode", l_yaml_encode},
                          {"dry_run", l_dry_run}, {"base64_encode", l_b64e}, {"base64_decode", l_b64d},
                          {"query_escape", l_escape<http::query_escape>}, {"path_escape", l_escape<http::path_escape>},
                          {"base64url", l_escape<http::base64url>},
                          {nullptr, nullptr}};

int open_module(lua_State* L) {
  new_lib(L, kHttp);
  push_json_null(L);
  lua_setfield(L, -2, "null");
  return 1;
}

}  // namespace

void open_http(lua_State* L) { register_module(L, "engine.http", open_module); }
void close_http(Vm& vm) { vm.http.reset(); }

}  // namespace engine::lua
