// What can go wrong talking to a host over SSH, as the stable lowercase words runbooks see.
#pragma once
#include <optional>
#include <string>

namespace engine::ssh {

enum class Error {
  timeout,           // the connect, the handshake or the command took longer than allowed
  refused,           // nothing listens on the port
  unreachable,       // no route, name does not resolve, network down
  auth_failed,       // every method was tried and refused
  host_key_unknown,  // strict policy and the host is not in known_hosts
  host_key_changed,  // known_hosts has another key for the host
  closed,            // the connection died (mid-command: the command may or may not have run)
  sudo_failed,       // sudo refused (no rights, wrong password)
  weak_crypto,       // the server offers no cryptography the engine accepts (before authentication)
  not_found,         // SFTP: no such file
  permission_denied, // SFTP: the login user may not do that
  failed,            // anything else the remote side refused (SFTP: permission, missing file)
};

const char* word(Error e);

struct Failure {
  Error kind;
  std::string detail;  // for the log: "connect 127.0.0.1:2222: Connection refused"
  // The connection went before the request reached the server (an exec's channel was not open
  // yet): nothing ran there, so the request may be made again on a new connection.
  bool not_sent = false;
};

using Result = std::optional<Failure>;  // nullopt: success

}  // namespace engine::ssh
