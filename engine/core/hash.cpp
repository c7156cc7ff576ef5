#include "engine/core/hash.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <memory>

namespace engine {

std::string hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += d[p[i] >> 4], out += d[p[i] & 15];
  return out;
}

std::optional<std::string> sha256_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  // Large reads for snapshots of gigabytes; left unfilled, so a runbook of a few KB (hashed at
  // every run's start) touches a page or two of it instead of faulting in the whole MiB.
  constexpr size_t kChunk = 1 << 20;
  auto buf = std::make_unique_for_overwrite<char[]>(kChunk);
  ssize_t n;
  while ((n = ::read(fd, buf.get(), kChunk)) > 0) EVP_DigestUpdate(ctx, buf.get(), static_cast<size_t>(n));
  ::close(fd);
  unsigned char out[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, out, &len);
  EVP_MD_CTX_free(ctx);
  if (n < 0) return std::nullopt;
  return hex(out, 32);
}

std::string sha256_hex(std::string_view data) {
  unsigned char out[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return hex(out, 32);
}

}  // namespace engine
