// Private keys parsed once per run. libssh2's file loader re-reads and re-parses the key for every
// connection, through OpenSSL 3's decoder probing: most of the client's CPU in a wide fan-out.
// Unencrypted OpenSSH ed25519 keys are parsed here once and sign through a callback; any other key
// (RSA, ECDSA, encrypted) goes to libssh2's loader as before.
#pragma once
#include <memory>
#include <string>

namespace engine::ssh {

struct LoadedKey {
  std::string public_blob;  // the SSH wire form: string "ssh-ed25519", string key
  void* pkey = nullptr;     // EVP_PKEY*
  ~LoadedKey();
};

// nullptr when the file is not an unencrypted OpenSSH ed25519 key (or cannot be read).
std::shared_ptr<const LoadedKey> load_fast_key(const std::string& path);

// The libssh2 sign callback for a LoadedKey (passed as *abstract).
int sign_with_loaded_key(void* session, unsigned char** sig, size_t* sig_len, const unsigned char* data,
                         size_t data_len, void** abstract);

}  // namespace engine::ssh
