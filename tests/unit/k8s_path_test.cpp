// Kubernetes API paths (built once, in engine/k8s/path) and the escapes every HTTP client shares.
#include <catch2/catch.hpp>

#include "engine/http/escape.hpp"
#include "engine/k8s/path.hpp"

using engine::k8s::Resource;
using engine::k8s::resource_path;

TEST_CASE("paths for core and grouped kinds, namespaced or not") {
  Resource pods{"", "v1", "pods", "Pod", true};
  Resource nodes{"", "v1", "nodes", "Node", false};
  Resource deploys{"apps", "v1", "deployments", "Deployment", true};
  CHECK(resource_path(pods) == "/api/v1/pods");
  CHECK(resource_path(pods, "kube-system", std::string("etcd-cp1"), "eviction") ==
        "/api/v1/namespaces/kube-system/pods/etcd-cp1/eviction");
  CHECK(resource_path(nodes, "ignored", std::string("w1")) == "/api/v1/nodes/w1");
  CHECK(resource_path(deploys, "shop", std::string("web")) == "/apis/apps/v1/namespaces/shop/deployments/web");
  Resource roles{"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false};
  CHECK(resource_path(roles, "", std::string("system:kube-scheduler")) ==
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:kube-scheduler");
}

TEST_CASE("a name or namespace the API could not hold never reaches the path") {
  Resource nodes{"", "v1", "nodes", "Node", false};
  Resource pods{"", "v1", "pods", "Pod", true};
  CHECK_THROWS_WITH(resource_path(nodes, "", std::string("zz/../w1")), "\"zz/../w1\" is not a valid Node name");
  CHECK_THROWS_WITH(resource_path(pods, "default", std::string("..")), "\"..\" is not a valid Pod name");
  CHECK_THROWS_WITH(resource_path(pods, "default", std::string("")), "\"\" is not a valid Pod name");
  CHECK_THROWS_WITH(resource_path(pods, "default", std::string("x%2F..%2Fy")), "\"x%2F..%2Fy\" is not a valid Pod name");
  CHECK_THROWS_WITH(resource_path(pods, "a/../kube-system", std::string("p")),
                    "\"a/../kube-system\" is not a valid namespace (a DNS-1123 label)");
  CHECK_THROWS(resource_path(pods, "Default"));
  CHECK_THROWS(resource_path(pods, "ns-"));
  CHECK(resource_path(pods, "default", std::string("a b?c#d")) == "/api/v1/namespaces/default/pods/a%20b%3Fc%23d");
}

TEST_CASE("escapes: query values, path segments as kubectl writes them, base64url") {
  CHECK(engine::http::query_escape("up{job=\"a b\"}") == "up%7Bjob%3D%22a%20b%22%7D");
  CHECK(engine::http::query_escape("A-z_0.9~") == "A-z_0.9~");
  CHECK(engine::http::path_escape("system:node:w1@x+y=$&") == "system:node:w1@x+y=$&");
  CHECK(engine::http::path_escape("a/b%c") == "a%2Fb%25c");
  CHECK(engine::http::base64url("") == "");
  CHECK(engine::http::base64url("f") == "Zg==");
  CHECK(engine::http::base64url("fo") == "Zm8=");
  CHECK(engine::http::base64url("foo") == "Zm9v");
  CHECK(engine::http::base64url("/a?\xff\xfe") == "L2E___4=");
}
