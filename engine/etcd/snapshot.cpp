#include "engine/etcd/snapshot.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "engine/core/hash.hpp"
#include "engine/core/safe_file.hpp"
#include "engine/ssh/known_hosts.hpp"

namespace engine::etcd {

namespace {

struct Writer {
  std::string path, part;
  int fd = -1;
  std::string pending;      // the part of the JSON stream not yet a whole object
  std::string tail;         // the last 32 bytes seen: the trailer, until more data comes
  EVP_MD_CTX* body_hash = EVP_MD_CTX_new();  // of everything before the trailer
  EVP_MD_CTX* file_hash = EVP_MD_CTX_new();  // of the whole file
  uint64_t size = 0;
  std::string failure;
  bool saw_end = false;

  ~Writer() {
    EVP_MD_CTX_free(body_hash);
    EVP_MD_CTX_free(file_hash);
    if (fd >= 0) ::close(fd);
    if (!part.empty()) ::unlink(part.c_str());  // anything left at .part is garbage
  }

  bool write_bytes(const std::string& data) {
    EVP_DigestUpdate(file_hash, data.data(), data.size());
    // Hold back the last 32 bytes: they are the trailer if the stream ends here.
    tail += data;
    if (tail.size() > 32) {
      size_t n = tail.size() - 32;
      EVP_DigestUpdate(body_hash, tail.data(), n);
      tail.erase(0, n);
    }
    size_t off = 0;
    while (off < data.size()) {
      ssize_t w = ::write(fd, data.data() + off, data.size() - off);
      if (w < 0) {
        failure = std::string("write ") + part + ": " + std::strerror(errno);
        return false;
      }
      off += static_cast<size_t>(w);
    }
    size += data.size();
    return true;
  }

  bool grpc = false;

  // gRPC: length-prefixed messages (1 byte compressed flag, 4 bytes big-endian length), each a
  // SnapshotResponse {header = 1, remaining_bytes = 2 (uint64), blob = 3 (bytes)}.
  bool feed_grpc(std::string_view chunk) {
    pending.append(chunk);
    size_t off = 0;
    while (pending.size() - off >= 5) {
      auto* p = reinterpret_cast<const unsigned char*>(pending.data() + off);
      if (p[0] != 0) return failure = "etcd sent a compressed gRPC message", false;
      size_t len = (size_t(p[1]) << 24) | (size_t(p[2]) << 16) | (size_t(p[3]) << 8) | p[4];
      if (pending.size() - off - 5 < len) break;
      if (!message(std::string_view(pending).substr(off + 5, len))) return false;
      off += 5 + len;
    }
    pending.erase(0, off);
    return true;
  }

  static bool varint(std::string_view m, size_t& i, uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && i < m.size(); shift += 7) {
      auto b = static_cast<unsigned char>(m[i++]);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }

  bool message(std::string_view m) {
    uint64_t remaining = 0;
    size_t i = 0;
    while (i < m.size()) {
      uint64_t key = 0, v = 0;
      if (!varint(m, i, key)) return failure = "a malformed gRPC message", false;
      uint64_t field = key >> 3, wire = key & 7;
      if (wire == 0) {
        if (!varint(m, i, v)) return failure = "a malformed gRPC message", false;
        if (field == 2) remaining = v;
      } else if (wire == 2) {
        if (!varint(m, i, v) || i + v > m.size()) return failure = "a malformed gRPC message", false;
        if (field == 3 && !write_bytes(std::string(m.substr(i, v)))) return false;
        i += v;
      } else {
        return failure = "an unexpected protobuf wire type in the snapshot", false;
      }
    }
    if (remaining == 0) saw_end = true;  // proto3 leaves a zero out: the last message
    return true;
  }

  // Consumes whole JSON objects from the stream (the gateway separates them with newlines).
  bool feed(std::string_view chunk) {
    if (grpc) return feed_grpc(chunk);
    pending.append(chunk);
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (!line.empty() && !take(line)) return false;
    }
    return true;
  }

  bool take(const std::string& line) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) return failure = "the snapshot stream is not JSON", false;
    if (j.contains("error")) return failure = "etcd: " + j["error"].value("message", j["error"].dump()), false;
    const auto& r = j.value("result", nlohmann::json::object());
    if (r.contains("blob") && r["blob"].is_string()) {
      std::string data = ssh::base64_decode(r["blob"].get<std::string>());
      if (data.empty() && !r["blob"].get<std::string>().empty()) return failure = "a snapshot chunk is not base64", false;
      if (!write_bytes(data)) return false;
    }
    // remaining_bytes 0 marks the last chunk (uint64 as a JSON string).
    if (r.contains("remaining_bytes") && (r["remaining_bytes"] == "0" || r["remaining_bytes"] == 0)) saw_end = true;
    else if (!r.contains("remaining_bytes")) saw_end = true;  // omitted when zero
    return true;
  }
};

}  // namespace

std::function<void()> snapshot(http::Client& client, const std::string& endpoint, const http::Tls& tls, const std::string& path,
                               std::function<void(SnapshotResult)> done, double idle_timeout) {
  auto w = std::make_shared<Writer>();
  w->path = path;
  w->part = path + ".part";
  // A snapshot directory that does not exist yet is made (0700: a snapshot holds every secret).
  std::error_code ec;
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (!ec) std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  }
  std::string why;
  w->fd = create_part(w->path, w->part, 0600, why);
  if (w->fd < 0) {
    SnapshotResult r;
    r.error = why;
    r.error_word = "failed";
    w->part.clear();
    done(r);
    return [] {};
  }
  EVP_DigestInit_ex(w->body_hash, EVP_sha256(), nullptr);
  EVP_DigestInit_ex(w->file_hash, EVP_sha256(), nullptr);
  http::Request req;
  req.method = "POST";
  req.tls = tls;
  req.timeout = 0;  // a large database takes as long as it takes: only a stalled stream fails
  req.idle_timeout = idle_timeout;
  req.max_retries = 0;
  req.keep_alive = false;  // nothing keeps the member's stop waiting for it afterwards (http::Request)
  // Over TLS (HTTP/2 by ALPN) the snapshot is taken over gRPC, as etcdctl does: the JSON gateway
  // base64-encodes the whole database inside etcd, which costs the server three times the CPU.
  w->grpc = endpoint.rfind("https://", 0) == 0;
  if (w->grpc) {
    req.url = endpoint + "/etcdserverpb.Maintenance/Snapshot";
    req.body = std::string(5, '\0');  // one uncompressed, empty SnapshotRequest
    req.headers.push_back({"Content-Type", "application/grpc"});
    req.headers.push_back({"TE", "trailers"});
  } else {
    req.url = endpoint + "/v3/maintenance/snapshot";
    req.body = "{}";
    req.headers.push_back({"Content-Type", "application/json"});
  }
  req.on_data = [w](std::string_view chunk) { return w->feed(chunk); };
  return client.send(std::move(req), [w, done](http::Response resp) {
    SnapshotResult r;
    auto fail = [&](std::string word, std::string msg) {
      r.error_word = std::move(word);
      r.error = std::move(msg);
      done(r);  // ~Writer removes .part
    };
    if (!w->failure.empty()) return fail("failed", w->failure);
    // A peer that went silent (the idle timeout) is a timeout, whether or not data came before.
    if (resp.timed_out)
      return fail("timeout", "the snapshot stream stalled after " + std::to_string(w->size) + " bytes: " + resp.error);
    // A transfer that broke after data came is a cut stream, whatever curl calls it.
    if ((resp.status == 200 && !resp.error.empty()) || (resp.status == 0 && w->size > 0))
      return fail("cut", "the snapshot stream was cut after " + std::to_string(w->size) + " bytes: " + resp.error);
    if (resp.status == 0) return fail(resp.timed_out ? "timeout" : "unreachable", resp.error);
    if (w->grpc) {
      auto st = resp.headers.find("grpc-status");  // a trailer, or a trailers-only answer's header
      if (st == resp.headers.end()) return fail("cut", "the snapshot stream ended without its gRPC status");
      if (st->second != "0") {
        auto msg = resp.headers.find("grpc-message");
        return fail("failed", "etcd: gRPC status " + st->second + (msg != resp.headers.end() ? ": " + msg->second : ""));
      }
    } else if (!w->pending.empty()) {
      w->feed("\n");  // the last object, if the stream ended without a newline
    }
    if (!w->failure.empty()) return fail("failed", w->failure);
    if (resp.status != 200) return fail("failed", "HTTP " + std::to_string(resp.status) + ": " + resp.body.substr(0, 200));
    if (!resp.error.empty() || !w->saw_end) return fail("cut", "the snapshot stream ended early after " + std::to_string(w->size) + " bytes");
    if (w->tail.size() != 32) return fail("corrupt", "the snapshot is too short to carry its sha256 trailer");
    unsigned char body[32], file[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(w->body_hash, body, &n);
    EVP_DigestFinal_ex(w->file_hash, file, &n);
    if (std::memcmp(body, w->tail.data(), 32) != 0) return fail("corrupt", "the snapshot's sha256 trailer does not match its data");
    int fd = w->fd;
    w->fd = -1;
    std::string why;
    bool committed = commit_part(fd, w->part, w->path, why);
    w->part.clear();  // commit_part removed it if it failed
    if (!committed) return fail("failed", why);
    r.size = w->size;
    r.sha256 = hex(file, 32);
    done(r);
  });
}

SnapshotResult check_snapshot_file(const std::string& path) {
  SnapshotResult r;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    r.error_word = "not found";
    r.error = path + ": " + std::strerror(errno);
    return r;
  }
  EVP_MD_CTX* body = EVP_MD_CTX_new();
  EVP_MD_CTX* whole = EVP_MD_CTX_new();
  EVP_DigestInit_ex(body, EVP_sha256(), nullptr);
  EVP_DigestInit_ex(whole, EVP_sha256(), nullptr);
  // The last 32 bytes seen are held back from the body's hash: the trailer, if the file ends there.
  constexpr size_t kChunk = 1 << 20;
  auto buf = std::make_unique_for_overwrite<unsigned char[]>(kChunk + 32);
  size_t held = 0;
  ssize_t n;
  while ((n = ::read(fd, buf.get() + held, kChunk)) > 0) {
    size_t have = held + static_cast<size_t>(n);
    EVP_DigestUpdate(whole, buf.get() + held, static_cast<size_t>(n));
    r.size += static_cast<uint64_t>(n);
    if (have > 32) {
      EVP_DigestUpdate(body, buf.get(), have - 32);
      std::memmove(buf.get(), buf.get() + have - 32, 32);
      held = 32;
    } else {
      held = have;
    }
  }
  int read_errno = errno;
  ::close(fd);
  unsigned char b[32], w[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(body, b, &len);
  EVP_DigestFinal_ex(whole, w, &len);
  EVP_MD_CTX_free(body);
  EVP_MD_CTX_free(whole);
  if (n < 0) {
    r.error_word = "not found";
    r.error = path + ": " + std::strerror(read_errno);
  } else if (held < 32 || r.size < 64) {
    r.error_word = "corrupt";
    r.error = path + ": " + std::to_string(r.size) + " bytes: too short to be an etcd snapshot with its sha256 trailer";
  } else if (std::memcmp(b, buf.get(), 32) != 0) {
    r.error_word = "corrupt";
    r.error = path + ": its sha256 trailer does not match its data (a cut copy, another file, or a database copied out of a "
              "data directory, which has no trailer)";
  } else {
    r.sha256 = hex(w, 32);
  }
  return r;
}

}  // namespace engine::etcd
