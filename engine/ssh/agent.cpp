#include "engine/ssh/agent.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/ssh/wire.hpp"

namespace engine::ssh {

namespace {

constexpr uint8_t kSignRequest = 13, kSignResponse = 14;  // SSH2_AGENTC_SIGN_REQUEST, SSH2_AGENT_SIGN_RESPONSE
constexpr int kTimeoutMs = 30000;  // an agent that confirms each use (ssh-add -c) waits for a person

bool io(int fd, char* buf, size_t n, bool write) {
  while (n > 0) {
    pollfd p{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0};
    if (::poll(&p, 1, kTimeoutMs) <= 0) return false;
    ssize_t k = write ? ::send(fd, buf, n, MSG_NOSIGNAL) : ::recv(fd, buf, n, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k <= 0) return false;
    buf += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

}  // namespace

std::optional<std::string> agent_sign(const std::string& socket, const std::string& key_blob, const std::string& data,
                                      uint32_t flags, std::string* error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.size() >= sizeof addr.sun_path) return *error = "SSH_AUTH_SOCK path too long", std::nullopt;
  std::memcpy(addr.sun_path, socket.c_str(), socket.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return *error = std::string("socket: ") + std::strerror(errno), std::nullopt;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return *error = "cannot connect to the agent at " + socket + ": " + std::strerror(errno), std::nullopt;

  std::string body(1, static_cast<char>(kSignRequest));
  wire::put_str(body, key_blob);
  wire::put_str(body, data);
  wire::put_u32(body, flags);
  std::string msg;
  wire::put_str(msg, body);
  if (!io(fd, msg.data(), msg.size(), true)) return *error = "the agent did not take the request", std::nullopt;
  std::string len(4, '\0');
  if (!io(fd, len.data(), 4, false)) return *error = "the agent did not answer", std::nullopt;
  wire::Reader lr{len};
  uint32_t n = lr.u32();
  if (n == 0 || n > 256 * 1024) return *error = "the agent's answer is malformed", std::nullopt;
  std::string reply(n, '\0');
  if (!io(fd, reply.data(), n, false)) return *error = "the agent's answer was cut short", std::nullopt;
  wire::Reader r{reply};
  if (r.u8() != kSignResponse) return *error = "the agent refused to sign", std::nullopt;
  std::string sig = r.str();
  wire::Reader s{sig};
  std::string alg = s.str(), raw = s.str();
  if (!r.ok || !s.ok) return *error = "the agent's signature is malformed", std::nullopt;
  std::string want = flags & kAgentRsaSha2_512 ? "rsa-sha2-512" : flags & kAgentRsaSha2_256 ? "rsa-sha2-256" : alg;
  if (alg != want) return *error = "the agent signed with " + alg + ", not " + want, std::nullopt;
  return raw;
}

}  // namespace engine::ssh
