// Run directories appear in STATE/runs only once their run.json is written, so a resume after a
// kill at any point finds either nothing or a run it can read.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <stdexcept>

#include "engine/run/run_dir.hpp"

namespace fs = std::filesystem;

namespace {

fs::path fresh_state() {
  auto p = fs::temp_directory_path() / ("engine-rundir-" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

size_t count(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

TEST_CASE("a run directory is published with its run.json, never before") {
  auto state = fresh_state();
  auto r = engine::run::create(state, "k8s upgrade", [](const engine::run::RunDir& d) {
    CHECK(d.path.parent_path().filename() == "incoming");
    CHECK(!fs::exists(d.path.parent_path().parent_path() / "runs" / d.id));
    std::ofstream(d.path / "run.json") << "{}";
  });
  CHECK(r.path == state / "runs" / r.id);
  CHECK(r.id.find("-k8s-upgrade-") != std::string::npos);
  CHECK(fs::exists(r.path / "run.json"));
  CHECK(count(state / "incoming") == 0);
  CHECK(count(state / "runs") == 1);

  // A fill that fails (the process dying there is the same for runs/) publishes nothing.
  CHECK_THROWS(engine::run::create(state, "x", [](const engine::run::RunDir&) { throw std::runtime_error("disk"); }));
  CHECK(count(state / "runs") == 1);
  CHECK(count(state / "incoming") == 0);
  fs::remove_all(state);
}
