// bench/fanout's reference for the controller's CPU: what a bare libssh2 client, with nothing of
// the engine around it, spends per host. One connection at a time, blocking, no event loop, no Lua, no scheduler, nothing written: TCP
// connect, handshake (curve25519-sha256, the server's ed25519 host key checked against known_hosts),
// public-key authentication with a key parsed once and signed by the engine's own signer (as the
// engine does), `true` on a channel, its exit status, disconnect. Prints the process's user and sys
// CPU per host (getrusage), so bench/fanout/run can set the engine's figure beside it. With THREADS,
// that many threads each run their share of the N connections that way, so as many are in flight
// at once as the engine keeps (the same client, paying what concurrency costs on these cores).
// With `keep`, every session stays open after its command, as the engine keeps its sessions for a
// runbook's next command on the host, and all are disconnected and freed once every thread is done,
// as the engine does at the run's end: the same work as the engine's default, N sessions alive at once.
//
// Usage: libssh2-floor HOST PORT USER KEY KNOWN_HOSTS N [THREADS [keep]]
#include <arpa/inet.h>
#include <libssh2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/ssh/keys.hpp"

namespace {

[[noreturn]] void die(const char* what, LIBSSH2_SESSION* s = nullptr) {
  char* msg = nullptr;
  if (s) libssh2_session_last_error(s, &msg, nullptr, 0);
  std::fprintf(stderr, "libssh2-floor: %s%s%s\n", what, msg ? ": " : "", msg ? msg : "");
  std::exit(1);
}

LIBSSH2_USERAUTH_PUBLICKEY_SIGN_FUNC(sign_callback) {
  return engine::ssh::sign_with(session, sig, sig_len, data, data_len, abstract);
}

// The key of known_hosts' first line ("[host]:port type base64"), decoded.
std::string known_key(const char* path) {
  std::ifstream f(path);
  std::string name, type, b64;
  if (!(f >> name >> type >> b64)) die("known_hosts has no entry");
  std::string raw(b64.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()), reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  if (n < 0) die("known_hosts key is not base64");
  raw.resize(static_cast<size_t>(n) - std::count(b64.end() - 2, b64.end(), '='));
  return raw;
}

double seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7 || argc > 9 || (argc == 9 && std::string(argv[8]) != "keep")) {
    std::fprintf(stderr, "usage: libssh2-floor HOST PORT USER KEY KNOWN_HOSTS N [THREADS [keep]]\n");
    return 2;
  }
  int threads = argc >= 8 ? std::max(1, std::atoi(argv[7])) : 1;
  const bool keep = argc == 9;
  const char* host = argv[1];
  int port = std::atoi(argv[2]);
  std::string user = argv[3];
  int n = std::atoi(argv[6]);
  auto key = engine::ssh::load_fast_key(argv[4]);
  if (!key) die("key not loaded");
  engine::ssh::Signer signer{key, engine::ssh::signature_algorithms(engine::ssh::blob_type(key->public_blob))[0], "", "", ""};
  std::string blob = engine::ssh::blob_for(key->public_blob, signer.algorithm);
  void* abstract = &signer;
  std::string known = known_key(argv[5]);
  libssh2_init(0);

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host, &addr.sin_addr);
  if (keep) {  // N sockets open at once, as the engine holds them (it raises its own limit alike)
    rlimit fds{};
    if (getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur < fds.rlim_max) {
      fds.rlim_cur = fds.rlim_max;
      setrlimit(RLIMIT_NOFILE, &fds);
    }
  }
  struct Kept {
    LIBSSH2_SESSION* session;
    int fd;
  };
  std::vector<std::vector<Kept>> kept(static_cast<size_t>(threads));
  auto end = [](LIBSSH2_SESSION* s, int fd) {
    libssh2_session_disconnect(s, "done");
    libssh2_session_free(s);
    close(fd);
  };
  auto connect_once = [&](int t) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("connect");
    LIBSSH2_SESSION* s = libssh2_session_init();
    libssh2_session_method_pref(s, LIBSSH2_METHOD_KEX, "curve25519-sha256");
    if (libssh2_session_handshake(s, fd) != 0) die("handshake", s);
    // The host key must be the one known_hosts holds (decoded once, before the loop).
    size_t len = 0;
    int type = 0;
    const char* hk = libssh2_session_hostkey(s, &len, &type);
    if (!hk || std::string(hk, len) != known) die("host key is not the one in known_hosts", s);
    if (libssh2_userauth_publickey(s, user.c_str(), reinterpret_cast<const unsigned char*>(blob.data()), blob.size(),
                                   sign_callback, &abstract) != 0)
      die("auth", s);
    LIBSSH2_CHANNEL* c = libssh2_channel_open_session(s);
    if (!c || libssh2_channel_exec(c, "true") != 0) die("exec", s);
    char buf[256];
    while (libssh2_channel_read(c, buf, sizeof buf) > 0) {
    }
    libssh2_channel_close(c);
    libssh2_channel_wait_closed(c);
    if (libssh2_channel_get_exit_status(c) != 0) die("`true` failed");
    libssh2_channel_free(c);
    if (keep) kept[static_cast<size_t>(t)].push_back({s, fd});
    else end(s, fd);
  };
  if (threads == 1) {
    for (int i = 0; i < n; ++i) connect_once(0);
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (int i = t; i < n; i += threads) connect_once(t);
      });
    for (auto& th : pool) th.join();
  }
  for (auto& mine : kept)
    for (auto& k : mine) end(k.session, k.fd);
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  std::printf("%d %.6f %.6f\n", n, seconds(u.ru_utime), seconds(u.ru_stime));
  return 0;
}
