#include "engine/ssh/error.hpp"

namespace engine::ssh {

const char* word(Error e) {
  switch (e) {
    case Error::timeout: return "timeout";
    case Error::refused: return "refused";
    case Error::unreachable: return "unreachable";
    case Error::auth_failed: return "auth failed";
    case Error::host_key_unknown: return "host key unknown";
    case Error::host_key_changed: return "host key changed";
    case Error::closed: return "closed";
    case Error::sudo_failed: return "sudo failed";
    case Error::weak_crypto: return "weak crypto";
    case Error::not_found: return "not found";
    case Error::permission_denied: return "permission denied";
    case Error::failed: return "failed";
  }
  return "failed";
}

}  // namespace engine::ssh
