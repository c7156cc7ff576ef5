#include "engine/ssh/host_key.hpp"

#include <algorithm>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/text.hpp"
#include "engine/log/log.hpp"
#include "engine/ssh/crypto_policy.hpp"
#include "engine/ssh/known_hosts.hpp"
#include "engine/ssh/session.hpp"

namespace engine::ssh {

namespace {

const char* type_name(int t) {
  switch (t) {
    case LIBSSH2_HOSTKEY_TYPE_RSA: return "ssh-rsa";
    case LIBSSH2_HOSTKEY_TYPE_DSS: return "ssh-dss";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return "ecdsa-sha2-nistp256";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return "ecdsa-sha2-nistp384";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return "ecdsa-sha2-nistp521";
    case LIBSSH2_HOSTKEY_TYPE_ED25519: return "ssh-ed25519";
    default: return "unknown";
  }
}

// The signature algorithms that present a key of this type.
std::vector<std::string_view> methods_for(const std::string& type) {
  if (type == "ssh-rsa") return {"rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"};
  return {type};
}

std::string fingerprint(Session& s) {
  const char* h = libssh2_hostkey_hash(s.raw(), LIBSSH2_HOSTKEY_HASH_SHA256);
  if (!h) return "?";
  std::string b64 = base64_encode(reinterpret_cast<const unsigned char*>(h), 32);
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return "SHA256:" + b64;
}

// The name known_hosts records the host under: HostKeyAlias replaces the host and its port.
std::pair<std::string, int> recorded_as(const Target& t) {
  if (!t.host_key_alias.empty()) return {t.host_key_alias, 22};
  return {t.at.host, t.at.port};
}

// Each known_hosts file of the target, the one that records first. (No list is built: this runs
// twice per connection.)
template <class F>
void for_each_file(const Target& t, F&& f) {
  f(t.known_hosts_file);
  for (const auto& more : t.more_known_hosts) f(more);
}

// Every file is read: a match in any is a match; otherwise a revoked or different key in any
// refuses the host (naming the file); otherwise it is unknown.
KeyCheck check_all(const Target& t, const KnownKey& presented, std::string* file) {
  auto [name, port] = recorded_as(t);
  KeyCheck worst = KeyCheck::unknown;
  bool matched = false;
  for_each_file(t, [&](const std::string& f) {
    if (matched) return;
    auto r = KnownHosts::load(f)->check(name, port, presented);
    if (r == KeyCheck::match) {
      matched = true;
      return;
    }
    if (r == KeyCheck::revoked || (r == KeyCheck::changed && worst == KeyCheck::unknown)) {
      if (worst != KeyCheck::revoked) *file = f;
      worst = r == KeyCheck::revoked ? r : worst == KeyCheck::revoked ? worst : r;
    }
  });
  return matched ? KeyCheck::match : worst;
}

}  // namespace

void prefer_known_key_types(Session& s) {
  const Target& t = s.target();
  if (t.policy == HostKeyPolicy::off) return;
  auto [name, port] = recorded_as(t);
  std::vector<KnownKey> known;
  for_each_file(t, [&](const std::string& f) {
    auto k = KnownHosts::load(f)->keys_for(name, port);
    known.insert(known.end(), std::make_move_iterator(k.begin()), std::make_move_iterator(k.end()));
  });
  if (known.empty()) return;
  const auto& supported = host_key_algorithms(s.raw());
  if (supported.empty()) return;
  // The types known_hosts records for this host first, in its order, then the rest.
  std::vector<std::string_view> order;
  order.reserve(supported.size());
  auto add = [&](std::string_view m) {
    if (std::find(order.begin(), order.end(), m) == order.end()) order.push_back(m);
  };
  for (const auto& k : known)
    for (auto m : methods_for(k.type))
      if (std::find(supported.begin(), supported.end(), m) != supported.end()) add(m);
  for (const auto& m : supported) add(m);
  std::string pref;
  for (auto m : order) {
    if (!pref.empty()) pref += ',';
    pref += m;
  }
  libssh2_session_method_pref(s.raw(), LIBSSH2_METHOD_HOSTKEY, pref.c_str());
}

Result check_host_key(Session& s) {
  const Target& t = s.target();
  size_t len = 0;
  int type = 0;
  const char* raw = libssh2_session_hostkey(s.raw(), &len, &type);
  if (!raw) return Failure{Error::closed, "no host key from " + t.at.host};
  KnownKey presented{type_name(type), base64_encode(reinterpret_cast<const unsigned char*>(raw), len)};
  auto [rec_name, rec_port] = recorded_as(t);
  std::string who = known_hosts_name(rec_name, rec_port);

  if (t.policy == HostKeyPolicy::off) {
    log::emit(log::Level::warn, t.name, "host key not checked (policy off)",
              {{"host", who}, {"key", presented.type + " " + fingerprint(s)}});
    return std::nullopt;
  }
  std::string file = t.known_hosts_file;
  switch (check_all(t, presented, &file)) {
    case KeyCheck::match:
      return std::nullopt;
    case KeyCheck::revoked:
      return Failure{Error::host_key_changed, who + " presented a revoked " + presented.type + " key " + fingerprint(s)};
    case KeyCheck::changed:
      return Failure{Error::host_key_changed,
                     who + " presented " + presented.type + " " + fingerprint(s) + ", which is not the key " +
                         file + " records for it: refusing (a reinstalled host, or someone in between)"};
    case KeyCheck::unknown:
      break;
  }
  if (t.policy == HostKeyPolicy::strict)
    return Failure{Error::host_key_unknown, who + " is not in " + t.known_hosts_file + " (it presented " + presented.type +
                                                " " + fingerprint(s) + "); verify and add it, or use accept-new"};
  try {
    KnownHosts::append(t.known_hosts_file, KnownHosts::line_for(rec_name, rec_port, presented));
  } catch (const std::exception& e) {
    return Failure{Error::host_key_unknown, std::string("cannot record the new host key: ") + e.what()};
  }
  log::emit(log::Level::info, t.name, "recorded new host key",
            {{"host", who}, {"key", presented.type + " " + fingerprint(s)}, {"file", t.known_hosts_file}});
  return std::nullopt;
}

}  // namespace engine::ssh
