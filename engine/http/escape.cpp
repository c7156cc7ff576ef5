#include "engine/http/escape.hpp"

#include <cstring>

namespace engine::http {

namespace {

bool unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

std::string escape(std::string_view s, const char* keep) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (unreserved(c) || (c && std::strchr(keep, c))) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

std::string query_escape(std::string_view s) { return escape(s, ""); }

std::string path_escape(std::string_view s) { return escape(s, ":@$&+="); }

std::string base64url(std::string_view s) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(s[i]) << 16) | (static_cast<unsigned char>(s[i + 1]) << 8) |
                 static_cast<unsigned char>(s[i + 2]);
    out += abc[v >> 18], out += abc[(v >> 12) & 63], out += abc[(v >> 6) & 63], out += abc[v & 63];
  }
  if (size_t left = s.size() - i; left > 0) {
    unsigned v = static_cast<unsigned char>(s[i]) << 16;
    if (left == 2) v |= static_cast<unsigned char>(s[i + 1]) << 8;
    out += abc[v >> 18], out += abc[(v >> 12) & 63];
    out += left == 2 ? abc[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace engine::http
