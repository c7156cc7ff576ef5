// engine ctl's words, and the control file between `engine ctl` and the running engine.
#include <catch2/catch.hpp>

#include <fstream>

#include "engine/core/errors.hpp"
#include "engine/run/control.hpp"
#include "scratch.hpp"

using engine::run::Control;

TEST_CASE("ctl takes pause, continue, skip HOST and abort, and says what else is wrong") {
  CHECK(engine::run::parse_control({"pause"}).verb == Control::Verb::pause);
  CHECK(engine::run::parse_control({"continue"}).verb == Control::Verb::go_on);
  auto skip = engine::run::parse_control({"skip", "w2"});
  CHECK(skip.verb == Control::Verb::skip);
  CHECK(skip.host == "w2");
  CHECK(engine::run::parse_control({"abort"}).verb == Control::Verb::abort);
  CHECK_THROWS_WITH(engine::run::parse_control({"stop"}), "ctl: 'stop' is not pause | continue | skip HOST | abort");
  CHECK_THROWS_WITH(engine::run::parse_control({"skip"}), "ctl skip needs the host to skip");
  CHECK_THROWS_WITH(engine::run::parse_control({"pause", "w2"}), "ctl pause takes no host");
  CHECK_THROWS_WITH(engine::run::parse_control({"skip", "w 2"}), "ctl skip: 'w 2' is not a host name");
}

TEST_CASE("the reader acts on commands sent after it started, whole lines only") {
  Scratch dir("engine-control-test");
  std::filesystem::create_directories(dir.path);
  auto file = dir.path / "control";
  engine::run::send_control(file, {Control::Verb::abort, ""});  // an earlier attempt's
  engine::run::ControlReader reader(file);
  CHECK(reader.poll().empty());
  engine::run::send_control(file, {Control::Verb::skip, "w2"});
  {
    std::ofstream f(file, std::ios::app);
    f << "reboot w3\npause";  // an unknown word, then a line still being written
  }
  auto got = reader.poll();
  REQUIRE(got.size() == 1);
  CHECK(engine::run::to_line(got[0]) == "skip w2");
  {
    std::ofstream f(file, std::ios::app);
    f << "\n";
  }
  got = reader.poll();
  REQUIRE(got.size() == 1);
  CHECK(got[0].verb == Control::Verb::pause);
  CHECK(reader.poll().empty());
}

TEST_CASE("a control file that cannot be written is named") {
  CHECK_THROWS_WITH(engine::run::send_control("/nonexistent-dir/control", {Control::Verb::pause, ""}),
                    "cannot write /nonexistent-dir/control");
}
