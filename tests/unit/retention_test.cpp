// Old etcd snapshots removed beyond the newest few (engine/etcd/retention.hpp): only the engine's
// own etcd-*.db files, the one just taken always kept, a dry run removing nothing.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "engine/etcd/retention.hpp"
#include "scratch.hpp"

namespace fs = std::filesystem;

namespace {

void make(const fs::path& p, time_t mtime) {
  std::ofstream(p) << "x";
  timespec times[2] = {{mtime, 0}, {mtime, 0}};
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), times, 0) == 0);
}

std::string name(const std::string& p) { return fs::path(p).filename().string(); }

}  // namespace

TEST_CASE("snapshots beyond the newest few go, oldest first; nothing else in the directory does") {
  Scratch dir("engine-retention-" + std::to_string(::getpid()));
  fs::create_directories(dir.path);
  for (int i = 1; i <= 4; ++i) make(dir.path / ("etcd-2026010" + std::to_string(i) + "T000000Z-cp1.db"), 1000 + i);
  make(dir.path / "etcd-20260105T000000Z-cp1.db.part", 1);
  make(dir.path / "notes.db", 1);
  make(dir.path / "etcd-other.txt", 1);
  fs::create_symlink("notes.db", dir.path / "etcd-link.db");
  fs::create_directory(dir.path / "etcd-dir.db");
  // The one just taken, with a time older than all (a clock set back): kept, and counted.
  auto newest = (dir.path / "etcd-20260106T000000Z-cp1.db").string();
  make(newest, 10);

  SECTION("a dry run lists and removes nothing") {
    auto r = engine::etcd::prune_snapshots(dir.path.string(), 2, newest, false);
    REQUIRE(r.error.empty());
    REQUIRE(r.removed.size() == 3);
    REQUIRE(fs::exists(dir.path / "etcd-20260101T000000Z-cp1.db"));
  }
  SECTION("keep 2: the new one and the newest old one") {
    auto r = engine::etcd::prune_snapshots(dir.path.string(), 2, newest, true);
    REQUIRE(r.error.empty());
    REQUIRE(r.kept.size() == 2);
    CHECK(name(r.kept[0]) == "etcd-20260106T000000Z-cp1.db");
    CHECK(name(r.kept[1]) == "etcd-20260104T000000Z-cp1.db");
    REQUIRE(r.removed.size() == 3);
    CHECK(name(r.removed[0]) == "etcd-20260101T000000Z-cp1.db");
    CHECK(name(r.removed[2]) == "etcd-20260103T000000Z-cp1.db");
    for (const auto& p : r.removed) CHECK_FALSE(fs::exists(p));
    for (const char* left : {"etcd-20260105T000000Z-cp1.db.part", "notes.db", "etcd-other.txt", "etcd-dir.db"})
      CHECK(fs::exists(dir.path / left));
    CHECK(fs::is_symlink(dir.path / "etcd-link.db"));
  }
  SECTION("keep 1 keeps only the new one") {
    auto r = engine::etcd::prune_snapshots(dir.path.string(), 1, newest, true);
    REQUIRE(r.kept.size() == 1);
    CHECK(r.removed.size() == 4);
    CHECK(fs::exists(newest));
  }
}

TEST_CASE("a directory that cannot be listed is an error, nothing removed") {
  auto r = engine::etcd::prune_snapshots("/nonexistent/engine-retention", 2, "", true);
  CHECK(r.removed.empty());
  CHECK(r.error.find("listing /nonexistent/engine-retention") == 0);
}
