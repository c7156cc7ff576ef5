// The SSH wire encoding (RFC 4251 §5): uint32 and length-prefixed strings, as key files, key blobs
// and the ssh-agent protocol use them.
#pragma once
#include <cstdint>
#include <string>

namespace engine::ssh::wire {

// Reads uint32s and strings out of a buffer; any overrun makes ok false (and returns zero / empty).
struct Reader {
  const std::string& b;
  size_t pos = 0;
  bool ok = true;
  uint32_t u32() {
    if (pos + 4 > b.size()) return ok = false, 0;
    auto p = reinterpret_cast<const unsigned char*>(b.data() + pos);
    pos += 4;
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
  }
  uint8_t u8() {
    if (pos + 1 > b.size()) return ok = false, 0;
    return static_cast<uint8_t>(b[pos++]);
  }
  std::string str() {
    uint32_t n = u32();
    if (!ok || n > b.size() - pos) return ok = false, std::string();
    std::string s = b.substr(pos, n);
    pos += n;
    return s;
  }
};

inline void put_u32(std::string& out, uint32_t v) {
  out += static_cast<char>(v >> 24);
  out += static_cast<char>(v >> 16);
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v);
}

inline void put_str(std::string& out, const std::string& s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

}  // namespace engine::ssh::wire
