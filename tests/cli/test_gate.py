"""Gates, run by the built engine: fleet.each's between (engine/fleet/rollout.cpp) and the etcd
runbooks' (runbooks/lib/etcd_nodes.lua): passes in a row an interval apart, a no asked again sooner."""
import json
import os
import re
import shutil
import unittest

from test_cli import CliTest, ROOT

RUNBOOK = r'''
local nodes = require "etcd_nodes"
local time = require "engine.time"
return runbook {
  name = "gate",
  params = { answers = { type = "list", default = {} }, passes = { type = "integer", default = 2 },
    timeout = { type = "number", default = 60 } },
  run = function(p)
    local at, calls = {}, 0
    local ok, why = nodes.gate(function()
      calls = calls + 1
      at[#at + 1] = time.monotonic()
      local a = p.answers[calls] or "pass"
      if a == "pass" then return true end
      return nil, "answer " .. calls .. ": " .. a
    end, p.passes, 2, p.timeout)
    local gaps = {}
    for i = 2, #at do gaps[#gaps + 1] = string.format("%.3f", at[i] - at[i - 1]) end
    print("GATE " .. tostring(ok) .. " " .. tostring(why) .. " " .. calls)
    print("GAPS " .. table.concat(gaps, " "))
  end,
}
'''


class TestGate(CliTest):
    def gate(self, *answers, passes=2, timeout=60):
        """The gate's outcome line and the seconds between its checks."""
        d = os.path.join(self.state, "book")
        os.makedirs(os.path.join(d, "lib"), exist_ok=True)
        shutil.copy(os.path.join(ROOT, "runbooks", "lib", "etcd_nodes.lua"), os.path.join(d, "lib"))
        with open(os.path.join(d, "gate.lua"), "w") as f:
            f.write(RUNBOOK)
        args = ["-e", f"passes={passes}", "-e", f"timeout={timeout}"] + (["-e", "answers=" + ",".join(answers)] if answers else [])
        r = self.run_rb(os.path.join(d, "gate.lua"), *args)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        line = re.search(r"GATE .*", r.stdout).group(0)
        gaps = re.search(r"GAPS(.*)", r.stdout).group(1)
        return line, [float(g) for g in gaps.split()]

    def test_passes_are_an_interval_apart_and_a_failing_check_is_asked_again_sooner(self):
        # Two failures, a pass, a failure (the row starts again), two passes: after each pass the
        # whole interval (2 s), after each failure the short retry (0.5 s).
        line, gaps = self.gate("down", "down", "pass", "down", "pass", "pass")
        self.assertEqual(line, "GATE true nil 6")
        after_fail, after_pass = [gaps[0], gaps[1], gaps[3]], [gaps[2], gaps[4]]
        for g in after_pass:
            self.assertGreaterEqual(g, 2.0, gaps)
        for g in after_fail:
            self.assertGreaterEqual(g, 0.5, gaps)
            self.assertLess(g, min(after_pass), gaps)

    def test_passing_at_once_waits_only_between_passes(self):
        line, gaps = self.gate(passes=3)
        self.assertEqual(line, "GATE true nil 3")
        self.assertEqual(len(gaps), 2)
        for g in gaps:
            self.assertGreaterEqual(g, 2.0, gaps)

    def test_a_check_that_never_passes_ends_at_the_timeout_with_its_last_reason(self):
        line, gaps = self.gate(*(["down"] * 200), timeout=1.2)
        self.assertRegex(line, r"^GATE nil answer \d+: down \d+$")
        self.assertGreaterEqual(len(gaps), 2)  # asked again every 0.5 s until the timeout


class TestFleetGate(CliTest):
    RB = """local fleet = require "engine.fleet"
local time = require "engine.time"
return runbook { name = "fleet-gate", run = function(p, inv)
  local answers = { "etcd unhealthy", "etcd unhealthy", "etcd unhealthy", "node w1 is NotReady", "pass", "pass" }
  local asked, at = 0, {}
  fleet.each(inv:hosts("all"), { at_once = 1, gate_passes = 2, gate_interval = 2, gate_retry = 0.3,
    between = function()
      asked = asked + 1
      at[#at + 1] = time.monotonic()
      local a = answers[asked] or "pass"
      if a == "pass" then return true end
      return nil, a
    end }, function(h) end)
  local gaps = {}
  for i = 2, #at do gaps[#gaps + 1] = string.format("%.3f", at[i] - at[i - 1]) end
  print("GAPS " .. table.concat(gaps, " "))
end }
"""

    def test_a_no_is_asked_again_after_gate_retry_and_said_once_per_reason(self):
        rb = os.path.join(self.state, "fleet-gate.lua")
        with open(rb, "w") as f:
            f.write(self.RB)
        r = self.run_rb(rb, "-i", "a,b,")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        gaps = [float(g) for g in re.search(r"GAPS(.*)", r.stdout).group(1).split()]
        self.assertEqual(len(gaps), 5, gaps)
        for g in gaps[:4]:  # after each no: gate_retry
            self.assertGreaterEqual(g, 0.3, gaps)
            self.assertLess(g, gaps[4], gaps)
        self.assertGreaterEqual(gaps[4], 2.0, gaps)  # between the passes: gate_interval
        # The console says each reason once while it lasts; the run log keeps every answer.
        held = [l for l in r.stdout.splitlines() + r.stderr.splitlines() if "gate holds admission" in l]
        self.assertEqual(len(held), 2, held)
        self.assertIn("etcd unhealthy", held[0])
        self.assertIn("node w1 is NotReady", held[1])
        run_id = os.listdir(os.path.join(self.state, "runs"))[0]
        with open(os.path.join(self.state, "runs", run_id, "run.log")) as f:
            logged = [json.loads(l) for l in f if "gate holds admission" in l]
        self.assertEqual([e["fields"]["why"] for e in logged],
                         ["etcd unhealthy"] * 3 + ["node w1 is NotReady"], logged)


    DRY_RB = """local fleet = require "engine.fleet"
return runbook { name = "dry-gate", params = { window = { type = "string" } }, run = function(p, inv)
  local asked = 0
  fleet.each(inv:hosts("all"), { at_once = 1, gate_passes = 3, gate_interval = 600, pause = 600, window = p.window,
    window_wait = true, between = function()
      asked = asked + 1
      if asked == 1 then return nil, "node w1 is NotReady" end
      return true
    end }, function(h) print("RAN " .. h.name) end)
  print("ASKED " .. asked)
end }
"""

    def test_a_dry_run_asks_the_gate_once_a_host_and_waits_for_nothing(self):
        # Nothing changed in a dry run, so a pause, a second pass or a closed window would come to
        # nothing but time: 600 s of each here, the run bounded by the call's 60 s.
        import datetime
        opens = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)
        window = f"daily {opens:%H}:00-{(opens + datetime.timedelta(hours=1)):%H}:00"
        rb = os.path.join(self.state, "dry-gate.lua")
        with open(rb, "w") as f:
            f.write(self.DRY_RB)
        r = self.run_rb(rb, "-i", "a,b,c,", "-e", f"window={window}", "--dry-run")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertEqual(re.findall(r"RAN (\w)", r.stdout), ["a", "b", "c"])
        self.assertIn("ASKED 2", r.stdout)  # once before b, once before c
        self.assertRegex(out, r'dry-run: the gate holds admission now; a real run waits for it .*why="node w1 is NotReady"')
        self.assertRegex(out, r"dry-run: the maintenance window is closed; a real run waits until it opens .*opens_at=")


if __name__ == "__main__":
    unittest.main()
