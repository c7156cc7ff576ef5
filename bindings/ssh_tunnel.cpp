// ssh.tunnel(host, remote_host, remote_port): a local 127.0.0.1 port forwarded through the host,
// so HTTP clients reach what listens on the node's own loopback (its apiserver, its etcd), as
// `ssh -L` does. Each accepted connection gets its own direct-tcpip channel; the tunnel lives until
// closed (tunnel:close(), a <close> variable, or the end of the run).
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bindings/ssh.hpp"
#include "engine/log/log.hpp"
#include "engine/ssh/forward.hpp"

namespace engine::lua {

namespace {

using tcp = boost::asio::ip::tcp;
const char* kTunnelMeta = "engine.tunnel";

struct Tunnel : std::enable_shared_from_this<Tunnel> {
  Tunnel(asio::io_context& io, ssh::Pool& pool, ssh::Target t, std::string rh, int rp)
      : acceptor(io), pool(pool), target(std::move(t)), remote_host(std::move(rh)), remote_port(rp) {}
  tcp::acceptor acceptor;
  ssh::Pool& pool;
  ssh::Target target;
  std::string remote_host;
  int remote_port;
  int port = 0;
  std::string last_error;  // why the latest forward failed (tunnel.last_error), "" when none did

  void accept() {
    auto self = shared_from_this();
    acceptor.async_accept([self](const boost::system::error_code& ec, tcp::socket sock) {
      if (ec) return;  // closed
      self->forward(std::move(sock));
      self->accept();
    });
  }

  // The client's connection as a plain descriptor, out of asio's hands (so never registered with
  // epoll): each try on a session bridges a duplicate of it; closed when the last try is done.
  struct Client {
    int fd = -1;
    ~Client() { close(); }
    void close() {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  };

  void forward(tcp::socket sock) {
    auto self = shared_from_this();
    auto shared = std::make_shared<Client>();
    boost::system::error_code rec;
    shared->fd = sock.release(rec);  // release, not close: asio deregisters it from epoll first
    if (shared->fd < 0) return;
    with_session(pool, target, [self, shared](std::shared_ptr<ssh::Session> s, ssh::Result r, Again again) {
      if (r) {
        log::emit(log::Level::warn, self->target.name, "tunnel connection failed", {{"error", ssh::word(r->kind)}, {"detail", r->detail}});
        self->last_error = std::string(ssh::word(r->kind)) + ": " + r->detail;
        return;  // the local client sees its connection close (shared goes with this callback)
      }
      // The bridge gets a duplicate of the client's connection, so that a session found gone before
      // its channel opened (nothing of the client's was sent yet) leaves `shared` to try on a new one.
      int fd = ::dup(shared->fd);
      if (fd < 0) {
        self->last_error = std::string("dup: ") + std::strerror(errno);
        log::emit(log::Level::warn, self->target.name, "tunnel connection failed", {{"detail", self->last_error}});
        return;
      }
      asio::generic::stream_protocol::socket local(s->io(), asio::generic::stream_protocol(AF_INET, IPPROTO_TCP), fd);
      ssh::bridge(s, self->remote_host, self->remote_port, std::move(local), [self, shared, again](ssh::Result r) {
        if (r && again(*r)) return;
        shared->close();  // the bridge's duplicate carries the connection now (or has closed it)
        if (!r) return;
        log::emit(log::Level::warn, self->target.name, "tunnel forward refused", {{"detail", r->detail}});
        self->last_error = r->detail;
      });
    });
  }

  void close() {
    boost::system::error_code ec;
    acceptor.close(ec);
  }
};

struct TunnelBox {
  std::shared_ptr<Tunnel> t;
};

TunnelBox* check_tunnel(lua_State* L) { return static_cast<TunnelBox*>(luaL_checkudata(L, 1, kTunnelMeta)); }

int tunnel_close(lua_State* L) {
  auto* box = check_tunnel(L);
  if (box->t) box->t->close();
  box->t.reset();
  return 0;
}

int tunnel_gc(lua_State* L) {
  auto* box = check_tunnel(L);
  if (box->t) box->t->close();
  box->~TunnelBox();
  return 0;
}

int tunnel_index(lua_State* L) {
  auto* box = check_tunnel(L);
  std::string key = luaL_checkstring(L, 2);
  if (key == "port") lua_pushinteger(L, box->t ? box->t->port : 0);
  else if (key == "host") lua_pushstring(L, "127.0.0.1");
  else if (key == "close") push_fn(L, tunnel_close);
  else if (key == "last_error" && box->t && !box->t->last_error.empty()) lua_pushstring(L, box->t->last_error.c_str());
  else lua_pushnil(L);
  return 1;
}

// ssh.tunnel(host, remote_host, remote_port) → tunnel {port, host, close} | nil, err, detail.
// Connects (or reuses the host's session) first, so a bad host fails here and not at first use.
int l_tunnel(lua_State* L) {
  std::string rh = luaL_checkstring(L, 2);
  lua_Integer rp = luaL_checkinteger(L, 3);
  luaL_argcheck(L, rp > 0 && rp < 65536, 3, "not a port");
  ssh::Target target = target_for(L, 1);
  Vm& vm = vm_of(L);
  {
    Op op = begin(L, "ssh.tunnel");
    SshState& st = ssh_state(vm);
    auto tunnel = std::make_shared<Tunnel>(vm.io, st.pool, target, rh, static_cast<int>(rp));
    auto cancelled = std::make_shared<bool>(false);
    st.pool.get(target, [op, tunnel, cancelled](std::shared_ptr<ssh::Session>, ssh::Result r) {
      if (*cancelled) {  // nobody waits for it: it never starts listening
        tunnel->close();
        return;
      }
      if (r) {
        complete(op, [f = *r](lua_State* co) {
          lua_pushnil(co);
          lua_pushstring(co, ssh::word(f.kind));
          lua_pushstring(co, f.detail.c_str());
          return 3;
        });
        return;
      }
      boost::system::error_code ec;
      tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
      tunnel->acceptor.open(ep.protocol(), ec);
      if (!ec) tunnel->acceptor.bind(ep, ec);
      if (!ec) tunnel->acceptor.listen(64, ec);
      if (ec) {
        complete(op, [msg = ec.message()](lua_State* co) {
          lua_pushnil(co);
          lua_pushstring(co, "failed");
          lua_pushstring(co, ("local listener: " + msg).c_str());
          return 3;
        });
        return;
      }
      tunnel->port = tunnel->acceptor.local_endpoint().port();
      tunnel->accept();
      log::emit(log::Level::debug, tunnel->target.name, "tunnel open",
                {{"local", "127.0.0.1:" + std::to_string(tunnel->port)},
                 {"remote", tunnel->remote_host + ":" + std::to_string(tunnel->remote_port)}});
      complete(op, [tunnel](lua_State* co) {
        auto* box = static_cast<TunnelBox*>(lua_newuserdatauv(co, sizeof(TunnelBox), 0));
        new (box) TunnelBox{tunnel};
        luaL_setmetatable(co, kTunnelMeta);
        return 1;
      });
    });
    arm(op, [cancelled] { *cancelled = true; });
  }
  return suspend(L);
}

const luaL_Reg kTunnelMethods[] = {{"__index", tunnel_index}, {"__gc", tunnel_gc}, {"__close", tunnel_close}, {nullptr, nullptr}};
const luaL_Reg kTunnelFunctions[] = {{"tunnel", l_tunnel}, {nullptr, nullptr}};

}  // namespace

void add_tunnel(lua_State* L) {
  if (luaL_newmetatable(L, kTunnelMeta)) set_funcs(L, kTunnelMethods);
  lua_pop(L, 1);
  set_funcs(L, kTunnelFunctions);
}

}  // namespace engine::lua
