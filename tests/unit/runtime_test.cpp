// bindings: Lua tasks on the event loop — fleet.each, sleep, timeout, the sandbox.
#include <catch2/catch.hpp>

#include "bindings/runtime.hpp"

using engine::lua::Runtime;
using Catch::Contains;

namespace {
std::string run(const std::string& code) {
  Runtime rt(ENGINE_STDLIB_DIR);
  return rt.run_snippet(code);
}
}  // namespace

TEST_CASE("fleet.each never runs more than at_once hosts and returns per-host results") {
  CHECK(run(R"(
    local fleet = require "engine.fleet"
    local hosts = {}
    for i = 1, 40 do hosts[i] = "h" .. i end
    local live, peak, order = 0, 0, {}
    local res = fleet.each(hosts, { at_once = 6 }, function(h)
      order[#order + 1] = h
      live = live + 1
      peak = math.max(peak, live)
      sleep(0.001 * (#h % 3))
      live = live - 1
      return h .. "!"
    end)
    assert(peak == 6, "peak " .. peak)
    assert(#res == 40 and res.ok == 40 and res.failed == 0 and res.skipped == 0)
    assert(res[7].name == "h7" and res[7].status == "ok" and res[7].value == "h7!")
    assert(res[7].duration >= 0)
    for i = 1, 40 do assert(order[i] == "h" .. i, "admitted out of order") end
  )") == "");
}

TEST_CASE("fleet.each takes a percentage for at_once") {
  CHECK(run(R"(
    local fleet = require "engine.fleet"
    local hosts, live, peak = {}, 0, 0
    for i = 1, 20 do hosts[i] = { name = "n" .. i } end
    fleet.each(hosts, { at_once = "25%", max_failures = "10%" }, function(h)
      live = live + 1; peak = math.max(peak, live); sleep(0.002); live = live - 1
    end)
    assert(peak == 5, "peak " .. peak)
  )") == "");
}

TEST_CASE("failures within max_failures are reported; beyond it the call raises and stops admitting") {
  CHECK(run(R"(
    local fleet = require "engine.fleet"
    local hosts = {}
    for i = 1, 10 do hosts[i] = "h" .. i end
    local res = fleet.each(hosts, { at_once = 2, max_failures = 1 }, function(h)
      sleep(0.001)
      if h == "h4" then error("disk full on " .. h) end
    end)
    assert(res.ok == 9 and res.failed == 1, "ok " .. res.ok)
    assert(res[4].status == "failed")
    assert(res[4].error:find("disk full on h4", 1, true), res[4].error)
  )") == "");

  auto err = run(R"(
    local fleet = require "engine.fleet"
    local hosts, started = {}, 0
    for i = 1, 10 do hosts[i] = "h" .. i end
    local ok, e = pcall(fleet.each, hosts, { at_once = 2 }, function(h)
      started = started + 1
      sleep(0.001)
      if h == "h3" then error("boom") end
    end)
    assert(not ok)
    assert(started <= 4, "started " .. started)
    error(e, 0)
  )");
  CHECK_THAT(err, Contains("fleet.each: 1 of 10 hosts failed, more than max_failures (0)"));
  CHECK_THAT(err, Contains("h3: snippet:"));
  CHECK_THAT(err, Contains("hosts not started"));
}

TEST_CASE("fleet.each rejects unknown options with a suggestion") {
  CHECK_THAT(run(R"(require("engine.fleet").each({"a"}, { atonce = 2 }, function() end))"),
             Contains("unknown option 'atonce' (did you mean 'at_once'?)"));
  CHECK_THAT(run(R"(require("engine.fleet").each({"a"}, { at_once = "lots" }, function() end))"),
             Contains("at_once 'lots' is not a count or a percentage"));
}

TEST_CASE("timeout cuts a wait short and pcall cannot swallow it") {
  CHECK(run(R"(
    local t0 = require("engine.time").monotonic()
    local r, err = timeout(0.02, function() sleep(5) return "late" end)
    assert(r == nil and err == "timeout")
    local r2, err2 = timeout(0.02, function() local ok = pcall(sleep, 5) return "swallowed" end)
    assert(r2 == nil and err2 == "timeout", tostring(r2))
    local r3 = timeout(5, function() sleep(0.001) return "in time" end)
    assert(r3 == "in time")
    -- nested: the inner deadline fires first and only the inner timeout sees it
    local outer = timeout(5, function()
      local a, b = timeout(0.01, sleep, 5)
      return b
    end)
    assert(outer == "timeout")
    assert(require("engine.time").monotonic() - t0 < 4, "a deadline did not fire")
  )") == "");
}

TEST_CASE("a timeout around fleet.each cancels the hosts in flight") {
  CHECK(run(R"(
    local fleet = require "engine.fleet"
    local finished = 0
    local r, err = timeout(0.02, fleet.each, {"a", "b", "c"}, { at_once = 3 }, function()
      sleep(5)
      finished = finished + 1
    end)
    assert(err == "timeout" and finished == 0)
  )") == "");
}

TEST_CASE("the sandbox keeps out the shell, files and binary chunks") {
  CHECK_THAT(run("os.execute('true')"), Contains("attempt to call a nil value (field 'execute')"));
  CHECK_THAT(run("io.popen('id')"), Contains("undefined global 'io'"));
  CHECK_THAT(run("dofile('/etc/passwd')"), Contains("undefined global 'dofile'"));
  CHECK_THAT(run("loadfile('/etc/passwd')"), Contains("undefined global 'loadfile'"));
  CHECK_THAT(run("load(string.dump(print))"), Contains("attempt to call a nil value (field 'dump')"));
  CHECK_THAT(run("load('return 1', 'x', 'b')"), Contains("only text chunks"));
  CHECK_THAT(run("require 'os'"), Contains("module 'os' not found"));
  CHECK_THAT(run("require '../etc/passwd'"), Contains("not a module name"));
  CHECK_THAT(run("package.path = ''"), Contains("undefined global 'package'"));
  CHECK_THAT(run("debug.sethook()"), Contains("undefined global 'debug'"));
  CHECK(run("assert(load('return 1 + 1')() == 2)") == "");
  CHECK(run("assert(type(os.time()) == 'number' and os.getenv('HOME'))") == "");
}

TEST_CASE("reading an undefined global names it") {
  CHECK_THAT(run("local x = kubectl"), Contains("snippet:1: undefined global 'kubectl'"));
  CHECK_THAT(run("local x = tostrin(1)"), Contains("undefined global 'tostrin' (did you mean 'tostring'?)"));
  CHECK(run("newglobal = 1; assert(newglobal == 1)") == "");
}

TEST_CASE("engine waits are refused where they cannot yield") {
  CHECK_THAT(run("local co = coroutine.wrap(function() sleep(0) end); co()"), Contains("sleep: only from inside run()"));
  CHECK_THAT(run("coroutine.yield()"), Contains("not inside a coroutine of your own"));
  CHECK(run("local co = coroutine.wrap(function() coroutine.yield(1) return 2 end); assert(co() == 1 and co() == 2)") == "");
}

TEST_CASE("stdlib modules load through require") {
  CHECK(run("local s = require 'std.semver'; assert(s.parse('1.34.3').minor == 34)") == "");
  CHECK_THAT(run("require 'std.nothing'"), Contains("module 'std.nothing' not found"));
}
