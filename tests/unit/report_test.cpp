// engine/run/report: every host's outcome once, the last fleet.each's word standing.
#include <catch2/catch.hpp>

#include "engine/run/report.hpp"

using engine::run::Report;
using Catch::Contains;

namespace {
Report::HostOutcome outcome(const std::string& name, const std::string& status, const std::string& error = "") {
  return {name, status, error, 1.5};
}
size_t count(const std::string& text, const std::string& word) {
  size_t n = 0;
  for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("the report keeps one outcome per host, the latest fleet.each's") {
  Report r;
  r.begin("run-1", "demo", "demo.lua", nlohmann::json::object());
  r.hosts({outcome("web1", "ok"), outcome("web2", "failed", "boom"), outcome("db1", "not started")});
  r.hosts({outcome("db1", "ok"), outcome("cache1", "ok"), outcome("web2", "ok")});
  auto hosts = r.snapshot()["hosts"];
  CHECK(hosts.size() == 4);
  CHECK(hosts["web1"]["status"] == "ok");
  CHECK(hosts["web2"]["status"] == "ok");
  CHECK_FALSE(hosts["web2"].contains("error"));
  CHECK(hosts["db1"]["status"] == "ok");
  CHECK(hosts["cache1"]["status"] == "ok");
  auto recap = r.recap_text();
  CHECK(count(recap, "web2") == 1);
  CHECK(count(recap, "db1") == 1);
  CHECK_THAT(recap, !Contains("failed") && !Contains("not started"));
}

TEST_CASE("a host listed twice in one fleet.each is reported once, with its last outcome") {
  Report r;
  r.begin("run-2", "demo", "demo.lua", nlohmann::json::object());
  r.hosts({outcome("a", "failed", "first try"), outcome("b", "ok"), outcome("a", "ok")});
  CHECK(r.snapshot()["hosts"]["a"]["status"] == "ok");
  auto recap = r.recap_text();
  CHECK(count(recap, "  a ") == 1);
  CHECK_THAT(recap, !Contains("first try"));
  // and a later list that names it again, twice, new hosts among them
  r.hosts({outcome("c", "failed", "x"), outcome("a", "failed", "second"), outcome("c", "ok")});
  auto hosts = r.snapshot()["hosts"];
  CHECK(hosts.size() == 3);
  CHECK(hosts["a"]["error"] == "second");
  CHECK(hosts["c"]["status"] == "ok");
  CHECK(count(r.recap_text(), "  c ") == 1);
}

TEST_CASE("outcomes before the run's report begins are not kept") {
  Report r;
  r.hosts({outcome("web1", "ok")});
  CHECK(r.recap_text().empty());
}
