// YAML documents as JSON values, with the scalar typing Ansible (PyYAML, YAML 1.1) gives them:
// plain `yes`/`on` are booleans, `0x1F` an integer, quoted scalars stay strings.
#pragma once
#include <string>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace engine::yaml {

// A typed value for one node (maps, sequences and scalars, recursively).
nlohmann::json to_json(const YAML::Node& node);

// One YAML document for a value, keys sorted; a string that would read back as another type
// ("true", "1.30", "") is double-quoted, so to_json(Load(dump(v))) == v.
std::string dump(const nlohmann::json& value);

// Parses a whole file. Throws ConfigError "file:line:column: message" on malformed YAML.
YAML::Node load_file(const std::string& path);

// "file:line:column" for a node (yaml-cpp counts from 0; people count from 1).
std::string where(const std::string& file, const YAML::Node& node);

}  // namespace engine::yaml
