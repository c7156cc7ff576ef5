#include "engine/etcd/snapshot.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "engine/ssh/known_hosts.hpp"

namespace engine::etcd {

namespace {

std::string hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += d[p[i] >> 4], out += d[p[i] & 15];
  return out;
}

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

  // Consumes whole JSON objects from the stream (the gateway separates them with newlines).
  bool feed(std::string_view chunk) {
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
                               std::function<void(SnapshotResult)> done) {
  auto w = std::make_shared<Writer>();
  w->path = path;
  w->part = path + ".part";
  w->fd = ::open(w->part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (w->fd < 0) {
    SnapshotResult r;
    r.error = "cannot create " + w->part + ": " + std::strerror(errno);
    r.error_word = "failed";
    w->part.clear();
    done(r);
    return [] {};
  }
  EVP_DigestInit_ex(w->body_hash, EVP_sha256(), nullptr);
  EVP_DigestInit_ex(w->file_hash, EVP_sha256(), nullptr);
  http::Request req;
  req.method = "POST";
  req.url = endpoint + "/v3/maintenance/snapshot";
  req.body = "{}";
  req.tls = tls;
  req.timeout = 0;
  req.max_retries = 0;
  req.headers.push_back({"Content-Type", "application/json"});
  req.on_data = [w](std::string_view chunk) { return w->feed(chunk); };
  return client.send(std::move(req), [w, done](http::Response resp) {
    SnapshotResult r;
    auto fail = [&](std::string word, std::string msg) {
      r.error_word = std::move(word);
      r.error = std::move(msg);
      done(r);  // ~Writer removes .part
    };
    if (!w->failure.empty()) return fail("failed", w->failure);
    // A transfer that broke after data came is a cut stream, whatever curl calls it.
    if ((resp.status == 200 && !resp.error.empty()) || (resp.status == 0 && w->size > 0))
      return fail("cut", "the snapshot stream was cut after " + std::to_string(w->size) + " bytes: " + resp.error);
    if (resp.status == 0) return fail(resp.timed_out ? "timeout" : "unreachable", resp.error);
    if (!w->pending.empty()) w->feed("\n");  // the last object, if the stream ended without a newline
    if (!w->failure.empty()) return fail("failed", w->failure);
    if (resp.status != 200) return fail("failed", "HTTP " + std::to_string(resp.status) + ": " + resp.body.substr(0, 200));
    if (!resp.error.empty() || !w->saw_end) return fail("cut", "the snapshot stream ended early after " + std::to_string(w->size) + " bytes");
    if (w->tail.size() != 32) return fail("corrupt", "the snapshot is too short to carry its sha256 trailer");
    unsigned char body[32], file[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(w->body_hash, body, &n);
    EVP_DigestFinal_ex(w->file_hash, file, &n);
    if (std::memcmp(body, w->tail.data(), 32) != 0) return fail("corrupt", "the snapshot's sha256 trailer does not match its data");
    if (::fsync(w->fd) != 0) return fail("failed", std::string("fsync: ") + std::strerror(errno));
    ::close(w->fd);
    w->fd = -1;
    if (::rename(w->part.c_str(), w->path.c_str()) != 0) return fail("failed", std::string("rename: ") + std::strerror(errno));
    w->part.clear();
    std::string dir = std::filesystem::path(w->path).parent_path().string();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) ::fsync(dfd), ::close(dfd);  // the rename itself survives a crash
    r.size = w->size;
    r.sha256 = hex(file, 32);
    done(r);
  });
}

}  // namespace engine::etcd
