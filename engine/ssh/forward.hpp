// Carrying bytes between a libssh2 channel and a local stream socket: the one mechanism behind
// ProxyJump (an inner session talks to a socketpair whose other end is bridged to a direct-tcpip
// channel on the jump host) and behind ssh.tunnel (each accepted local connection is bridged).
#pragma once
#include <boost/asio/generic/stream_protocol.hpp>
#include <functional>
#include <memory>
#include <string>

#include "engine/ssh/error.hpp"

namespace engine::ssh {

class Session;

// Opens a direct-tcpip channel from `s` to host:port and bridges it to `local` until either side
// closes. `opened` runs once when the channel is open (or failed to open).
void bridge(const std::shared_ptr<Session>& s, const std::string& host, int port,
            boost::asio::generic::stream_protocol::socket local, std::function<void(Result)> opened);

}  // namespace engine::ssh
