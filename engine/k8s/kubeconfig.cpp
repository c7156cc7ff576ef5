#include "engine/k8s/kubeconfig.hpp"

#include <cstdlib>
#include <numeric>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/core/errors.hpp"
#include "engine/core/text.hpp"
#include "engine/core/yaml_value.hpp"
#include "engine/ssh/known_hosts.hpp"

namespace fs = std::filesystem;

namespace engine::k8s {

namespace {

using json = nlohmann::json;

std::string read_file(const std::string& path, const std::string& why) {
  std::ifstream f(path);
  if (!f) throw ConfigError(why + ": cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string resolve_path(const std::string& p, const std::string& config_file) {
  if (p.empty() || fs::path(p).is_absolute()) return p;
  return (fs::path(config_file).parent_path() / p).string();
}

struct Named {
  json value;
  std::string file;
};

// Merges the named lists (clusters, users, contexts): the first file to define a name wins.
void merge_named(std::map<std::string, Named>& into, const json& list, const std::string& file) {
  if (!list.is_array()) return;
  for (const auto& item : list) {
    if (!item.is_object() || !item.contains("name")) continue;
    std::string name = item["name"].is_string() ? item["name"].get<std::string>() : item["name"].dump();
    into.try_emplace(name, Named{item, file});
  }
}

std::string str(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::vector<std::string> default_kubeconfig_paths() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
    for (auto& p : text::split(env, ':'))
      if (!p.empty()) out.push_back(p);
    return out;
  }
  const char* home = std::getenv("HOME");
  out.push_back(std::string(home ? home : "") + "/.kube/config");
  return out;
}

namespace {

// The cluster, user and context the kubeconfig documents name (each with the file it came from).
Cluster pick(const std::vector<std::pair<json, std::string>>& docs, const std::string& context_flag);

}  // namespace

Cluster load_kubeconfig(const std::vector<std::string>& given, const std::string& context_flag) {
  std::vector<std::string> paths = given.empty() ? default_kubeconfig_paths() : given;
  std::vector<std::pair<json, std::string>> docs;
  for (const auto& p : paths) {
    if (!fs::exists(p)) continue;  // kubectl skips missing files in $KUBECONFIG
    docs.emplace_back(yaml::to_json(yaml::load_file(p)), p);
  }
  if (docs.empty()) throw ConfigError("no kubeconfig found (looked at " + text::trim(std::accumulate(paths.begin(), paths.end(), std::string(),
                                  [](std::string a, const std::string& b) { return a + " " + b; })) + ")");
  return pick(docs, context_flag);
}

Cluster load_kubeconfig_data(const std::string& yaml_text, const std::string& context, const std::string& origin) {
  YAML::Node node;
  try {
    node = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  return pick({{yaml::to_json(node), origin}}, context);
}

namespace {

Cluster pick(const std::vector<std::pair<json, std::string>>& docs, const std::string& context_flag) {
  std::map<std::string, Named> clusters, users, contexts;
  std::string current;
  for (const auto& [doc, p] : docs) {
    if (!doc.is_object()) throw ConfigError(p + ": not a kubeconfig (expected a mapping)");
    if (current.empty()) current = str(doc, "current-context");
    merge_named(clusters, doc.value("clusters", json()), p);
    merge_named(users, doc.value("users", json()), p);
    merge_named(contexts, doc.value("contexts", json()), p);
  }
  std::string ctx_name = context_flag.empty() ? current : context_flag;
  if (ctx_name.empty()) throw ConfigError("kubeconfig has no current-context; name one with --context");
  auto ctx_it = contexts.find(ctx_name);
  if (ctx_it == contexts.end()) {
    std::vector<std::string> names;
    for (auto& [n, _] : contexts) names.push_back(n);
    throw ConfigError("kubeconfig has no context '" + ctx_name + "'" + text::did_you_mean(ctx_name, names));
  }
  json ctx = ctx_it->second.value.value("context", json::object());
  Cluster c;
  c.context = ctx_name;
  if (auto ns = str(ctx, "namespace"); !ns.empty()) c.default_namespace = ns;

  std::string cluster_name = str(ctx, "cluster"), user_name = str(ctx, "user");
  auto cl = clusters.find(cluster_name);
  if (cl == clusters.end()) throw ConfigError("context '" + ctx_name + "' names cluster '" + cluster_name + "', which no kubeconfig defines");
  json cluster = cl->second.value.value("cluster", json::object());
  const std::string& cfile = cl->second.file;
  c.server = str(cluster, "server");
  if (c.server.empty()) throw ConfigError(cfile + ": cluster '" + cluster_name + "' has no server");
  if (cluster.value("insecure-skip-tls-verify", false)) c.tls.insecure = true;
  if (auto d = str(cluster, "certificate-authority-data"); !d.empty()) c.tls.ca_data = ssh::base64_decode(d);
  else if (auto f = str(cluster, "certificate-authority"); !f.empty()) c.tls.ca_file = resolve_path(f, cfile);

  if (!user_name.empty()) {
    auto us = users.find(user_name);
    if (us == users.end()) throw ConfigError("context '" + ctx_name + "' names user '" + user_name + "', which no kubeconfig defines");
    json user = us->second.value.value("user", json::object());
    const std::string& ufile = us->second.file;
    if (auto d = str(user, "client-certificate-data"); !d.empty()) c.tls.cert_data = ssh::base64_decode(d);
    else if (auto f = str(user, "client-certificate"); !f.empty()) c.tls.cert_file = resolve_path(f, ufile);
    if (auto d = str(user, "client-key-data"); !d.empty()) c.tls.key_data = ssh::base64_decode(d);
    else if (auto f = str(user, "client-key"); !f.empty()) c.tls.key_file = resolve_path(f, ufile);
    c.token = str(user, "token");
    if (auto f = str(user, "tokenFile"); !f.empty()) c.token_file = resolve_path(f, ufile);
    if (user.contains("exec") && user["exec"].is_object()) {
      const json& e = user["exec"];
      ExecPlugin p;
      p.command = resolve_path(str(e, "command"), ufile);
      if (str(e, "command").find('/') == std::string::npos) p.command = str(e, "command");  // looked up on PATH
      p.api_version = str(e, "apiVersion");
      for (const auto& a : e.value("args", json::array()))
        if (a.is_string()) p.args.push_back(a.get<std::string>());
      for (const auto& kv : e.value("env", json::array()))
        if (kv.is_object()) p.env.emplace_back(str(kv, "name"), str(kv, "value"));
      if (p.command.empty()) throw ConfigError(ufile + ": user '" + user_name + "' exec has no command");
      c.exec = p;
    }
    c.impersonate_user = str(user, "as");
    c.impersonate_uid = str(user, "as-uid");
    for (const auto& g : user.value("as-groups", json::array()))
      if (g.is_string()) c.impersonate_groups.push_back(g.get<std::string>());
    // An option we cannot honour is an error, never silently dropped.
    if (user.contains("as-user-extra")) throw ConfigError(ufile + ": user '" + user_name + "': as-user-extra is not supported");
    if (user.contains("auth-provider"))
      throw ConfigError(ufile + ": user '" + user_name + "': auth-provider is not supported (kubectl removed it too; use an exec plugin)");
  }
  c.proxy_url = str(cluster, "proxy-url");
  if (auto name = str(cluster, "tls-server-name"); !name.empty()) c.tls.server_name = name;
  return c;
}

}  // namespace

std::optional<Cluster> in_cluster(std::string root) {
  if (root.empty()) {
    const char* dir = std::getenv("ENGINE_SERVICEACCOUNT_DIR");
    root = dir && *dir ? dir : "/var/run/secrets/kubernetes.io/serviceaccount";
  }
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !port || !fs::exists(root + "/token")) return std::nullopt;
  Cluster c;
  c.context = "in-cluster";
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  c.server = "https://" + h + ":" + port;
  c.tls.ca_file = root + "/ca.crt";
  c.token_file = root + "/token";
  if (fs::exists(root + "/namespace")) c.default_namespace = text::trim(read_file(root + "/namespace", "in-cluster namespace"));
  return c;
}

}  // namespace engine::k8s
