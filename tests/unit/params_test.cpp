// engine/params: how -e strings become typed values, and how mistakes are reported.
#include <catch2/catch.hpp>

#include "engine/core/errors.hpp"
#include "engine/params/params.hpp"

using namespace engine::params;

namespace {
Spec spec(std::string name, Type t) {
  Spec s;
  s.name = std::move(name);
  s.type = t;
  return s;
}
const PatternCheck no_pattern = [](const std::string&, const std::string&) { return true; };

std::string error_of(const std::vector<Spec>& specs, std::vector<std::pair<std::string, std::string>> given) {
  try {
    resolve(specs, given, no_pattern);
  } catch (const engine::ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("durations accept units, combinations and bare seconds") {
  CHECK(*parse_duration("90s") == 90);
  CHECK(*parse_duration("10m") == 600);
  CHECK(*parse_duration("1h30m") == 5400);
  CHECK(*parse_duration("250ms") == Approx(0.25));
  CHECK(*parse_duration("2d") == 172800);
  CHECK(*parse_duration("12") == 12);
  CHECK(*parse_duration("1.5") == 1.5);
  CHECK_FALSE(parse_duration("10 minutes"));
  CHECK_FALSE(parse_duration("-5"));
  CHECK_FALSE(parse_duration("m"));
  CHECK_FALSE(parse_duration(""));
}

TEST_CASE("each type parses its values and names the param when it cannot") {
  CHECK(parse_value(spec("n", Type::integer), "42", no_pattern) == 42);
  CHECK(parse_value(spec("n", Type::integer), "-3", no_pattern) == -3);
  CHECK(parse_value(spec("x", Type::number), "2.5", no_pattern) == 2.5);
  CHECK(parse_value(spec("b", Type::boolean), "yes", no_pattern) == true);
  CHECK(parse_value(spec("b", Type::boolean), "False", no_pattern) == false);
  CHECK(parse_value(spec("l", Type::list), "a, b,,c", no_pattern) == nlohmann::json({"a", "b", "c"}));
  CHECK(parse_value(spec("l", Type::list), R"(["x,y","z"])", no_pattern) == nlohmann::json({"x,y", "z"}));
  CHECK(parse_value(spec("d", Type::duration), "5m", no_pattern) == 300.0);

  CHECK_THROWS_WITH(parse_value(spec("workers_at_once", Type::integer), "two", no_pattern),
                    "param 'workers_at_once' expects an integer, got 'two'");
  CHECK_THROWS_WITH(parse_value(spec("n", Type::integer), "1.5", no_pattern), Catch::Contains("expects an integer"));
  CHECK_THROWS_WITH(parse_value(spec("b", Type::boolean), "maybe", no_pattern), Catch::Contains("expects a boolean"));
  CHECK_THROWS_WITH(parse_value(spec("d", Type::duration), "soon", no_pattern), Catch::Contains("expects a duration"));
  // an amount: what fleet.each takes, refused here rather than when the rollout reaches it
  CHECK(parse_value(spec("a", Type::amount), "10%", no_pattern) == "10%");
  CHECK(parse_value(spec("a", Type::amount), " 3", no_pattern) == "3");
  CHECK(parse_value(spec("a", Type::amount), "100%", no_pattern) == "100%");
  CHECK_THROWS_WITH(parse_value(spec("workers_at_once", Type::amount), "150%", no_pattern),
                    "param 'workers_at_once' expects a count such as 3 or a percentage such as 10% (at most 100%), got '150%'");
  CHECK_THROWS_WITH(parse_value(spec("a", Type::amount), "1.5", no_pattern), Catch::Contains("expects a count"));
  CHECK_THROWS_WITH(parse_value(spec("a", Type::amount), "-1", no_pattern), Catch::Contains("expects a count"));
  CHECK_THROWS_WITH(parse_value(spec("a", Type::amount), "ten", no_pattern), Catch::Contains("expects a count"));
  // a time of day: a timer's first firing, refused here rather than at the timer (after the work)
  CHECK(parse_value(spec("t", Type::time), "03:00", no_pattern) == "03:00");
  CHECK(parse_value(spec("t", Type::time), " 3:05:59", no_pattern) == "3:05:59");
  CHECK(parse_value(spec("t", Type::time), "23:59", no_pattern) == "23:59");
  CHECK_THROWS_WITH(parse_value(spec("timer_at", Type::time), "25:99", no_pattern),
                    "param 'timer_at' expects a time of day, HH:MM or HH:MM:SS (00:00 to 23:59:59), got '25:99'");
  for (const char* bad : {"24:00", "03:60", "03:00:60", "3", "03:0", "03:00:", "03:00:5", "03:00:00:00", "ab:cd", ""})
    CHECK_THROWS_WITH(parse_value(spec("t", Type::time), bad, no_pattern), Catch::Contains("expects a time of day"));
  CHECK(normalize_default(spec("t", Type::time), "04:00") == "04:00");
  CHECK_THROWS_WITH(normalize_default(spec("t", Type::time), "4pm"), Catch::Contains("is not a time of day"));
  // a file this machine writes: its directory exists (found by the write, at the end, otherwise)
  CHECK(parse_value(spec("o", Type::output), "/tmp/engine-params-out.conf", no_pattern) == "/tmp/engine-params-out.conf");
  CHECK(parse_value(spec("o", Type::output), "relative.conf", no_pattern) == "relative.conf");  // the working directory
  CHECK_THROWS_WITH(parse_value(spec("admin_conf", Type::output), "/nonexistent-dir/admin.conf", no_pattern),
                    "param 'admin_conf' expects a file this machine can write (its directory /nonexistent-dir does not "
                    "exist), got '/nonexistent-dir/admin.conf'");
  CHECK_THROWS_WITH(parse_value(spec("o", Type::output), "/tmp", no_pattern), Catch::Contains("(it is a directory)"));
  CHECK_THROWS_WITH(parse_value(spec("o", Type::output), " ", no_pattern), Catch::Contains("expects a file this machine writes"));
  // a list with values: each item one of them, the closest named
  auto certs = spec("certs", Type::list);
  certs.values = {"all", "apiserver", "admin.conf"};
  CHECK(parse_value(certs, "apiserver, admin.conf", no_pattern) == json::array({"apiserver", "admin.conf"}));
  CHECK(parse_value(certs, R"(["all"])", no_pattern) == json::array({"all"}));
  CHECK_THROWS_WITH(parse_value(certs, "apiserver,admin.cnf", no_pattern),
                    "param 'certs' expects a list of all, apiserver, admin.conf: 'admin.cnf' is none of them (did you mean "
                    "'admin.conf'?), got 'apiserver,admin.cnf'");
  CHECK_THROWS_WITH(parse_value(certs, R"(["ca"])", no_pattern), Catch::Contains("'ca' is none of them"));
  CHECK_THROWS_WITH(normalize_default(certs, json::array({"ca"})), Catch::Contains("is not a list of all, apiserver, admin.conf"));
  auto at_once = spec("at_once", Type::amount);
  at_once.pattern = "^0*[1-9]%d*%%?$";
  PatternCheck not_zero = [](const std::string& v, const std::string&) { return v != "0"; };
  CHECK_THROWS_WITH(parse_value(at_once, "0", not_zero), Catch::Contains("'0' is refused"));
  auto e = spec("kind", Type::enumeration);
  e.values = {"patch", "minor"};
  CHECK(parse_value(e, "minor", no_pattern) == "minor");
  CHECK_THROWS_WITH(parse_value(e, "pacth", no_pattern),
                    "param 'kind' expects one of patch, minor (did you mean 'patch'?), got 'pacth'");
}

TEST_CASE("a numeric param's range is checked, its ends named") {
  auto r = spec("pod_ready_ratio", Type::number);
  r.min = 0;
  r.max = 1;
  r.help = "share of pods that must be ready";
  CHECK(parse_value(r, "0.9", no_pattern) == 0.9);
  CHECK(parse_value(r, "1", no_pattern) == 1.0);
  CHECK_THROWS_WITH(parse_value(r, "1.5", no_pattern),
                    "param 'pod_ready_ratio': '1.5' is refused: it must be from 0 to 1 (share of pods that must be ready)");
  auto n = spec("gate_passes", Type::integer);
  n.min = 1;
  CHECK_THROWS_WITH(parse_value(n, "0", no_pattern), "param 'gate_passes': '0' is refused: it must be at least 1");
  CHECK(range_text(n) == "at least 1");
  auto d = spec("stagger", Type::duration);
  d.max = 3600;
  CHECK(parse_value(d, "1h", no_pattern) == 3600.0);
  CHECK_THROWS_WITH(parse_value(d, "2h", no_pattern), "param 'stagger': '2h' is refused: it must be at most 3600s");
  CHECK_THROWS_WITH(normalize_default(n, 0), "param 'gate_passes': default 0 is not at least 1");
  CHECK(range_text(spec("x", Type::integer)).empty());
}

TEST_CASE("a pattern is checked and its help shown when it fails") {
  auto s = spec("version", Type::string);
  s.pattern = "^%d+%.%d+%.%d+$";
  s.help = "target, e.g. 1.34.3";
  PatternCheck reject = [](const std::string& v, const std::string&) { return v == "1.34.3"; };
  CHECK(parse_value(s, "1.34.3", reject) == "1.34.3");
  CHECK_THROWS_WITH(parse_value(s, "v1.34", reject),
                    "param 'version': 'v1.34' is refused: target, e.g. 1.34.3 (it must match the Lua pattern ^%d+%.%d+%.%d+$)");
}

TEST_CASE("resolve fills defaults, rejects unknown keys with a suggestion, names missing params") {
  auto version = spec("version", Type::string);
  version.required = true;
  version.help = "target, e.g. 1.34.3";
  auto workers = spec("workers_at_once", Type::integer);
  workers.default_value = 1;
  std::vector<Spec> specs{version, workers};

  auto v = resolve(specs, {{"version", "1.34.3"}}, no_pattern);
  CHECK(v["version"] == "1.34.3");
  CHECK(v["workers_at_once"] == 1);

  CHECK(error_of(specs, {{"version", "1"}, {"worker_at_once", "2"}}) ==
        "unknown param 'worker_at_once' (did you mean 'workers_at_once'?)");
  CHECK(error_of(specs, {}) ==
        "missing required param 'version' (string): target, e.g. 1.34.3; give it with -e version=...");
  // Every problem at once, so one correction round is enough.
  auto all = error_of(specs, {{"workers_at_once", "x"}, {"bogus", "1"}});
  CHECK_THAT(all, Catch::Contains("expects an integer, got 'x'"));
  CHECK_THAT(all, Catch::Contains("unknown param 'bogus'"));
  CHECK_THAT(all, Catch::Contains("missing required param 'version'"));
  // A required param given with a bad value is that one problem, not also "missing".
  auto wrong = spec("count", Type::integer);
  wrong.required = true;
  CHECK(error_of({wrong}, {{"count", "many"}}) == "param 'count' expects an integer, got 'many'");
}

TEST_CASE("a secret's value never appears in an error or a display") {
  auto s = spec("token", Type::integer);
  s.secret = true;
  CHECK_THROWS_WITH(parse_value(s, "hunter2", no_pattern), "param 'token' expects an integer, got <secret>");
  CHECK(display(s, 5) == "<secret>");
}

TEST_CASE("defaults are checked against the declared type") {
  auto d = spec("drain_timeout", Type::duration);
  CHECK(normalize_default(d, "10m") == 600.0);
  CHECK(normalize_default(d, 30) == 30);
  CHECK_THROWS_WITH(normalize_default(d, "later"), "param 'drain_timeout': default \"later\" is not a duration");
  auto a = spec("max_failures", Type::amount);
  CHECK(normalize_default(a, 2) == "2");
  CHECK(normalize_default(a, "25%") == "25%");
  CHECK_THROWS_WITH(normalize_default(a, "200%"), "param 'max_failures': default \"200%\" is not a count or a percentage up to 100%");
  auto i = spec("n", Type::integer);
  CHECK_THROWS(normalize_default(i, "3"));
  auto l = spec("ignore", Type::list);
  CHECK_THROWS(normalize_default(l, nlohmann::json::array({1})));
}

TEST_CASE("unknown types are named with the closest one") {
  CHECK_THROWS_WITH(parse_type("int"), Catch::Contains("unknown param type 'int'"));
  CHECK_THROWS_WITH(parse_type("strng"), Catch::Contains("did you mean 'string'?"));
}
