// engine.k8s.api: the Kubernetes API for the Lua k8s module (stdlib/engine/k8s.lua builds get,
// list, patch, cordon, drain... on these). call() and resource() yield; watch() returns a watcher
// whose next() yields until the next event.
#include <cmath>
#include <filesystem>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>

#include "bindings/options.hpp"
#include "bindings/vm.hpp"
#include "engine/core/seconds.hpp"
#include "engine/k8s/path.hpp"
#include "engine/core/errors.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/k8s/api.hpp"
#include "engine/log/log.hpp"
#include "engine/params/params.hpp"

namespace engine::lua {

struct K8sState {
  std::shared_ptr<k8s::Api> api;
};

namespace {

const char* kWatchMeta = "engine.k8s.watch";

K8sState& state(Vm& vm) {
  if (!vm.k8s) vm.k8s = std::make_shared<K8sState>();
  return *vm.k8s;
}

}  // namespace

void add_lease(lua_State* L);  // bindings/k8s_lease.cpp

namespace {

// The run's cluster when no k8s.configure names one: --kubeconfig/--context, the inventory's
// k8s_kubeconfig/k8s_context, $KUBECONFIG, ~/.kube/config, and the pod's service account only when
// none of those exists (kubectl's order).
k8s::Cluster run_cluster(Vm& vm) {
  std::vector<std::string> paths;
  std::string context;
  if (vm.inventory) {
    if (auto* all = vm.inventory->group("all")) {
      json vars = all->vars;
      for (auto it = all->file_vars.begin(); it != all->file_vars.end(); ++it) vars[it.key()] = it.value();
      if (vars.contains("k8s_kubeconfig") && vars["k8s_kubeconfig"].is_string()) paths.push_back(vars["k8s_kubeconfig"]);
      if (vars.contains("k8s_context") && vars["k8s_context"].is_string()) context = vars["k8s_context"];
    }
  }
  if (!vm.kubeconfig.empty()) paths = {vm.kubeconfig};
  if (!vm.kube_context.empty()) context = vm.kube_context;
  bool any_file = false;
  if (paths.empty())
    for (const auto& p : k8s::default_kubeconfig_paths()) any_file = any_file || std::filesystem::exists(p);
  auto in = paths.empty() && context.empty() && !any_file ? k8s::in_cluster() : std::nullopt;
  return in ? *in : k8s::load_kubeconfig(paths, context);
}

}  // namespace

k8s::Api& k8s_api(lua_State* L) {
  Vm& vm = vm_of(L);
  auto& st = state(vm);
  if (!st.api) {
    try {
      st.api = std::make_shared<k8s::Api>(vm.io, run_cluster(vm));
    } catch (const std::exception& e) {
      // The operator's to fix, not the runbook's: said without a position in the stdlib.
      lua_pushfstring(L, "kubernetes: %s; give one with --kubeconfig FILE, $KUBECONFIG or the inventory's k8s_kubeconfig "
                      "(a runbook: k8s.configure{kubeconfig = ...})", e.what());
      lua_error(L);
    }
  }
  return *st.api;
}

namespace {

k8s::Api& api_of(lua_State* L) { return k8s_api(L); }

int push_error(lua_State* co, const k8s::Reply& r) {
  lua_pushnil(co);
  lua_pushstring(co, r.error.c_str());
  lua_pushstring(co, r.message.c_str());
  lua_createtable(co, 0, 1);  // extra: always a table (docs/api.md, conventions)
  lua_pushinteger(co, r.status);
  lua_setfield(co, -2, "status");
  return 4;
}

// api.configure{kubeconfig = path | {paths}, context =, qps =, burst =, in_cluster = bool}
int l_configure(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_options(L, 1, {"kubeconfig", "kubeconfig_data", "context", "server", "tls_server_name", "qps", "burst", "in_cluster"},
                "k8s.configure");
  std::vector<std::string> paths;
  int t = lua_getfield(L, 1, "kubeconfig");
  if (t == LUA_TSTRING) paths.push_back(lua_tostring(L, -1));
  else if (t == LUA_TTABLE)
    for (auto& p : to_json(L, -1)) paths.push_back(p.get<std::string>());
  lua_pop(L, 1);
  std::string context;
  if (lua_getfield(L, 1, "context") == LUA_TSTRING) context = lua_tostring(L, -1);
  lua_pop(L, 1);
  http::Options o;
  bool limit_given = false;  // a limit the runbook chose holds even where the server does APF
  if (lua_getfield(L, 1, "qps") == LUA_TNUMBER) o.qps = lua_tonumber(L, -1), limit_given = true;
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "burst") == LUA_TNUMBER) o.burst = lua_tonumber(L, -1), limit_given = true;
  lua_pop(L, 1);
  // Below these no request would ever be sent: every call would wait forever.
  char got[64];
  if (!(o.qps > 0) || !std::isfinite(o.qps))
    luaL_error(L, "k8s.configure: qps must be a positive number of requests a second (got %s)", (std::snprintf(got, sizeof got, "%g", o.qps), got));
  if (!(o.burst >= 1) || !std::isfinite(o.burst))
    luaL_error(L, "k8s.configure: burst must be at least 1 (got %s)", (std::snprintf(got, sizeof got, "%g", o.burst), got));
  bool want_in_cluster = lua_getfield(L, 1, "in_cluster") == LUA_TBOOLEAN && lua_toboolean(L, -1);
  lua_pop(L, 1);
  Vm& vm = vm_of(L);
  try {
    k8s::Cluster c;
    if (want_in_cluster) {
      auto in = k8s::in_cluster();
      if (!in) luaL_error(L, "k8s.configure: not inside a cluster (no service account token)");
      c = *in;
    } else if (lua_getfield(L, 1, "kubeconfig_data") == LUA_TSTRING) {
      // A kubeconfig read from a node (its admin.conf): held in memory, never written here.
      std::string data = lua_tostring(L, -1);
      lua_pop(L, 1);
      c = k8s::load_kubeconfig_data(data, context, "kubeconfig_data");
      for (const auto* secret : {&c.tls.key_data, &c.token}) log::add_secret(*secret);
    } else {
      lua_pop(L, 1);
      // No kubeconfig named: the run's own cluster (only reached another way, with server =).
      c = paths.empty() && context.empty() ? run_cluster(vm) : k8s::load_kubeconfig(paths, context);
    }
    // Reaching the API another way than the kubeconfig says (a tunnel to a node): the server's
    // certificate is still checked, against tls_server_name (default: the kubeconfig's host).
    std::string server = opt_string(L, 1, "server", "k8s.configure");
    std::string name = opt_string(L, 1, "tls_server_name", "k8s.configure");
    if (!server.empty()) {
      if (name.empty() && c.tls.server_name.empty()) {
        auto hs = c.server.find("://");
        std::string host = c.server.substr(hs == std::string::npos ? 0 : hs + 3);
        host = host.substr(0, host.find_first_of("/?#"));
        if (host.size() && host.front() == '[') host = host.substr(1, host.find(']') - 1);
        else host = host.substr(0, host.rfind(':') == std::string::npos ? host.size() : host.rfind(':'));
        // An IP address cannot be a TLS server name: then the certificate is checked against the new host.
        bool ip = host.find_first_not_of("0123456789.") == std::string::npos || host.find(':') != std::string::npos;
        if (!ip) c.tls.server_name = host;
      }
      c.server = server;
    }
    if (!name.empty()) c.tls.server_name = name;
    if (c.tls.insecure)
      log::emit(log::Level::warn, "", "TLS verification is off for the Kubernetes API (insecure-skip-tls-verify)", {{"server", c.server}});
    state(vm).api = std::make_shared<k8s::Api>(vm.io, c, o, !limit_given);
  } catch (const ConfigError& e) {
    luaL_error(L, "k8s.configure: %s", e.what());
  }
  return 0;
}

// api.call(method, path, body, {content_type, timeout, retry}) → status, body, headers | nil, err, message, status
// Before a write: raises when the runbook is declared read_only; returns what the write is, for guard().
std::string refuse_write_if_read_only(lua_State* L, const std::string& method, const std::string& path) {
  std::string bare = path.substr(0, path.find('?')), what = "k8s " + method + " " + bare;
  // A review (SubjectAccessReview, TokenReview, ...) is created to ask, and stores nothing.
  bool review = method == "POST" && std::string_view(bare).ends_with("reviews");
  if (!review) refuse_if_read_only(L, what.c_str());
  return what;
}

// api.writing(method, path): the same refusal under --dry-run, where the write is only shown.
int l_writing(lua_State* L) {
  refuse_write_if_read_only(L, luaL_checkstring(L, 1), luaL_checkstring(L, 2));
  return 0;
}

int l_call(lua_State* L) {
  std::string method = luaL_checkstring(L, 1);
  std::string path = luaL_checkstring(L, 2);
  std::string body;
  if (lua_type(L, 3) == LUA_TSTRING) body = lua_tostring(L, 3);
  else if (lua_istable(L, 3)) body = to_json(L, 3).dump();
  k8s::CallOptions opts;
  if (lua_istable(L, 4)) {
    if (lua_getfield(L, 4, "content_type") == LUA_TSTRING) opts.content_type = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, 4, "timeout") == LUA_TNUMBER) opts.timeout = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, 4, "retry") == LUA_TBOOLEAN) opts.retry = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (method != "GET") guard(L, refuse_write_if_read_only(L, method, path).c_str());
  k8s::Api& api = api_of(L);
  {
    Op op = begin(L, "k8s call");
    auto cancel = api.call(method, path, std::move(body), opts, [op](k8s::Reply r) {
      complete(op, [r = std::move(r)](lua_State* co) {
        if (!r.error.empty()) return push_error(co, r);
        lua_pushinteger(co, r.status);
        push_json(co, r.body);
        lua_createtable(co, 0, static_cast<int>(r.headers.size()));
        for (auto& [k, v] : r.headers) {
          lua_pushstring(co, v.c_str());
          lua_setfield(co, -2, k.c_str());
        }
        return 3;
      });
    });
    arm(op, cancel);
  }
  return suspend(L);
}

// api.resource(name) → {group, version, plural, kind, namespaced, api_version} | nil, err, message
int l_resource(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  k8s::Api& api = api_of(L);
  {
    Op op = begin(L, "k8s resource");
    api.resource(name, [op](std::optional<k8s::Resource> r, std::string err) {
      complete(op, [r, err](lua_State* co) {
        if (!r) {
          // "discovery: <word>: <message>" when the server could not be asked; else the kind is unknown.
          std::string word = "unknown kind";
          if (err.rfind("discovery: ", 0) == 0) word = err.substr(11, err.find(':', 11) - 11);
          lua_pushnil(co);
          lua_pushstring(co, word.c_str());
          lua_pushstring(co, err.c_str());
          return 3;
        }
        push_json(co, json{{"group", r->group}, {"version", r->version}, {"plural", r->plural}, {"kind", r->kind},
                           {"namespaced", r->namespaced}, {"api_version", r->api_version()},
                           {"base", k8s::resource_path(*r)}});
        return 1;
      });
    });
    arm(op, nothing_to_undo);  // discovery only reads; its answer is cached for the next caller
  }
  return suspend(L);
}

// api.path(resource, namespace, name, subresource) → "/api/v1/namespaces/ns/pods/name/sub"
// (engine/k8s/path.hpp). A name or namespace the API could not hold raises at the runbook's call
// (two levels up: the k8s.* function, then its caller).
int l_path(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  k8s::Resource r;
  auto field = [&](const char* f) {
    lua_getfield(L, 1, f);
    std::string v = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
    lua_pop(L, 1);
    return v;
  };
  r.group = field("group"), r.version = field("version"), r.plural = field("plural"), r.kind = field("kind");
  lua_getfield(L, 1, "namespaced");
  r.namespaced = lua_toboolean(L, -1);
  lua_pop(L, 1);
  auto arg = [&](int i, const char* what) -> std::string {
    if (lua_isnoneornil(L, i)) return "";
    if (lua_type(L, i) != LUA_TSTRING) {
      luaL_where(L, 2);
      lua_pushfstring(L, "k8s: %s must be a string, not a %s", what, luaL_typename(L, i));
      lua_concat(L, 2);
      lua_error(L);
    }
    return lua_tostring(L, i);
  };
  std::string ns = arg(2, "a namespace"), sub = arg(4, "a subresource");
  std::optional<std::string> name;
  if (!lua_isnoneornil(L, 3)) name = arg(3, "a name");
  std::string path;
  try {
    path = k8s::resource_path(r, ns, name, sub);
  } catch (const std::invalid_argument& e) {
    luaL_where(L, 2);
    lua_pushfstring(L, "k8s: %s", e.what());
    lua_concat(L, 2);
    return lua_error(L);
  }
  lua_pushlstring(L, path.data(), path.size());
  return 1;
}

// api.requests() → how many HTTP requests this run has sent to the API.
int l_requests(lua_State* L) {
  Vm& vm = vm_of(L);
  lua_pushinteger(L, vm.k8s && vm.k8s->api ? static_cast<lua_Integer>(vm.k8s->api->requests()) : 0);
  return 1;
}

// api.server() → the server URL and context in use.
int l_server(lua_State* L) {
  k8s::Api& api = api_of(L);
  lua_pushstring(L, api.cluster().server.c_str());
  lua_pushstring(L, api.cluster().context.c_str());
  lua_pushstring(L, api.cluster().default_namespace.c_str());
  return 3;
}

// --- watches ------------------------------------------------------------------------------

struct Watch : std::enable_shared_from_this<Watch> {
  boost::asio::io_context* io = nullptr;
  std::deque<json> events;
  std::string partial;
  bool ended = false;
  std::string end_error;  // "" (server closed), or an error word
  std::optional<Op> waiter;
  std::function<void()> cancel;
  std::shared_ptr<boost::asio::steady_timer> timer;

  void take_lines();  // complete lines of `partial` become events

  void deliver() {
    if (!waiter) return;
    if (!events.empty()) {
      json e = std::move(events.front());
      events.pop_front();
      Op op = *waiter;
      waiter.reset();
      if (timer) timer->cancel();
      complete(op, [e = std::move(e)](lua_State* co) {
        lua_pushstring(co, e.value("type", "").c_str());
        push_json(co, e.value("object", json()));
        return 2;
      });
    } else if (ended) {
      Op op = *waiter;
      waiter.reset();
      if (timer) timer->cancel();
      std::string err = end_error.empty() ? "closed" : end_error;
      complete(op, [err](lua_State* co) {
        lua_pushnil(co);
        lua_pushstring(co, err.c_str());
        return 2;
      });
    }
  }
};

struct WatchBox {
  std::shared_ptr<Watch> w;
};

// api.watch(path_with_query) → watcher; the path should carry watch=1 and a resourceVersion.
int l_watch(lua_State* L) {
  std::string path = luaL_checkstring(L, 1);
  k8s::Api& api = api_of(L);
  auto w = std::make_shared<Watch>();
  w->io = &vm_of(L).io;
  k8s::CallOptions opts;
  opts.timeout = 0;
  opts.idle_timeout = 0;  // a quiet watch is not a dead one; its own timeoutSeconds ends it
  std::weak_ptr<Watch> weak = w;
  opts.on_data = [weak](std::string_view chunk) {
    auto w = weak.lock();
    if (!w) return false;
    w->partial.append(chunk);
    w->take_lines();
    // Not from inside curl's write callback: the runbook may close this very watch when resumed.
    boost::asio::post(*w->io, [weak] {
      if (auto w = weak.lock()) w->deliver();
    });
    return !w->ended;
  };
  w->cancel = api.call("GET", path, "", opts, [weak](k8s::Reply r) {
    auto w = weak.lock();
    if (!w) return;
    w->partial += "\n";  // a last event without its newline still counts
    w->take_lines();
    w->ended = true;
    if (w->end_error.empty() && !r.error.empty()) w->end_error = r.error;
    w->deliver();
  });
  auto* box = static_cast<WatchBox*>(lua_newuserdatauv(L, sizeof(WatchBox), 0));
  new (box) WatchBox{w};
  luaL_setmetatable(L, kWatchMeta);
  return 1;
}

void Watch::take_lines() {
  {
    size_t nl;
    while ((nl = partial.find('\n')) != std::string::npos) {
      std::string line = partial.substr(0, nl);
      partial.erase(0, nl + 1);
      if (line.empty()) continue;
      json e = json::parse(line, nullptr, false);
      if (e.is_discarded()) continue;
      // An ERROR event carrying 410 means the resourceVersion is too old: the caller relists.
      if (e.value("type", "") == "ERROR" && e["object"].value("code", 0) == 410) {
        ended = true;
        end_error = "gone";
      } else {
        events.push_back(std::move(e));
      }
    }
  }
}

// watcher:next(timeout_seconds) → type, object | nil, "timeout" | nil, "gone" | nil, "closed"
int l_watch_next(lua_State* L) {
  auto* box = static_cast<WatchBox*>(luaL_checkudata(L, 1, kWatchMeta));
  double timeout = luaL_optnumber(L, 2, 0);
  auto w = box->w;
  if (!w) return luaL_error(L, "watch: already closed");
  if (w->waiter) return luaL_error(L, "watch: next() is already waiting in another coroutine");
  {
    Op op = begin(L, "watch:next");
    w->waiter = op;
    if (timeout > 0) {
      w->timer = std::make_shared<boost::asio::steady_timer>(op.task->vm->io, steady_seconds(timeout));
      std::weak_ptr<Watch> weak = w;
      w->timer->async_wait([weak](const boost::system::error_code& ec) {
        auto w = weak.lock();
        if (ec || !w || !w->waiter) return;
        Op op = *w->waiter;
        w->waiter.reset();
        complete(op, [](lua_State* co) {
          lua_pushnil(co);
          lua_pushstring(co, "timeout");
          return 2;
        });
      });
    }
    std::weak_ptr<Watch> weak = w;
    arm(op, [weak] {
      if (auto w = weak.lock()) w->waiter.reset();
    });
    boost::asio::post(op.task->vm->io, [weak] {
      if (auto w = weak.lock()) w->deliver();
    });
  }
  return suspend(L);
}

int l_watch_close(lua_State* L) {
  auto* box = static_cast<WatchBox*>(luaL_checkudata(L, 1, kWatchMeta));
  if (box->w && box->w->cancel) box->w->cancel();
  box->w.reset();
  return 0;
}

int l_watch_gc(lua_State* L) {
  l_watch_close(L);
  static_cast<WatchBox*>(lua_touserdata(L, 1))->~WatchBox();
  return 0;
}

// api.identity() → this run's id, recorded on what it changes (the cordon annotation).
int l_identity(lua_State* L) {
  lua_pushstring(L, vm_of(L).run_id.empty() ? "engine" : vm_of(L).run_id.c_str());
  return 1;
}

// api.dry_run() → true under --dry-run: writes are shown, not made.
int l_dry_run(lua_State* L) {
  lua_pushboolean(L, vm_of(L).dry_run);
  return 1;
}

const luaL_Reg kWatchMethods[] = {{"next", l_watch_next}, {"close", l_watch_close}, {nullptr, nullptr}};
const luaL_Reg kWatchMetamethods[] = {{"__gc", l_watch_gc}, {"__close", l_watch_close}, {nullptr, nullptr}};
const luaL_Reg kApi[] = {{"identity", l_identity}, {"dry_run", l_dry_run}, {"writing", l_writing},{"configure", l_configure}, {"call", l_call}, {"resource", l_resource}, {"path", l_path}, {"watch", l_watch},
                         {"requests", l_requests}, {"server", l_server}, {nullptr, nullptr}};

int open_module(lua_State* L) {
  if (luaL_newmetatable(L, kWatchMeta)) {
    new_lib(L, kWatchMethods);
    lua_setfield(L, -2, "__index");
    set_funcs(L, kWatchMetamethods);
  }
  lua_pop(L, 1);
  new_lib(L, kApi);
  add_lease(L);
  return 1;
}

}  // namespace

void open_k8s(lua_State* L) { register_module(L, "engine.k8s.api", open_module); }

void close_k8s(Vm& vm) {
  // Where a run's API calls lost time to the client-side limit, the end of its log says so, and
  // how to raise it: otherwise a slow drain looks like a slow cluster.
  if (vm.k8s && vm.k8s->api) {
    const auto& client = vm.k8s->api->http();
    auto num = [](double v) { return v == std::floor(v) ? nlohmann::json(static_cast<long long>(v)) : nlohmann::json(v); };
    if (auto t = client.throttled(); t.requests > 0)
      log::emit(log::Level::info, "", "API calls waited for the client-side rate limit",
                {{"requests", t.requests}, {"total_wait_seconds", std::round(t.seconds * 10) / 10},
                 {"qps", num(client.options().qps)}, {"burst", num(client.options().burst)},
                 {"raise_with", "k8s.configure{qps = ..., burst = ...}"}});
  }
  vm.k8s.reset();
}

size_t k8s_in_flight(Vm& vm) { return vm.k8s && vm.k8s->api ? vm.k8s->api->http().in_flight() : 0; }

}  // namespace engine::lua
