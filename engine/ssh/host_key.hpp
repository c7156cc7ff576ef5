// Host key verification against known_hosts, before authentication sends anything.
#pragma once
#include "engine/ssh/error.hpp"

namespace engine::ssh {

class Session;

// Orders the host key algorithms so the server presents a key type known_hosts already has for it,
// as OpenSSH does; otherwise a host known by its ed25519 key could show its ECDSA key and look new.
void prefer_known_key_types(Session& s);

// Checks the key the server presented under the target's policy: strict refuses an unknown or
// changed key, accept-new records an unknown one (still refusing a changed one), off warns.
Result check_host_key(Session& s);

}  // namespace engine::ssh
