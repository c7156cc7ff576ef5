// The certificate chain a TLS endpoint presents, as a client that trusts nothing and shows no
// certificate of its own sees it: what is really served, whatever the files on the node say (a
// renewed certificate is not served until its process restarts).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "engine/tls/x509.hpp"

namespace engine::tls {

struct Served {
  std::vector<CertInfo> chain;  // as sent: the server's certificate first
  std::string word;             // "" on success; "timeout", "refused", "unreachable", "not tls"
  std::string message;
};

// Connects to host:port and does a TLS handshake with server_name as SNI (none for an IP address
// or ""). `done` runs once, from the loop, unless the returned cancel ran first. The chain is
// taken as soon as the server sent it: a server that then refuses a client without a certificate
// (etcd's peer port) still shows it.
std::function<void()> served(boost::asio::io_context& io, const std::string& host, uint16_t port,
                             const std::string& server_name, double timeout, std::function<void(Served)> done);

}  // namespace engine::tls
