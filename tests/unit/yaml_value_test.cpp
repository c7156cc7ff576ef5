// yaml::dump writes what yaml::to_json reads back unchanged: the ClusterConfiguration that
// etcd-to-systemd rewrites must keep every field and every field's type (seed 003, IR-1).
#include <catch2/catch.hpp>

#include "engine/core/yaml_value.hpp"

using engine::yaml::dump;
using engine::yaml::to_json;
using nlohmann::json;

TEST_CASE("yaml dump reads back as the same value, types kept") {
  json v = json::parse(R"({
    "apiVersion": "kubeadm.k8s.io/v1beta4", "kubernetesVersion": "v1.33.1",
    "apiServer": {"extraArgs": [{"name": "profiling", "value": "false"}, {"name": "audit-log-maxage", "value": "30"}],
                  "certSANs": []},
    "quoted": ["true", "yes", "on", "null", "~", "", "1.30", "0755", "0x1F", "1e3", ".inf", "a: b", "- x", "#c", "multi\nline"],
    "typed": [true, false, null, 7, -3, 1.5],
    "y": "n", "empty": {}
  })");
  std::string text = dump(v);
  CHECK(to_json(YAML::Load(text)) == v);
  CHECK(text.find("value: \"false\"") != std::string::npos);
  CHECK(text.find("certSANs: []") != std::string::npos);
  CHECK(text.find("\"y\": n") == std::string::npos);  // a key "y" is a boolean to YAML 1.1 readers: quoted
}

TEST_CASE("yaml dump of a scalar and of an empty document") {
  CHECK(to_json(YAML::Load(dump(json("1.30")))) == json("1.30"));
  CHECK(to_json(YAML::Load(dump(json::object()))) == json::object());
}
