// kubeconfig as kubectl reads it: $KUBECONFIG's files merged (the first file to set a map key or
// current-context wins), contexts and current-context, certificate-authority(-data),
// insecure-skip-tls-verify, client-certificate/key(-data), token, tokenFile, exec credential plugins;
// and the in-cluster service account, so the engine can run as a Job inside the cluster.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/http/client.hpp"

namespace engine::k8s {

struct ExecPlugin {
  std::string command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string api_version;  // client.authentication.k8s.io/v1 (or v1beta1)
};

// Where the API is and how to authenticate to it.
struct Cluster {
  std::string context;  // the context it came from ("in-cluster" for the service account)
  std::string server;   // https://host:port
  http::Tls tls;        // CA, client certificate and key (data held in memory)
  std::string token;
  std::string token_file;  // re-read on every request (rotated service-account tokens)
  std::optional<ExecPlugin> exec;
  std::string default_namespace = "default";
  std::string proxy_url;  // cluster proxy-url (http://, https://, socks5://)
  // user as / as-groups / as-uid: every request impersonates them, as kubectl --as does.
  std::string impersonate_user, impersonate_uid;
  std::vector<std::string> impersonate_groups;
};

// Loads `paths` (or $KUBECONFIG, or ~/.kube/config when empty) and picks `context` (or
// current-context). Relative file paths resolve against the file that names them. Throws
// ConfigError naming the file and what is missing.
Cluster load_kubeconfig(const std::vector<std::string>& paths, const std::string& context);
// A kubeconfig held in memory (read from a node's admin.conf): `origin` names it in errors.
// File paths inside it are used as they are.
Cluster load_kubeconfig_data(const std::string& yaml_text, const std::string& context, const std::string& origin);

// The service account a pod sees; nullopt outside a cluster. The directory is
// $ENGINE_SERVICEACCOUNT_DIR when set (a container with another mount point), else the standard one.
std::optional<Cluster> in_cluster(std::string root = "");

// $KUBECONFIG split on ':', or ~/.kube/config.
std::vector<std::string> default_kubeconfig_paths();

}  // namespace engine::k8s
