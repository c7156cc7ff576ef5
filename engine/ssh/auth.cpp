#include "engine/ssh/auth.hpp"

#include <sys/stat.h>

#include <cstring>
#include <fstream>

#include "engine/ssh/keys.hpp"
#include "engine/ssh/session.hpp"

namespace engine::ssh {

namespace {

// keyboard-interactive: every prompt is answered with the password (what sshd's PAM asks).
void kbd_callback(const char*, int, const char*, int, int num_prompts, const LIBSSH2_USERAUTH_KBDINT_PROMPT*,
                  LIBSSH2_USERAUTH_KBDINT_RESPONSE* responses, void** abstract) {
  auto* s = static_cast<Session*>(*abstract);
  const std::string& pw = s->target().password;
  for (int i = 0; i < num_prompts; ++i) {
    responses[i].text = static_cast<char*>(std::malloc(pw.size() + 1));
    std::memcpy(responses[i].text, pw.c_str(), pw.size() + 1);
    responses[i].length = static_cast<unsigned>(pw.size());
  }
}

// An RSA key libssh2 must load itself (an encrypted OpenSSH-format file) is signed with ssh-rsa/SHA-1,
// which OpenSSH 8.8+ refuses; said so when such a key is refused, since the server's "refused" alone
// sends people looking elsewhere.
bool is_rsa_key(const std::string& file) {
  std::ifstream pub(file + ".pub");
  std::string word;
  if (pub >> word) return word == "ssh-rsa";
  std::ifstream priv(file);
  std::string first;
  std::getline(priv, first);
  return first.find("RSA PRIVATE KEY") != std::string::npos;
}

LIBSSH2_USERAUTH_PUBLICKEY_SIGN_FUNC(sign_callback) {
  return sign_with(session, sig, sig_len, data, data_len, abstract);
}

class AuthOp : public Op {
 public:
  AuthOp(std::function<void(Result)> done) : done_(std::move(done)) {}
  ~AuthOp() override {
    if (agent_) {
      libssh2_agent_disconnect(agent_);
      libssh2_agent_free(agent_);
    }
  }

  Step step(Session& s) override {
    const Target& t = s.target();
    const std::string& user = t.at.user;
    auto* raw = s.raw();
    // Keys first, before asking which methods the server takes: that question ("none") is a round
    // trip every host pays, and nearly every server takes publickey. It is asked only if no key
    // gets in (for the agent, the password and the error message).
    if (stage_ == Stage::keys) {
      while (key_ < t.at.identity_files.size()) {
        const std::string& file = t.at.identity_files[key_];
        struct stat st {};
        // Once per key, not at each step: a step that would block comes back here.
        if (seen_ != key_ && ::stat(file.c_str(), &st) != 0) {
          ++key_;
          continue;
        }
        seen_ = key_;
        int rc;
        auto fast = load_fast_key(file, t.passphrase);
        std::string alg;
        if (fast) {
          auto algs = signature_algorithms(blob_type(fast->public_blob));
          if (alg_ >= algs.size()) {
            alg_ = 0;
            ++key_;
            continue;
          }
          alg = algs[alg_];
          if (signer_.key != fast || signer_.algorithm != alg) signer_ = Signer{fast, alg, "", "", ""};
          abstract_ = &signer_;
          blob_ = blob_for(fast->public_blob, alg);
          rc = libssh2_userauth_publickey(raw, user.c_str(), reinterpret_cast<const unsigned char*>(blob_.data()),
                                          blob_.size(), sign_callback, &abstract_);
        } else {
          rc = libssh2_userauth_publickey_fromfile_ex(raw, user.c_str(), static_cast<unsigned>(user.size()), nullptr,
                                                      file.c_str(), t.passphrase.empty() ? nullptr : t.passphrase.c_str());
        }
        if (s.would_block(rc)) return Step::blocked;
        if (rc == 0) return finish(std::nullopt);
        if (s.fatal(rc)) return Step::done;
        if (fast) {
          tried_ += " key " + file + " as " + alg + " (refused" +
                    (signer_.error.empty() ? "" : ": " + signer_.error) + ");";
          ++alg_;
          continue;
        }
        tried_ += " key " + file + (rc == LIBSSH2_ERROR_FILE ? " (unreadable or wrong passphrase)" : " (refused)") +
                  (rc != LIBSSH2_ERROR_FILE && is_rsa_key(file) ? " [an RSA key libssh2 1.10 must load itself (OpenSSH format, encrypted) is "
                                      "signed only with ssh-rsa/SHA-1, which OpenSSH 8.8+ refuses: add it to "
                                      "ssh-agent, convert it (ssh-keygen -p -m PEM -f FILE) or use ed25519]" : "") + ";";
        ++key_;
      }
      stage_ = Stage::list;
    }
    if (stage_ == Stage::list) {
      char* list = libssh2_userauth_list(raw, user.c_str(), static_cast<unsigned>(user.size()));
      if (!list) {
        if (libssh2_userauth_authenticated(raw)) return finish(std::nullopt);
        int rc = libssh2_session_last_errno(raw);
        if (s.would_block(rc)) return Step::blocked;
        if (s.fatal(rc)) return Step::done;
        return finish(Failure{Error::auth_failed, "no authentication methods offered: " + s.last_error()});
      }
      methods_ = list;
      stage_ = Stage::agent;
    }
    if (stage_ == Stage::agent) {
      Step st = try_agent(s);
      if (st != Step::done) return st;
      if (!s.alive() || done_ == nullptr) return Step::done;
      stage_ = Stage::password;
    }
    if (stage_ == Stage::password) {
      if (!t.password.empty()) {
        int rc;
        if (methods_.find("password") != std::string::npos) {
          rc = libssh2_userauth_password_ex(raw, user.c_str(), static_cast<unsigned>(user.size()), t.password.c_str(),
                                            static_cast<unsigned>(t.password.size()), nullptr);
        } else if (methods_.find("keyboard-interactive") != std::string::npos) {
          rc = libssh2_userauth_keyboard_interactive_ex(raw, user.c_str(), static_cast<unsigned>(user.size()), kbd_callback);
        } else {
          rc = LIBSSH2_ERROR_AUTHENTICATION_FAILED;
        }
        if (s.would_block(rc)) return Step::blocked;
        if (rc == 0) return finish(std::nullopt);
        if (s.fatal(rc)) return Step::done;
        tried_ += " password (refused);";
      }
      if (tried_.empty()) tried_ = " no key file found, no agent, no password;";
      return finish(Failure{Error::auth_failed, user + "@" + t.at.host + ":" + std::to_string(t.at.port) +
                                                    " refused every method (server offers " + methods_ + "):" + tried_});
    }
    return Step::blocked;
  }

  void abort(const Failure& f) override { finish(f); }

 private:
  enum class Stage { keys, list, agent, password };

  // The agent socket is local: connecting and listing identities do not block for long.
  Step try_agent(Session& s) {
    const Target& t = s.target();
    // IdentitiesOnly: the configured key files alone. IdentityAgent: none, or another socket.
    if (t.identities_only || t.agent_socket == "none") return Step::done;
    const char* env_sock = std::getenv("SSH_AUTH_SOCK");
    std::string sock = !t.agent_socket.empty() ? t.agent_socket : env_sock ? env_sock : "";
    if (methods_.find("publickey") == std::string::npos || sock.empty()) return Step::done;
    if (!agent_) {
      agent_ = libssh2_agent_init(s.raw());
      if (agent_ && !t.agent_socket.empty()) libssh2_agent_set_identity_path(agent_, t.agent_socket.c_str());
      if (!agent_ || libssh2_agent_connect(agent_) != 0 || libssh2_agent_list_identities(agent_) != 0) {
        tried_ += " agent (unavailable);";
        return Step::done;
      }
      identity_ = nullptr;
      if (libssh2_agent_get_identity(agent_, &identity_, nullptr) != 0) return Step::done;
    }
    while (identity_) {
      std::string blob(reinterpret_cast<const char*>(identity_->blob), identity_->blob_len);
      if (!agent_sha2_done_ && blob_type(blob) == "ssh-rsa") {
        // libssh2's agent signs RSA with ssh-rsa/SHA-1 only: ask the agent for rsa-sha2-512 ourselves.
        if (signer_.agent_blob != blob) signer_ = Signer{nullptr, "rsa-sha2-512", sock, blob, ""};
        abstract_ = &signer_;
        blob_ = blob_for(blob, "rsa-sha2-512");
        int rc = libssh2_userauth_publickey(s.raw(), t.at.user.c_str(), reinterpret_cast<const unsigned char*>(blob_.data()),
                                            blob_.size(), sign_callback, &abstract_);
        if (s.would_block(rc)) return Step::blocked;
        if (rc == 0) {
          finish(std::nullopt);
          return Step::done;
        }
        if (s.fatal(rc)) return Step::done;
        tried_ += std::string(" agent key ") + (identity_->comment ? identity_->comment : "") + " as rsa-sha2-512 (refused" +
                  (signer_.error.empty() ? "" : ": " + signer_.error) + ");";
        agent_sha2_done_ = true;
      }
      int rc = libssh2_agent_userauth(agent_, t.at.user.c_str(), identity_);
      if (s.would_block(rc)) return Step::blocked;
      if (rc == 0) {
        finish(std::nullopt);
        return Step::done;
      }
      if (s.fatal(rc)) return Step::done;
      tried_ += std::string(" agent key ") + (identity_->comment ? identity_->comment : "") + " (refused);";
      agent_sha2_done_ = false;
      libssh2_agent_publickey* prev = identity_;
      if (libssh2_agent_get_identity(agent_, &identity_, prev) != 0) identity_ = nullptr;
    }
    return Step::done;
  }

  Step finish(Result r) {
    if (auto d = std::move(done_)) {
      done_ = nullptr;
      d(std::move(r));
    }
    return Step::done;
  }

  std::function<void(Result)> done_;
  Stage stage_ = Stage::keys;
  std::string methods_, tried_;
  size_t key_ = 0;
  size_t seen_ = SIZE_MAX;  // the key whose file was found there
  LIBSSH2_AGENT* agent_ = nullptr;
  size_t alg_ = 0;              // which of the key's signature algorithms is being tried
  Signer signer_;               // what the sign callback signs with
  std::string blob_;            // the public key blob given to libssh2 (kept across EAGAIN retries)
  void* abstract_ = nullptr;    // libssh2 keeps a pointer to it across EAGAIN retries
  bool agent_sha2_done_ = false;
  libssh2_agent_publickey* identity_ = nullptr;
};

}  // namespace

std::shared_ptr<Op> make_auth_op(Session&, std::function<void(Result)> done) {
  return std::make_shared<AuthOp>(std::move(done));
}

}  // namespace engine::ssh
