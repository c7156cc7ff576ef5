// A snapshot file checked on this machine before a restore (engine/etcd/snapshot.hpp): its last 32
// bytes must be the sha256 of the rest; a cut copy, a file that is no snapshot and one that is not
// there are each told apart.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>

#include "engine/core/hash.hpp"
#include "engine/etcd/snapshot.hpp"
#include "scratch.hpp"

namespace fs = std::filesystem;

namespace {

std::string with_trailer(const std::string& body) {
  std::string hexed = engine::sha256_hex(body), raw;
  for (size_t i = 0; i < hexed.size(); i += 2) raw.push_back(static_cast<char>(std::stoi(hexed.substr(i, 2), nullptr, 16)));
  return body + raw;
}

void write(const fs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; }

}  // namespace

TEST_CASE("a snapshot's trailer is checked over the whole file, however it falls across reads") {
  Scratch dir("engine-snapfile-" + std::to_string(::getpid()));
  fs::create_directories(dir.path);
  // Larger than one read (1 MiB), with the trailer split across the boundary.
  std::string body((1 << 20) - 10, 'b');
  body += "the end of the database";
  auto good = dir.path / "good.db";
  write(good, with_trailer(body));
  auto r = engine::etcd::check_snapshot_file(good.string());
  REQUIRE(r.error.empty());
  CHECK(r.size == body.size() + 32);
  CHECK(r.sha256 == engine::sha256_hex(with_trailer(body)));

  auto cut = dir.path / "cut.db";
  write(cut, with_trailer(body).substr(0, body.size() + 31));
  r = engine::etcd::check_snapshot_file(cut.string());
  CHECK(r.error_word == "corrupt");
  CHECK(r.error.find("its sha256 trailer does not match its data") != std::string::npos);

  auto db = dir.path / "db";  // a bbolt file copied out of a data directory: no trailer
  write(db, body);
  CHECK(engine::etcd::check_snapshot_file(db.string()).error_word == "corrupt");

  auto tiny = dir.path / "tiny.db";
  write(tiny, with_trailer("x"));
  r = engine::etcd::check_snapshot_file(tiny.string());
  CHECK(r.error_word == "corrupt");
  CHECK(r.error.find("too short") != std::string::npos);

  r = engine::etcd::check_snapshot_file((dir.path / "nothing.db").string());
  CHECK(r.error_word == "not found");
  CHECK(r.error.find("No such file or directory") != std::string::npos);
}
