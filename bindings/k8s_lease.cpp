// k8s.lease(name, {ttl, namespace, on_lost}): a coordination.k8s.io/v1 Lease held by this run, renewed
// in the background every ttl/3, released when closed. Another holder that keeps renewing means
// nil, "held"; a lease whose holder stopped renewing for longer than its duration can be taken over.
// A holder that cannot renew within 2/3 of the TTL loses it and stops acting (guard(), task.cpp).
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <ctime>
#include <iomanip>
#include <sstream>

#include "bindings/options.hpp"
#include "bindings/ssh.hpp"
#include "bindings/vm.hpp"
#include "engine/k8s/api.hpp"
#include "engine/log/log.hpp"

namespace engine::lua {

k8s::Api& k8s_api(lua_State* L);  // bindings/k8s.cpp

namespace {

using json = nlohmann::json;
const char* kLeaseMeta = "engine.k8s.lease";

std::string micro_time(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count() % 1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::ostringstream o;
  o << std::put_time(&tm, "%Y-%m-%dT%H:%M:%S") << "." << std::setw(6) << std::setfill('0') << us << "Z";
  return o.str();
}

std::optional<std::chrono::system_clock::time_point> parse_time(const std::string& s) {
  std::tm tm{};
  std::istringstream in(s);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return std::nullopt;
  auto t = std::chrono::system_clock::from_time_t(timegm(&tm));
  if (s.size() > 20 && s[19] == '.') {
    std::string frac = s.substr(20, s.find('Z') - 20);
    while (frac.size() < 6) frac += '0';
    t += std::chrono::microseconds(std::stoll(frac.substr(0, 6)));
  }
  return t;
}

using Clock = std::chrono::steady_clock;

struct Lease : std::enable_shared_from_this<Lease> {
  std::shared_ptr<k8s::Api> api;
  Vm* vm = nullptr;
  std::string ns, name, identity, path;
  int ttl = 60;
  json current;  // the object as we last wrote it
  bool held = false, lost = false;
  std::unique_ptr<boost::asio::steady_timer> timer;   // the next renewal
  std::unique_ptr<boost::asio::steady_timer> expiry;  // the renew deadline
  std::shared_ptr<LeaseHold> hold = std::make_shared<LeaseHold>();
  int on_lost_ref = LUA_NOREF;  // the runbook's own handler, if it passed one
  bool abandoned = false;       // the task that asked for it stopped waiting

  // Another holder takes the lease over once renewTime + TTL has passed on its clock. We stop
  // acting at 2/3 of the TTL after the last renewal the server answered, counted from when we sent
  // it: the last third is the margin for clock skew and for a call already on the wire.
  Clock::duration renew_window() const { return std::chrono::milliseconds(ttl * 2000 / 3); }
  Clock::duration renew_every() const { return std::chrono::milliseconds(ttl * 1000 / 3); }

  json spec_now(int transitions) {
    auto now = micro_time(std::chrono::system_clock::now());
    return {{"holderIdentity", identity}, {"leaseDurationSeconds", ttl}, {"acquireTime", now}, {"renewTime", now},
            {"leaseTransitions", transitions}};
  }

  // Takes the lease or says who holds it. done(ok, error word, message).
  void acquire(std::function<void(bool, std::string, std::string)> done) {
    auto self = shared_from_this();
    api->call("GET", path, "", {}, [self, done](k8s::Reply r) {
      if (r.error == "not found") {
        json obj = {{"apiVersion", "coordination.k8s.io/v1"}, {"kind", "Lease"},
                    {"metadata", {{"name", self->name}, {"namespace", self->ns}}}, {"spec", self->spec_now(0)}};
        std::string base = self->path.substr(0, self->path.rfind('/'));
        auto sent = Clock::now();
        self->api->call("POST", base, obj.dump(), {}, [self, done, sent](k8s::Reply c) {
          if (c.error.empty()) return self->took(c.body, sent, done);
          if (c.error == "conflict") return self->acquire(done);  // someone created it first: look again
          done(false, c.error, c.message);
        });
        return;
      }
      if (!r.error.empty()) return done(false, r.error, r.message);
      json spec = r.body.value("spec", json::object());
      std::string holder = spec.value("holderIdentity", "");
      int duration = spec.value("leaseDurationSeconds", 0);
      auto renewed = parse_time(spec.value("renewTime", ""));
      auto now = std::chrono::system_clock::now();
      bool expired = !renewed || *renewed + std::chrono::seconds(duration) < now;
      if (!holder.empty() && holder != self->identity && !expired) {
        double ago = renewed ? std::chrono::duration<double>(now - *renewed).count() : 0;
        std::ostringstream msg;
        msg << "lease " << self->ns << "/" << self->name << " is held by " << holder << " (renewed " << std::fixed
            << std::setprecision(1) << ago << "s ago, duration " << duration << "s)";
        return done(false, "held", msg.str());
      }
      json obj = r.body;
      int transitions = spec.value("leaseTransitions", 0) + (holder == self->identity ? 0 : 1);
      obj["spec"] = self->spec_now(transitions);
      // resourceVersion makes this a compare-and-swap: two engines taking over at once, one wins.
      auto sent = Clock::now();
      self->api->call("PUT", self->path, obj.dump(), {}, [self, done, sent](k8s::Reply u) {
        if (u.error.empty()) return self->took(u.body, sent, done);
        if (u.error == "conflict") return done(false, "held", "lease " + self->name + " was taken by another run just now");
        done(false, u.error, u.message);
      });
    });
  }

  void took(const json& obj, Clock::time_point sent, const std::function<void(bool, std::string, std::string)>& done) {
    current = obj;
    held = true;
    hold->held = true;
    extend(sent);
    log::emit(log::Level::info, "", "lease taken", {{"lease", ns + "/" + name}, {"ttl", ttl}, {"holder", identity}});
    schedule(renew_every());
    done(true, "", "");
  }

  // A renewal sent at `sent` was answered: the lease is ours until sent + the renew window.
  void extend(Clock::time_point sent) {
    hold->deadline = sent + renew_window();
    expiry->expires_at(hold->deadline);
    std::weak_ptr<Lease> weak = shared_from_this();
    expiry->async_wait([weak](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (!self || ec || !self->held || Clock::now() < self->hold->deadline) return;
      self->lose("no renewal succeeded for " + std::to_string(self->ttl * 2 / 3) + "s (2/3 of the " +
                 std::to_string(self->ttl) + "s TTL)");
    });
  }

  void schedule(Clock::duration after) {
    timer->expires_after(after);
    std::weak_ptr<Lease> weak = shared_from_this();
    timer->async_wait([weak](const boost::system::error_code& ec) {
      if (auto self = weak.lock(); self && !ec && self->held) self->renew();
    });
  }

  void renew() {
    auto sent = Clock::now();
    if (sent >= hold->deadline) return lose("no renewal succeeded before the renew deadline");
    auto self = shared_from_this();
    json obj = current;
    obj["spec"]["renewTime"] = micro_time(std::chrono::system_clock::now());
    // An answer after the deadline is no use: the request gives up by then, and is not retried
    // behind our back (a retry is our next renewal, sooner).
    k8s::CallOptions opts;
    opts.retry = false;
    opts.timeout = std::max(0.5, std::chrono::duration<double>(hold->deadline - sent).count());
    // Past the client-side rate limit: queued behind a burst of the runbook's own calls (a drain's
    // evictions), a renewal could wait out the deadline and lose the lease of a healthy run.
    opts.rate_limited = false;
    api->call("PUT", path, obj.dump(), opts, [self, sent](k8s::Reply r) {
      if (!self->held) return;
      if (r.error.empty()) {
        self->current = r.body;
        self->extend(sent);
        self->schedule(self->renew_every());
        return;
      }
      if (r.error == "conflict") {
        // Someone wrote it: if it still names us, carry on from their version; else it is lost.
        k8s::CallOptions now;
        now.rate_limited = false;
        self->api->call("GET", self->path, "", now, [self](k8s::Reply g) {
          if (!self->held) return;
          if (g.error.empty() && g.body["spec"].value("holderIdentity", "") == self->identity) {
            self->current = g.body;
            self->renew();
          } else {
            self->lose("taken by " + (g.error.empty() ? g.body["spec"].value("holderIdentity", "?") : g.error));
          }
        });
        return;
      }
      log::emit(log::Level::warn, "", "lease renewal failed, retrying", {{"lease", self->name}, {"error", r.error}});
      self->schedule(std::min<Clock::duration>(std::chrono::seconds(1), self->renew_every()));
    });
  }

  // Lost for good: nothing this run does may rely on it again. Without a handler of the runbook's,
  // everything in flight is cancelled the way a second Ctrl-C does, and the run stops (exit 1).
  void lose(const std::string& why) {
    if (lost) return;
    held = false;
    lost = true;
    hold->held = false;
    hold->lost = true;
    hold->why = why;
    timer->cancel();
    expiry->cancel();
    log::emit(log::Level::error, "", "lease lost", {{"lease", ns + "/" + name}, {"why", why}});
    Vm* v = vm;
    std::string what = "the cluster lease " + ns + "/" + name + " was lost (" + why + ")";
    if (on_lost_ref != LUA_NOREF) {
      // The runbook's handler runs as a task of its own; if it raises, the run stops as without one.
      lua_rawgeti(v->L, LUA_REGISTRYINDEX, on_lost_ref);
      lua_pushstring(v->L, why.c_str());
      spawn(*v, v->L, 1, "", [v, what](Task& t, bool ok) {
        if (ok) return;
        log::emit(log::Level::error, "", "the lease's on_lost handler failed", {{"error", error_text(t.co)}});
        v->lease_lost = what;
        v->draining = true;
        asio::post(v->io, [v] { cancel_all(*v, Interrupt::lease_lost); });
      });
      return;
    }
    v->lease_lost = what;
    v->draining = true;
    // Posted: lose() may be called from inside a running task (guard()), which must not resume others.
    asio::post(v->io, [v] { cancel_all(*v, Interrupt::lease_lost); });
  }

  // Clears the holder so the next run need not wait out the TTL. Fire and forget: the runtime
  // lets in-flight requests finish before it ends.
  void release(std::function<void(bool)> done = nullptr) {
    if (!held) {
      if (done) done(true);
      return;
    }
    held = false;
    hold->held = false;
    timer->cancel();
    expiry->cancel();
    json obj = current;
    obj["spec"]["holderIdentity"] = "";
    obj["spec"]["leaseDurationSeconds"] = 1;
    auto self = shared_from_this();
    api->call("PUT", path, obj.dump(), {}, [self, done](k8s::Reply r) {
      if (r.error.empty()) log::emit(log::Level::info, "", "lease released", {{"lease", self->ns + "/" + self->name}});
      else log::emit(log::Level::warn, "", "lease release failed", {{"lease", self->name}, {"error", r.error}});
      if (done) done(r.error.empty());
    });
  }
};

struct LeaseBox {
  std::shared_ptr<Lease> l;
};

LeaseBox* check(lua_State* L) { return static_cast<LeaseBox*>(luaL_checkudata(L, 1, kLeaseMeta)); }

// lease:release() → true | nil, err   (yields until the server has it)
int l_release(lua_State* L) {
  auto* box = check(L);
  auto l = box->l;
  if (!l || !l->held) {
    lua_pushboolean(L, 1);
    return 1;
  }
  {
    Op op = begin(L, "lease:release");
    l->release([op](bool ok) {
      complete(op, [ok](lua_State* co) {
        if (ok) {
          lua_pushboolean(co, 1);
          return 1;
        }
        lua_pushnil(co);
        lua_pushstring(co, "failed");
        return 2;
      });
    });
    arm(op, nothing_to_undo);  // the release goes on: giving the lease back early is what was wanted
  }
  return suspend(L);
}

// __close and __gc: release without waiting.
int l_close(lua_State* L) {
  auto* box = check(L);
  if (box->l) box->l->release();
  return 0;
}

int l_gc(lua_State* L) {
  l_close(L);
  auto* box = check(L);
  if (box->l && box->l->on_lost_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, box->l->on_lost_ref);
    box->l->on_lost_ref = LUA_NOREF;
  }
  box->~LeaseBox();
  return 0;
}

int l_index(lua_State* L) {
  auto* box = check(L);
  std::string key = luaL_checkstring(L, 2);
  if (key == "held") lua_pushboolean(L, box->l && box->l->held);
  else if (key == "lost") lua_pushboolean(L, box->l && box->l->lost);
  else if (key == "name") lua_pushstring(L, box->l ? box->l->name.c_str() : "");
  else if (key == "holder") lua_pushstring(L, box->l ? box->l->identity.c_str() : "");
  else if (key == "release") push_fn(L, l_release);
  else lua_pushnil(L);
  return 1;
}

// A lease's name and namespace reach a URL path: DNS-1123 labels and subdomains only.
bool dns1123(const std::string& s, bool dots) {
  if (s.empty() || s.size() > (dots ? 253u : 63u)) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    bool inner = c == '-' || (dots && c == '.');
    if (!alnum && !(inner && i > 0 && i + 1 < s.size())) return false;
  }
  return true;
}

// api.lease(name, {ttl = seconds, namespace = "kube-system", on_lost = function(why)}) → lease | nil, "held", message
int l_lease(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  int ttl = 60;
  std::string ns = "kube-system";
  int on_lost_ref = LUA_NOREF;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_options(L, 2, {"ttl", "namespace", "on_lost"}, "k8s.lease");
    int t = lua_getfield(L, 2, "ttl");
    if (t == LUA_TNUMBER) ttl = static_cast<int>(lua_tointeger(L, -1));
    else if (t != LUA_TNIL) luaL_error(L, "k8s.lease: ttl must be a number of seconds");
    lua_pop(L, 1);
    t = lua_getfield(L, 2, "namespace");
    if (t == LUA_TSTRING) ns = lua_tostring(L, -1);
    else if (t != LUA_TNIL) luaL_error(L, "k8s.lease: namespace must be a string");
    lua_pop(L, 1);
    t = lua_getfield(L, 2, "on_lost");
    if (t == LUA_TFUNCTION) on_lost_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else if (t != LUA_TNIL) luaL_error(L, "k8s.lease: on_lost must be a function(why)");
    else lua_pop(L, 1);
  }
  luaL_argcheck(L, ttl >= 3, 2, "ttl must be at least 3 seconds");
  if (!dns1123(name, true)) luaL_error(L, "k8s.lease: '%s' is not a valid lease name (lowercase letters, digits, '-' and '.')", name.c_str());
  if (!dns1123(ns, false)) luaL_error(L, "k8s.lease: '%s' is not a valid namespace (lowercase letters, digits and '-')", ns.c_str());
  k8s::Api& api = k8s_api(L);
  Vm& vm = vm_of(L);
  auto lease = std::make_shared<Lease>();
  lease->api = api.shared_from_this();
  lease->vm = &vm;
  lease->ns = ns;
  lease->name = name;
  lease->ttl = ttl;
  lease->on_lost_ref = on_lost_ref;
  lease->hold->handled = on_lost_ref != LUA_NOREF;
  lease->identity = vm.run_id.empty() ? "engine" : vm.run_id;
  lease->path = "/apis/coordination.k8s.io/v1/namespaces/" + ns + "/leases/" + name;
  lease->timer = std::make_unique<boost::asio::steady_timer>(vm.io);
  lease->expiry = std::make_unique<boost::asio::steady_timer>(vm.io);
  lease->hold->name = ns + "/" + name;
  std::weak_ptr<Lease> weak = lease;
  lease->hold->lose = [weak](const std::string& why) {
    if (auto l = weak.lock()) l->lose(why);
  };
  {
    Op op = begin(L, "k8s.lease");
    lease->acquire([op, lease](bool ok, std::string err, std::string msg) {
      if (lease->abandoned) {
        // The waiting task was cancelled or timed out: a lease taken for nobody is given back.
        if (ok) lease->release();
        if (lease->on_lost_ref != LUA_NOREF) luaL_unref(lease->vm->L, LUA_REGISTRYINDEX, lease->on_lost_ref);
        return;
      }
      complete(op, [ok, err, msg, lease](lua_State* co) {
        if (!ok) {
          if (lease->on_lost_ref != LUA_NOREF) luaL_unref(co, LUA_REGISTRYINDEX, lease->on_lost_ref);
          lease->on_lost_ref = LUA_NOREF;
          lua_pushnil(co);
          lua_pushstring(co, err.c_str());
          lua_pushstring(co, msg.c_str());
          return 3;
        }
        auto* box = static_cast<LeaseBox*>(lua_newuserdatauv(co, sizeof(LeaseBox), 0));
        new (box) LeaseBox{lease};
        lease->vm->leases.push_back(lease->hold);
        luaL_setmetatable(co, kLeaseMeta);
        return 1;
      });
    });
    arm(op, [lease] { lease->abandoned = true; });
  }
  return suspend(L);
}

const luaL_Reg kLeaseMethods[] = {{"__index", l_index}, {"__close", l_close}, {"__gc", l_gc}, {nullptr, nullptr}};
const luaL_Reg kLeaseFunctions[] = {{"lease", l_lease}, {nullptr, nullptr}};

}  // namespace

void add_lease(lua_State* L) {
  if (luaL_newmetatable(L, kLeaseMeta)) set_funcs(L, kLeaseMethods);
  lua_pop(L, 1);
  set_funcs(L, kLeaseFunctions);
}

}  // namespace engine::lua
