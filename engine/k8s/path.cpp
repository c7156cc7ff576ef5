#include "engine/k8s/path.hpp"

#include <cstdio>

#include "engine/http/escape.hpp"

namespace engine::k8s {

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%d", c);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace

bool valid_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  for (unsigned char c : name)
    if (c == '/' || c == '%' || c < 0x20 || c == 0x7f) return false;
  return true;
}

bool valid_namespace(const std::string& ns) {
  if (ns.empty() || ns.size() > 63 || ns.back() == '-') return false;
  for (size_t i = 0; i < ns.size(); ++i) {
    char c = ns[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
    if (!ok) return false;
  }
  return true;
}

std::string resource_path(const Resource& r, const std::string& ns, const std::optional<std::string>& name,
                          const std::string& sub) {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string here.
  std::string p = r.group.empty() ? "/api/" : "/apis/";
  if (!r.group.empty()) p.append(r.group).append("/");
  p.append(r.version);
  if (r.namespaced && !ns.empty()) {
    if (!valid_namespace(ns)) throw std::invalid_argument(quoted(ns).append(" is not a valid namespace (a DNS-1123 label)"));
    p.append("/namespaces/").append(ns);
  }
  p.append("/").append(r.plural);
  if (name) {
    if (!valid_name(*name)) throw std::invalid_argument(quoted(*name).append(" is not a valid ").append(r.kind).append(" name"));
    p.append("/").append(http::path_escape(*name));
  }
  if (!sub.empty()) p.append("/").append(sub);
  return p;
}

}  // namespace engine::k8s
