// A Kubernetes API path, built in one place: "/api/v1/namespaces/NS/pods/NAME/SUB". A name reaches
// the path only if the API could hold it (no '/', no '%', not "." or "..": the API server's
// path-segment rule) and then escaped as kubectl escapes it; a namespace is a DNS-1123 label.
// k8s.cordon("zz/../w1") must not cordon w1.
#pragma once
#include <optional>
#include <stdexcept>
#include <string>

#include "engine/k8s/api.hpp"

namespace engine::k8s {

bool valid_name(const std::string& name);
bool valid_namespace(const std::string& ns);

// Throws std::invalid_argument ("\"a/b\" is not a valid Node name") for a name or namespace the
// API could not hold ("" among them). ns is ignored for a cluster-scoped kind, and "" means every
// namespace; no name is the collection.
std::string resource_path(const Resource& r, const std::string& ns = "", const std::optional<std::string>& name = std::nullopt,
                          const std::string& sub = "");

}  // namespace engine::k8s
