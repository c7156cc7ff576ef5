// Private keys parsed once per run, signing through libssh2's callback.
// - libssh2's file loader re-reads and re-parses the key for every connection, through OpenSSL 3's
//   decoder probing: most of the client's CPU in a wide fan-out.
// - libssh2 1.10 (Debian bookworm) signs RSA keys only with ssh-rsa (SHA-1), which OpenSSH 8.8+
//   refuses. It takes the signature algorithm's name from the first string of the public key blob
//   it is given, so a blob whose type reads "rsa-sha2-512" makes it send an rsa-sha2-512 request
//   with our SHA-512 signature; OpenSSH parses that blob as the RSA key it is (sshkey_type_from_name
//   maps the signature names to KEY_RSA) and verifies over the blob as sent.
// Handled here: unencrypted OpenSSH-format ed25519 and RSA keys, and PEM / PKCS#8 RSA keys
// (encrypted ones with the passphrase). Anything else (ECDSA, encrypted OpenSSH-format keys, whose
// bcrypt KDF OpenSSL lacks) goes to libssh2's loader as before.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace engine::ssh {

struct LoadedKey {
  std::string public_blob;  // the SSH wire form: string "ssh-ed25519" or "ssh-rsa", then the key
  void* pkey = nullptr;     // EVP_PKEY*
  bool rsa = false;
  ~LoadedKey();
};

// The signature algorithms to offer for a key type, best first: RSA gets rsa-sha2-512, then
// ssh-rsa for servers older than OpenSSH 7.2; anything else its own type.
std::vector<std::string> signature_algorithms(const std::string& key_type);

// The public key blob as libssh2 must be given it to sign with `algorithm` (see above).
std::string blob_for(const std::string& public_blob, const std::string& algorithm);

// The key type a public blob names ("ssh-rsa", "ssh-ed25519", ...); empty when malformed.
std::string blob_type(const std::string& public_blob);

// nullptr when the file is not a key handled here (or cannot be read, or the passphrase is wrong).
std::shared_ptr<const LoadedKey> load_fast_key(const std::string& path, const std::string& passphrase = "");

// What a libssh2 sign callback's *abstract points to: a key (or, for the agent, a blob and a
// socket path) and the algorithm to sign with.
struct Signer {
  std::shared_ptr<const LoadedKey> key;
  std::string algorithm;
  std::string agent_socket, agent_blob;  // signing through ssh-agent instead of a key
  std::string error;                     // why the last signature failed
};

// The libssh2 sign callback for a Signer.
int sign_with(void* session, unsigned char** sig, size_t* sig_len, const unsigned char* data, size_t data_len,
              void** abstract);

}  // namespace engine::ssh
