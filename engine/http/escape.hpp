// Percent-escaping and base64url, written once for every client: the Kubernetes API's paths and
// queries, Prometheus queries, the Pushgateway's grouping keys.
#pragma once
#include <string>
#include <string_view>

namespace engine::http {

// A query value: everything outside RFC 3986's unreserved set (A-Z a-z 0-9 - . _ ~) is escaped.
std::string query_escape(std::string_view s);
// A path segment as Go's url.PathEscape writes it (what kubectl sends): ':' '@' '$' '&' '+' '='
// stay as they are ("system:kube-scheduler"); '/' and everything else outside unreserved is escaped.
std::string path_escape(std::string_view s);
// RFC 4648 §5 base64url, with '=' padding (the Pushgateway's @base64 grouping values).
std::string base64url(std::string_view s);

}  // namespace engine::http
