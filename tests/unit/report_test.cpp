// engine/run/report: every host's outcome once, the last fleet.each's word standing.
#include <catch2/catch.hpp>

#include "engine/run/report.hpp"
#include "engine/run/report_html.hpp"

using engine::run::Report;
using Catch::Contains;

namespace {
Report::HostOutcome outcome(const std::string& name, const std::string& status, const std::string& error = "") {
  return {name, status, error, 1.5, -1, ""};
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

TEST_CASE("the hosts a failed run offers to leave out: not connected to, and failed or never in a fleet.each") {
  Report r;
  r.begin("run-u", "demo", "demo.lua", nlohmann::json::object());
  r.unreachable("w1", "refused (connect 10.0.0.1:22: Connection refused)");
  r.unreachable("w1", "timeout (later)");  // the first reason stands
  r.unreachable("w2", "timeout (connect)");  // skipped by the runbook: not offered
  r.unreachable("w3", "unreachable (no route)");  // its last fleet.each ok: not offered
  r.unreachable("w4", "refused (rebooting)");
  r.reached("w4");  // connected to since, then failed for another reason: not offered
  r.unreachable("jump", "refused (connect)");  // no fleet.each ran on it
  r.hosts({outcome("w1", "failed", "refused"), outcome("w2", "skipped"), outcome("w3", "failed"), outcome("w4", "failed")});
  r.hosts({outcome("w3", "ok")});
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  CHECK(r.unreachable_failed() == Pairs{{"jump", "refused (connect)"}, {"w1", "refused (connect 10.0.0.1:22: Connection refused)"}});
  r.begin("run-v", "demo", "demo.lua", nlohmann::json::object());  // a new run forgets them
  CHECK(r.unreachable_failed().empty());
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

TEST_CASE("a span's long name is cut at 120 bytes, never inside a UTF-8 character") {
  Report r;
  r.begin("run-3", "demo", "demo.lua", nlohmann::json::object());
  std::string head(119, 'a');
  r.span("exec", "web1", head + "\xc3\xa9" + "tail", r.clock(), "ok");     // é would straddle byte 120
  r.span("exec", "web1", head + "b\xe2\x82\xac", r.clock(), "ok");          // € would start at byte 121
  r.span("exec", "web1", std::string(118, 'a') + "\xf0\x9f\x98\x80", r.clock(), "ok");  // a 4-byte one
  auto spans = r.snapshot()["spans"];
  REQUIRE(spans.size() == 3);
  CHECK(spans[0]["name"] == head);
  CHECK(spans[1]["name"] == head + "b");
  CHECK(spans[2]["name"] == std::string(118, 'a'));
  // and the report's JSON, as written, holds them as they are (no replacement character)
  CHECK_THAT(r.snapshot().dump(), !Contains("\xef\xbf\xbd"));
}

TEST_CASE("report.html: the data cannot end its script element early") {
  // "</" inside the embedded JSON would close the <script>; each becomes "<\/", JSON's same string.
  nlohmann::json doc = {{"runbook", "a</script><b>x"}, {"params", {{"note", "</tag> and </ again"}}}};
  std::string page = engine::run::html_report(doc);
  CHECK(count(page, "</script>") == 1);  // the page's own, at its end
  CHECK(count(page, "<\\/script><b>x") == 1);
  CHECK(count(page, "<\\/tag> and <\\/ again") == 1);
  CHECK(page.rfind("</script></body></html>") != std::string::npos);
}
