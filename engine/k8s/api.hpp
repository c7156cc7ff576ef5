// The Kubernetes API over the one HTTP client: authentication (certificates, tokens, token files,
// exec credential plugins with their token cached until it expires), discovery (any kind by kind,
// plural, short or group-qualified name), and answers as JSON with stable lowercase error words.
#pragma once
#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/http/client.hpp"
#include "engine/k8s/kubeconfig.hpp"

namespace engine::k8s {

using json = nlohmann::json;

struct Reply {
  long status = 0;
  json body;           // parsed JSON, or a string when the body is not JSON
  std::string error;   // "" on 2xx; else "not found", "conflict", "forbidden", "unauthorized", "invalid",
                       // "too many requests", "server error", "timeout", "unreachable", "cancelled"
  std::string message; // the server's Status message, or the transport's
  std::map<std::string, std::string> headers;
};

struct Resource {
  std::string group, version, plural, kind;
  bool namespaced = false;
  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
};

struct CallOptions {
  std::string content_type = "application/json";
  double timeout = 30;
  double idle_timeout = 60;  // no byte for this long: "timeout" (0 for watches)
  bool retry = true;  // retries on 429/5xx; off where the caller handles 429 itself (evictions)
  std::function<bool(std::string_view)> on_data;  // streaming (watches)
  bool rate_limited = true;  // false: past the client-side limit (http::Request::rate_limited)
};

class Api : public std::enable_shared_from_this<Api> {
 public:
  // defer_to_apf: once the server shows it does API Priority and Fairness (its answers name their
  // flow schema), the client-side limit (opts) is lifted, as SIG API Machinery advises and
  // controller-runtime and Flux do: APF limits each client by the server's load and answers 429
  // with Retry-After, which every call honours. False when the runbook set qps or burst itself.
  Api(boost::asio::io_context& io, Cluster cluster, http::Options opts = {}, bool defer_to_apf = true);

  // method + path ("/api/v1/nodes?limit=500"); body sent as is.
  std::function<void()> call(const std::string& method, const std::string& path, std::string body, CallOptions opts,
                             std::function<void(Reply)> done);

  // Resolves "Node", "nodes", "node", "no", "deployments.apps", "Deployment" through discovery.
  void resource(const std::string& name, std::function<void(std::optional<Resource>, std::string error)> done);

  const Cluster& cluster() const { return cluster_; }
  uint64_t requests() const { return http_.requests_sent(); }
  http::Client& http() { return http_; }

 private:
  void with_token(std::function<void(std::string token, std::string error)> next);
  void run_exec_plugin(std::function<void(std::string token, std::string error)> next);
  void discover(std::function<void(std::string error)> done);

  boost::asio::io_context& io_;
  Cluster cluster_;
  http::Client http_;
  bool defer_to_apf_;
  std::string exec_token_;
  std::string exec_cert_, exec_key_;  // an ExecCredential's clientCertificateData / clientKeyData
  bool exec_have_ = false;            // a credential (token or certificate) is cached
  std::chrono::system_clock::time_point exec_expiry_{};
  std::vector<std::function<void(std::string, std::string)>> exec_waiting_;
  std::map<std::string, Resource> resources_;  // every name a resource answers to
  bool discovered_ = false;
  std::vector<std::function<void(std::string)>> discovery_waiting_;
};

// Error word for an HTTP status (and transport failure).
std::string error_word(long status, const http::Response& r);

}  // namespace engine::k8s
