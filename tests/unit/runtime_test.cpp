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

TEST_CASE("fleet.each's results make their entries when read, and every way of reading sees them all") {
  CHECK(run(R"(
    local fleet = require "engine.fleet"
    local http = require "engine.http"
    local hosts = {}
    for i = 1, 50 do hosts[i] = { name = "n" .. i } end
    local res = fleet.each(hosts, { at_once = 10, max_failures = 50 }, function(h)
      if h.name == "n3" then error("boom on n3") end
      return { host = h.name, twice = h.name .. h.name }
    end)
    assert(res.ok == 49 and res.failed == 1 and res.skipped == 0)
    assert(rawget(res, 7) == nil, "entries are made when read")
    collectgarbage("collect")  -- what the hosts returned is kept until read
    assert(#res == 50)
    assert(res[7].name == "n7" and res[7].host == hosts[7] and res[7].value.twice == "n7n7")
    assert(res[7] == res[7] and res[7.0] == res[7], "an entry read twice is one table")
    assert(res[3].status == "failed" and res[3].error:find("boom on n3", 1, true), res[3].error)
    assert(res[51] == nil and res[0] == nil and res.nothing == nil)
    local n = 0
    for i, r in ipairs(res) do n = n + 1; assert(r.name == "n" .. i) end
    assert(n == 50)
    local keys = 0
    for k in pairs(res) do keys = keys + 1 end
    assert(keys == 53, "pairs: 50 entries and ok, failed, skipped; got " .. keys)
    local enc = http.json_decode(http.json_encode(res))
    assert(enc["50"].name == "n50" and enc["3"].status == "failed" and enc.ok == 49, http.json_encode(res):sub(1, 200))
    local other = fleet.each({ "a", "b", "c" }, { at_once = 3 }, function(h) return h:upper() end)
    table.sort(other, function(x, y) return x.value > y.value end)
    assert(other[1].value == "C" and other[3].name == "a")
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

TEST_CASE("fleet.each takes its options last too, as every module does") {
  CHECK(run(R"(
    local fleet = require "engine.fleet"
    local hosts, live, peak = {}, 0, 0
    for i = 1, 8 do hosts[i] = { name = "n" .. i } end
    local res = fleet.each(hosts, function(h)
      live = live + 1; peak = math.max(peak, live); sleep(0.002); live = live - 1
    end, { at_once = 2 })
    assert(peak == 2 and res.ok == 8, "peak " .. peak)
  )") == "");
  CHECK_THAT(run(R"(require("engine.fleet").each({"a"}, function() end, { atonce = 2 }))"),
             Contains("unknown option 'atonce' (did you mean 'at_once'?)"));
}

TEST_CASE("engine.check: unknown options and durations, named where the runbook called") {
  CHECK_THAT(run(R"(
    local check = require "engine.check"
    local function lib(opts) check.options(opts, { "timeout" }, "lib.fn") end
    lib({ timeuot = 1 }))"),
             Contains("snippet:4: lib.fn: unknown option 'timeuot' (did you mean 'timeout'?)"));
  CHECK(run(R"(
    local check = require "engine.check"
    assert(check.seconds("1h30m", "x") == 5400)
    assert(check.seconds(2.5, "x") == 2.5)
    assert(check.seconds(nil, "x") == nil)
    local ok, err = pcall(check.seconds, "-5s", "lib.fn", "timeout")
    assert(not ok)
    ok, err = pcall(check.seconds, {}, "lib.fn", "timeout")
    assert(err:find("lib.fn: timeout must be seconds or a duration", 1, true), err)
  )") == "");
}

TEST_CASE("engine.check.params resolves another runbook's params as engine run -e would") {
  std::string upgrade = std::string(ENGINE_RUNBOOKS_DIR) + "/k8s-upgrade.lua";
  CHECK(run(R"(
    local check = require "engine.check"
    local up = ")" + upgrade + R"("
    local p = assert(check.params(up, { "version=1.34.3", "kind=minor", "workers_at_once=10%" }))
    assert(p.version == "1.34.3" and p.workers_at_once == "10%" and p.canary == 1)
    local none, err = check.params(up, { "version=1.34.3", "kind=minor", "workers_at_once=150%" })
    assert(none == nil and err:find("param 'workers_at_once' expects a count", 1, true), err)
    none, err = check.params(up, { "version=1.34.3" })
    assert(none == nil and err:find("missing required param 'kind'", 1, true), err)
    none, err = check.params(up, { "kind" })
    assert(none == nil and err == "'kind': expected name=value", err)
    local ok, raised = pcall(check.params, "/nonexistent/x.lua", {})
    assert(not ok and raised:find("check.params: /nonexistent/x.lua: no such runbook file", 1, true), raised)
    ok, raised = pcall(check.params, up, { 1 })
    assert(not ok and raised:find("item 1 must be a name=value string", 1, true), raised)
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

  // An error that names its host already (std.remote.must's "HOST: WHAT exited N") is not
  // prefixed with it twice.
  err = run(R"(
    local fleet = require "engine.fleet"
    fleet.each({ "cp1", "cp2" }, { at_once = 1 }, function(h)
      if h == "cp2" then error("cp2: systemctl restart kubelet exited 1: failed", 0) end
    end)
  )");
  CHECK_THAT(err, Contains("\n  cp2: systemctl restart kubelet exited 1"));
  CHECK_THAT(err, !Contains("cp2: cp2:"));
}

TEST_CASE("fleet.each rejects unknown options with a suggestion") {
  CHECK_THAT(run(R"(require("engine.fleet").each({"a"}, { atonce = 2 }, function() end))"),
             Contains("unknown option 'atonce' (did you mean 'at_once'?)"));
  CHECK_THAT(run(R"(require("engine.fleet").each({"a"}, { at_once = "lots" }, function() end))"),
             Contains("at_once 'lots' is not a count or a percentage"));
  // 0 is neither one at a time nor all at once (Ansible's serial: 0): refused, saying what to write.
  CHECK_THAT(run(R"(require("engine.fleet").each({"a"}, { at_once = 0 }, function() end))"),
             Contains("fleet.each: at_once 0 would run no host: give at least 1, or \"100%\" for every host at once"));
  CHECK_THAT(run(R"(require("engine.fleet").each({"a"}, { at_once = "0%" }, function() end))"),
             Contains("at_once \"0%\" would run no host"));
  // A percentage that rounds down to no host is one host, as documented; `at_once = #hosts` of an
  // empty list runs nothing, as before.
  CHECK(run(R"(assert(require("engine.fleet").each({"a", "b"}, { at_once = "10%" }, function() end).ok == 2))") == "");
  CHECK(run(R"(local none = {} assert(require("engine.fleet").each(none, { at_once = #none }, function() end).ok == 0))") == "");
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
}

TEST_CASE("globals are fixed once the prelude ran: none can be added or replaced") {
  CHECK_THAT(run("newglobal = 1"), Contains("snippet:1: assignment to undeclared global 'newglobal' (declare it: local newglobal = ...)"));
  CHECK_THAT(run("step = function() end"), Contains("global 'step' belongs to the engine: it cannot be replaced"));
  CHECK_THAT(run("function timeout() end"), Contains("global 'timeout' belongs to the engine"));
  CHECK_THAT(run("load('leak = 1')()"), Contains("assignment to undeclared global 'leak'"));
  CHECK(run(R"(
    local seen = 0
    for k, v in pairs(_G) do if k == "step" or k == "log" then seen = seen + 1 end end
    assert(seen == 2, "pairs(_G) sees " .. seen)
    assert(_G.tostring(1) == "1" and _G._G == _G)
    local ok, err = pcall(setmetatable, _G, nil)
    assert(not ok and err:find("protected metatable"), err)
  )") == "");
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

TEST_CASE("std.k8s_repo finds a minor's repository: the hosts' var, else the node's apt source") {
  CHECK(run(R"(
    local repo = require "std.k8s_repo"
    local src = "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /\n"
    local t = repo.template(nil, src)
    assert(t == "https://pkgs.k8s.io/core:/stable:/v{minor}/deb", t)
    assert(repo.url(t, "1.34") == "https://pkgs.k8s.io/core:/stable:/v1.34/deb")
    local mirror = "deb http://mirror.example/k8s/core:/stable:/v1.33/deb/ /"
    assert(repo.template({}, mirror) == "http://mirror.example/k8s/core:/stable:/v{minor}/deb")
    assert(repo.template({ k8s_repo_url = "http://m/v{minor}" }, src) == "http://m/v{minor}")
    assert(repo.template(nil, "deb http://deb.debian.org/debian bookworm main") == repo.DEFAULT)
  )") == "");
}

TEST_CASE("std.text.columns fits each column to its widest cell") {
  CHECK(run(R"(
    local text = require "std.text"
    local got = text.columns({ { "NODE", "DAYS", "NOTE" }, { "ip-10-0-1-23.ec2.internal", 7, "due" }, { "cp1", 364, nil },
                               { "café", -2, "" } }, { right = { [2] = true } })
    local want = "NODE                       DAYS  NOTE\n" ..
                 "ip-10-0-1-23.ec2.internal     7  due\n" ..
                 "cp1                         364  -\n" ..
                 "café                         -2"
    assert(got == want, "\n" .. got)
    assert(text.columns({}) == "")
  )") == "");
}

TEST_CASE("strategy batch starts a new batch only when the last one has finished") {
  CHECK(run(R"(
    local fleet, time = require "engine.fleet", require "engine.time"
    local hosts, spans = {}, {}
    for i = 1, 7 do hosts[i] = "h" .. i end
    fleet.each(hosts, { at_once = 3, strategy = "batch" }, function(h)
      local s = time.monotonic()
      sleep(0.002 * (#spans % 3 + 1))
      spans[#spans + 1] = { h = h, s = s, e = time.monotonic() }
    end)
    local by = {}
    for _, x in ipairs(spans) do by[x.h] = x end
    local batches = { { "h1", "h2", "h3" }, { "h4", "h5", "h6" }, { "h7" } }
    for b = 2, #batches do
      for _, later in ipairs(batches[b]) do
        for _, earlier in ipairs(batches[b - 1]) do
          assert(by[later].s >= by[earlier].e, later .. " started before " .. earlier .. " finished")
        end
      end
    end
  )") == "");
}

TEST_CASE("max_per is never exceeded, and other groups keep going meanwhile") {
  CHECK(run(R"(
    local fleet = require "engine.fleet"
    local hosts, live, peak, peak_all, now = {}, {}, {}, 0, 0
    for i = 1, 30 do hosts[i] = { name = "n" .. i, vars = { zone = ({ "a", "b", "c" })[i % 3 + 1] } } end
    fleet.each(hosts, { at_once = 10, max_per = { zone = 1 } }, function(h)
      local z = h.vars.zone
      live[z] = (live[z] or 0) + 1
      now = now + 1
      peak[z] = math.max(peak[z] or 0, live[z])
      peak_all = math.max(peak_all, now)
      sleep(0.001 * (#h.name % 4))
      live[z] = live[z] - 1
      now = now - 1
    end)
    for z, p in pairs(peak) do assert(p == 1, "zone " .. z .. " had " .. p .. " at once") end
    assert(peak_all == 3, "peak " .. peak_all)
  )") == "");
}

TEST_CASE("fleet.each canary: the first host alone, then the window opens; a failed canary stops all") {
  CHECK(run(R"(
    local fleet = require "engine.fleet"
    local now, peak, order = 0, {}, {}
    fleet.each({ "c1", "h2", "h3", "h4", "h5" }, { at_once = "60%", canary = 1 }, function(h)
      now = now + 1
      order[#order + 1] = h
      peak[h] = now
      sleep(0.002)
      now = now - 1
    end)
    assert(order[1] == "c1" and peak.c1 == 1, "the canary ran alone")
    assert(math.max(peak.h2, peak.h3, peak.h4, peak.h5) == 3, "then 3 (60% of 5) at once")
  )") == "");
  auto err = run(R"(
    local fleet = require "engine.fleet"
    local ran = {}
    fleet.each({ "c1", "h2", "h3" }, { at_once = 3, canary = 1, max_failures = 2 }, function(h)
      ran[#ran + 1] = h
      if h == "c1" then error("kubelet did not come back", 0) end
    end)
  )");
  CHECK_THAT(err, Contains("the canary c1 failed, so no other host started: kubelet did not come back"));
  CHECK_THAT(err, Contains("2 hosts not started"));
}

TEST_CASE("fleet.skip ends a host as skipped with its reason: not a failure, the rollout goes on") {
  CHECK(run(R"(
    local fleet = require "engine.fleet"
    local res = fleet.each({ "a", "b", "c" }, { at_once = 1, canary = 1, max_failures = 0 }, function(h)
      if h ~= "c" then fleet.skip("ssh: refused") end
      return h
    end)
    assert(res[1].status == "skipped" and res[1].error == "skipped: ssh: refused", res[1].status .. " " .. tostring(res[1].error))
    assert(res[2].status == "skipped" and res[3].status == "ok" and res[3].value == "c")
    assert(res.ok == 1 and res.failed == 0 and res.skipped == 2)
  )") == "");
  CHECK_THAT(run(R"(require("engine.fleet").skip("why"))"), Contains("fleet.skip outside fleet.each: why"));
}

TEST_CASE("a gate that fails twice then passes holds admission until it passed gate_passes times") {
  CHECK(run(R"(
    local fleet = require "engine.fleet"
    local answers = { false, false, true, false, true, true, true, true, true, true }
    local calls, started = 0, {}
    fleet.each({ "a", "b", "c" }, { between = function(next_host)
        calls = calls + 1
        return answers[calls], "not yet"
      end, gate_passes = 2, gate_interval = 0.001 }, function(h)
      started[#started + 1] = { h = h, calls = calls }
    end)
    -- a starts at once; b after F F T F T T (6 calls); c after 2 more passes (8 calls).
    assert(started[1].h == "a" and started[1].calls == 0)
    assert(started[2].h == "b" and started[2].calls == 6, tostring(started[2].calls))
    assert(started[3].h == "c" and started[3].calls == 8, tostring(started[3].calls))
  )") == "");
}

TEST_CASE("a gate that never passes within gate_timeout stops the rollout and says why") {
  auto err = run(R"(
    local fleet = require "engine.fleet"
    local done = {}
    fleet.each({ "a", "b", "c" }, { between = function() return nil, "alert KubeNodeNotReady firing" end,
                                    gate_timeout = 0.05, gate_interval = 0.01 }, function(h) done[#done + 1] = h end)
  )");
  CHECK_THAT(err, Contains("the gate between hosts did not pass 1 time(s) in a row within 0.05s"));
  CHECK_THAT(err, Contains("last answer: alert KubeNodeNotReady firing"));
  CHECK_THAT(err, Contains("2 hosts not started"));
}

TEST_CASE("pause spaces admissions and order sorts them") {
  CHECK(run(R"(
    local fleet, time = require "engine.fleet", require "engine.time"
    local starts, names = {}, {}
    local hosts = { { name = "w3", vars = { rank = 3 } }, { name = "w1", vars = { rank = 1 } }, { name = "w2", vars = { rank = 2 } } }
    local res = fleet.each(hosts, { at_once = 3, pause = 0.03, order = function(h) return h.vars.rank end }, function(h)
      starts[#starts + 1] = time.monotonic()
      names[#names + 1] = h.name
    end)
    assert(table.concat(names, ",") == "w1,w2,w3", table.concat(names, ","))
    for i = 2, 3 do assert(starts[i] - starts[i - 1] >= 0.029, "admitted too early") end
    assert(res[1].name == "w3")  -- results keep the list's order
  )") == "");
}

TEST_CASE("fleet options are checked") {
  CHECK_THAT(run(R"(require("engine.fleet").each({"a"}, { strategy = "rolling" }, function() end))"),
             Contains("strategy must be \"window\" or \"batch\""));
  CHECK_THAT(run(R"(require("engine.fleet").each({"a"}, { max_per = { zone = 0 } }, function() end))"),
             Contains("max_per takes variable = count"));
}

TEST_CASE("hosts' tasks reuse finished coroutines and start clean on them") {
  CHECK(run(R"(
    local fleet = require "engine.fleet"
    local hosts = {}
    for i = 1, 60 do hosts[i] = "h" .. i end
    local threads, seen = {}, 0
    local res = fleet.each(hosts, { at_once = 3 }, function(h, ...)
      assert(select("#", ...) == 0, "a reused coroutine passed on stale values")
      local co = tostring(coroutine.running())
      if not threads[co] then threads[co], seen = true, seen + 1 end
      sleep(0.001)
      return h .. "!", "extra"
    end)
    assert(res.ok == 60)
    for i = 1, 60 do assert(res[i].value == "h" .. i .. "!", "wrong value for h" .. i) end
    -- three at a time over sixty hosts: a handful of coroutines, not sixty
    assert(seen <= 6, "coroutines made: " .. seen)
    -- a host that fails does not hand its coroutine (with its error) to the next one
    local res2 = fleet.each(hosts, { at_once = 2, max_failures = "100%" }, function(h)
      local n = tonumber(h:sub(2))
      if n % 2 == 0 then error("even " .. h) end
      return n
    end)
    assert(res2.ok == 30 and res2.failed == 30)
    assert(res2[3].value == 3 and res2[4].status == "failed" and res2[4].error:find("even h4", 1, true))
  )") == "");
}

TEST_CASE("std.ops: an operation changes nothing when its facts say the host is already so, and a change that did not take raises") {
  CHECK(run(R"(
    local ops = require "std.ops"
    local on, applied = false, 0
    local op = ops.define { name = "flag", holds = function() return on, "off" end,
      apply = function() applied = applied + 1; on = true; return "set" end }
    local h = { name = "h1" }
    local out, changed = ops.ensure(h, op)
    assert(out == "set" and changed == true and on)
    out, changed = ops.ensure(h, op)
    assert(out == nil and changed == false and applied == 1, "applied " .. applied)
    local stuck = ops.define { name = "stuck", holds = function() return false, "still off" end, apply = function() end }
    local ok, err = pcall(ops.ensure, h, stuck)
    assert(not ok and err == "h1: stuck: still not so after the change: still off", err)
    local n = 0
    local blind = ops.define { name = "blind", apply = function() n = n + 1 end }  -- no fact: runs each time
    ops.ensure(h, blind); ops.ensure(h, blind)
    assert(n == 2)
    -- verify: the change checked from what apply returned, holds not asked again
    local asked, state = 0, false
    local printed = ops.define { name = "printed", holds = function() asked = asked + 1; return state, "off" end,
      apply = function() state = true; return "now: on" end,
      verify = function(host, text) return host == h and text == "now: on", "apply printed " .. tostring(text) end }
    out, changed = ops.ensure(h, printed)
    assert(out == "now: on" and changed and asked == 1, "holds asked " .. asked)
    local lying = ops.define { name = "lying", holds = function() return false, "off" end,
      apply = function() return "now: off" end, verify = function(_, text) return text == "now: on", "apply printed " .. text end }
    ok, err = pcall(ops.ensure, h, lying)
    assert(not ok and err == "h1: lying: still not so after the change: apply printed now: off", err)
  )") == "");
  CHECK_THAT(run(R"(require("std.ops").define { name = "x", apply = function() end, verify = "yes" })"),
             Contains("verify must be a function(host, out)"));
  CHECK_THAT(run(R"(require("std.ops").define { name = "x", apply = function() end, hold = function() end })"),
             Contains("ops.define: unknown option 'hold' (did you mean 'holds'?)"));
  CHECK_THAT(run(R"(require("std.ops").define { name = "x" })"), Contains("an operation is a table"));
}
