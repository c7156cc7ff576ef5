// A signature from ssh-agent with the flags libssh2 1.10 cannot send: its own agent client asks
// for plain ssh-rsa (SHA-1) signatures, which OpenSSH 8.8+ refuses. Listing identities stays with
// libssh2; this only signs. The agent is a local socket, so the round trip blocks the loop briefly,
// as libssh2's own agent calls do.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace engine::ssh {

inline constexpr uint32_t kAgentRsaSha2_256 = 2, kAgentRsaSha2_512 = 4;  // SSH_AGENT_RSA_SHA2_*

// The raw signature (without its algorithm name), or nullopt with *error saying why.
std::optional<std::string> agent_sign(const std::string& socket, const std::string& key_blob, const std::string& data,
                                      uint32_t flags, std::string* error);

}  // namespace engine::ssh
