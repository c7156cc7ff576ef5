// SHA-256 of files and strings, hex: run records, snapshot checks.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace engine {

std::optional<std::string> sha256_file(const std::string& path);
std::string sha256_hex(std::string_view data);
// Lowercase hex of bytes.
std::string hex(const unsigned char* bytes, size_t n);

}  // namespace engine
