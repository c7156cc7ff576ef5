// ssh.tunnel(host, remote_host, remote_port): a local 127.0.0.1 port forwarded through the host.
#include "bindings/ssh.hpp"

namespace engine::lua {
void add_tunnel(lua_State*) {}
}  // namespace engine::lua
