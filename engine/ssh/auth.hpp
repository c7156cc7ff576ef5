// Authentication, in OpenSSH's order: key files, then ssh-agent, then password (or
// keyboard-interactive answering the password).
#pragma once
#include <functional>
#include <memory>

#include "engine/ssh/error.hpp"

namespace engine::ssh {

class Session;
class Op;

std::shared_ptr<Op> make_auth_op(Session& s, std::function<void(Result)> done);

}  // namespace engine::ssh
