// OpenSSH known_hosts: plain and hashed (|1|salt|hash) entries, `[host]:port`, wildcards and
// negations, @revoked. Parsed once per file and shared by every session.
#pragma once
#include <openssl/sha.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace engine::ssh {

enum class HostKeyPolicy { strict, accept_new, off };

struct KnownKey {
  std::string type;  // "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ...
  std::string blob;  // base64, as in the file
};

enum class KeyCheck { match, unknown, changed, revoked };

class KnownHosts {
 public:
  // Reads the file; a missing file is an empty list. Malformed lines are skipped, as OpenSSH does.
  static std::shared_ptr<const KnownHosts> load(const std::string& path);
  static std::shared_ptr<const KnownHosts> parse(const std::string& text);

  // The keys recorded for host:port (port 22 is written without brackets).
  std::vector<KnownKey> keys_for(const std::string& host, int port) const;
  // An exact match of type and key counts; any other key for the host is a change; a key
  // marked @revoked is refused.
  KeyCheck check(const std::string& host, int port, const KnownKey& presented) const;

  // The line accept-new appends: "[host]:port type blob" (plain, so a person can read it).
  static std::string line_for(const std::string& host, int port, const KnownKey& key);
  // Appends the line to the file (created 0600 if missing). Throws std::runtime_error on failure.
  static void append(const std::string& path, const std::string& line);

 private:
  struct Entry {
    bool revoked = false;
    bool hashed = false;
    std::string salt, hash;             // hashed: raw bytes
    // hashed: HMAC-SHA1 keyed with the salt, its two SHA-1 states after the padded key, made once
    // at parse: a name is then checked with two SHA-1 blocks, no key setup, no allocation. Each
    // host of a fan-out is checked against every hashed line (Debian's ssh hashes by default).
    SHA_CTX inner{}, outer{};
    std::vector<std::string> patterns;  // plain: "host", "[host]:port", "*.example", "!bad"
    KnownKey key;
  };
  bool matches(const Entry& e, const std::string& name) const;
  // The lines (not revoked) that name matches, remembered for the file version's life (up to kMemo
  // names, then started again).
  std::vector<uint32_t> lines_for(const std::string& name) const;
  std::vector<Entry> entries_;
  static constexpr size_t kMemo = 100000;
  mutable std::mutex memo_mu_;
  mutable std::unordered_map<std::string, std::vector<uint32_t>> memo_;
};

// "host" for port 22, else "[host]:port": the name known_hosts records.
std::string known_hosts_name(const std::string& host, int port);

std::string base64_encode(const unsigned char* data, size_t len);
std::string base64_decode(const std::string& text);

}  // namespace engine::ssh
