// engine/journal: records survive a reopen; a torn or corrupt tail is reported and cut, never
// trusted; a corrupt record before the last refuses the journal.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "engine/journal/journal.hpp"
#include "scratch.hpp"

using engine::journal::Entry;
using engine::journal::Journal;

namespace {
std::string slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}
}  // namespace

TEST_CASE("journal records survive a reopen") {
  Scratch scratch("engine-journal-a");
  auto path = scratch.path.string();
  std::vector<std::string> w;
  {
    Journal j(path, w);
    j.intent("n1/drain");
    j.done("n1/drain", nlohmann::json::array({"ok", 3}));
    j.intent("n1/packages");
    j.intent("n2/drain");
    j.failed("n2/drain", "pdb");
  }
  Journal j(path, w);
  CHECK(w.empty());
  CHECK(j.records() == 5);
  CHECK(j.lookup("n1/drain")->state == Entry::done);
  CHECK(j.lookup("n1/drain")->result == nlohmann::json::array({"ok", 3}));
  CHECK(j.lookup("n1/packages")->state == Entry::intent);
  CHECK(j.lookup("n2/drain")->error == "pdb");
  CHECK_FALSE(j.lookup("n3/drain"));
}

TEST_CASE("a torn last record is reported, cut, and not trusted") {
  Scratch scratch("engine-journal-b");
  auto path = scratch.path.string();
  std::vector<std::string> w;
  { Journal(path, w).intent("a"); }
  std::ofstream(path, std::ios::app) << "0badc0de {\"step\":\"a\",\"t\":\"DO";
  Journal j(path, w);
  REQUIRE(w.size() == 1);
  CHECK_THAT(w[0], Catch::Contains("the last record is torn"));
  CHECK(j.lookup("a")->state == Entry::intent);
  j.done("a", nlohmann::json::array());
  CHECK(slurp(path).find("\"DO\n") == std::string::npos);
  std::vector<std::string> w2;
  Journal again(path, w2);
  CHECK(w2.empty());
  CHECK(again.lookup("a")->state == Entry::done);
}

TEST_CASE("a last record whose checksum fails is not trusted") {
  Scratch scratch("engine-journal-c");
  auto path = scratch.path.string();
  std::vector<std::string> w;
  {
    Journal j(path, w);
    j.intent("a");
    j.done("a", nlohmann::json::array());
  }
  auto text = slurp(path);
  text.replace(text.rfind("DONE"), 4, "DOME");
  std::ofstream(path, std::ios::trunc) << text;
  Journal j(path, w);
  CHECK_THAT(w.at(0), Catch::Contains("the last record (line 2) is corrupt"));
  CHECK(j.lookup("a")->state == Entry::intent);
}

TEST_CASE("a corrupt record in the middle refuses the journal") {
  Scratch scratch("engine-journal-d");
  auto path = scratch.path.string();
  std::vector<std::string> w;
  {
    Journal j(path, w);
    j.intent("a");
    j.done("a", nlohmann::json::array());
    j.intent("b");
  }
  auto text = slurp(path);
  text.replace(text.find("\"a\""), 3, "\"x\"");
  std::ofstream(path, std::ios::trunc) << text;
  CHECK_THROWS_WITH(Journal(path, w), Catch::Contains("record 1 of 3 is corrupt"));
}

TEST_CASE("crc32 is the standard one") {
  CHECK(engine::journal::crc32("123456789") == 0xCBF43926u);
}

TEST_CASE("a record missing in the middle is a gap the journal refuses") {
  Scratch scratch("engine-journal-gap");
  auto path = scratch.path.string();
  std::vector<std::string> w;
  {
    Journal j(path, w);
    j.intent("n1/drain");
    j.done("n1/drain", nlohmann::json::array());
    j.intent("n1/packages");
    j.done("n1/packages", nlohmann::json::array());
  }
  // The DONE of n1/drain is lost: each remaining record is intact (its CRC holds), only the
  // sequence tells. Trusted, the journal would run n1/drain again.
  std::string text = slurp(path);
  size_t second = text.find('\n') + 1;
  size_t third = text.find('\n', second) + 1;
  std::ofstream(path, std::ios::trunc) << text.substr(0, second) << text.substr(third);
  CHECK_THROWS_WITH(Journal(path, w), Catch::Contains("record 2 is number 3 where 2 was expected: records are missing"));
}

TEST_CASE("with a loop, records are synced off it and a step goes on once its record is on disk") {
  Scratch scratch("engine-journal-sync");
  auto path = scratch.path.string();
  std::vector<std::string> w;
  std::mutex m;
  std::vector<std::function<void()>> posted;  // the loop's queue: answers run only when drained here
  std::weak_ptr<void> held;
  auto drain = [&] {
    // The journal's thread answers after its fdatasync: wait (bounded) for the answer, then run it.
    for (int i = 0; i < 500; ++i) {
      std::vector<std::function<void()>> now;
      {
        std::lock_guard lk(m);
        now.swap(posted);
      }
      for (auto& fn : now) fn();
      if (!now.empty()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  {
    Journal j(path, w);
    j.sync_in_background({[&](std::function<void()> fn) {
                            std::lock_guard lk(m);
                            posted.push_back(std::move(fn));
                          },
                          [&]() -> std::shared_ptr<void> {
                            auto guard = std::make_shared<int>(0);
                            held = guard;
                            return guard;
                          }});
    j.intent("n1/drain");
    CHECK_FALSE(j.committed(1));  // written, but not known to be on disk yet
    CHECK_FALSE(held.expired());  // the loop is kept running meanwhile
    std::vector<std::string> answers;
    j.when_committed(1, [&](const std::string& e) { answers.push_back("1:" + e); });
    CHECK(answers.empty());
    REQUIRE(drain());
    CHECK(j.committed(1) == std::string());
    CHECK(answers == std::vector<std::string>{"1:"});
    j.done("n1/drain", nlohmann::json::array({1}));
    j.intent("n2/drain");
    j.when_committed(3, [&](const std::string& e) { answers.push_back("3:" + e); });
    while (!j.committed(3) && drain()) {
    }
    CHECK(j.committed(2) == std::string());
    CHECK(answers == std::vector<std::string>{"1:", "3:"});
    CHECK(held.expired());  // nothing on its way: the loop may end
    j.failed("n2/drain", "pdb");  // no step waits for this one: finish_sync puts it on disk
    CHECK(j.finish_sync().empty());
    CHECK(j.committed(4) == std::string());
  }
  Journal again(path, w);
  CHECK(again.records() == 4);
  CHECK(again.lookup("n2/drain")->error == "pdb");
}
