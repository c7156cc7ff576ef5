"""Where a run spent its time, as a person and a CI system read it: report.json's timeline, engine
show, JUnit, and report.html drawn by a real browser (headless Chromium)."""
import json
import os
import shutil
import subprocess
import unittest

from test_cli import CliTest, engine


def chromium_dom(path):
    """The page's DOM after its scripts ran, from headless Chromium (Debian's chromium)."""
    browser = shutil.which("chromium")
    if not browser:
        raise unittest.SkipTest("chromium is not installed (scripts/setup test installs it)")
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "file://" + os.path.abspath(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


class TestTimeline(CliTest):
    RB = """local fleet = require "engine.fleet"
return runbook { name = "timeline", run = function(p, inv)
  local asked = 0
  fleet.each(inv:hosts("all"), { at_once = 1, max_failures = 1, gate_interval = 0.2,
    between = function() asked = asked + 1; if asked == 1 then return nil, "held", "not yet" end; return true end },
    function(h)
      step("prepare", function() sleep(0.2) end)
      step("change", function() if h.name == "b" then error("b refuses <the change> & stops") end end)
    end)
end }
"""

    def test_steps_hosts_and_waits_have_times_in_the_report_show_and_junit(self):
        import xml.etree.ElementTree as ET
        rb = os.path.join(self.state, "timeline.lua")
        with open(rb, "w") as f:
            f.write(self.RB)
        junit = os.path.join(self.state, "junit.xml")
        r = self.run_rb(rb, "-i", "a,b,c,", "--junit", junit)
        self.assertEqual(r.returncode, 0, r.stderr)
        run_id = os.listdir(os.path.join(self.state, "runs"))[0]
        rep = json.load(open(os.path.join(self.state, "runs", run_id, "report.json")))
        steps = {s["step"]: s for s in rep["steps"]}
        for s in steps.values():
            self.assertLessEqual(s["start"], s["end"])
            self.assertRegex(s["started"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        # One host at a time: a's steps in order, b after a, c after b.
        self.assertLessEqual(steps["a/prepare"]["end"], steps["a/change"]["start"] + 0.001)
        self.assertLessEqual(steps["a/change"]["end"], rep["hosts"]["b"]["start"] + 0.001)
        self.assertLessEqual(rep["hosts"]["b"]["start"], rep["hosts"]["c"]["start"])
        gates = [sp for sp in rep["spans"] if sp["kind"] == "gate"]
        self.assertEqual([g["outcome"] for g in gates], ["passed", "passed"])
        self.assertLessEqual(gates[0]["end"], rep["hosts"]["b"]["start"] + 0.001)
        # JUnit: a suite per host, b's failed step with its error.
        root = ET.parse(junit).getroot()
        self.assertEqual((root.get("tests"), root.get("failures")), ("9", "2"))
        b = root.find("testsuite[@name='b']")
        failure = b.find("testcase[@name='change']/failure")
        self.assertEqual(failure.text, f"{rb}:8: b refuses <the change> & stops")
        # engine show: each step's duration, the waits.
        out = engine("show", run_id, "--state-dir", self.state).stdout
        self.assertRegex(out, r"done +a +prepare +\d+\.\ds")
        self.assertIn("WAITS", out)
        self.assertRegex(out, r"gate .* gate before the next host +passed")
        # report.html beside report.json, drawn by a real browser: a lane per host, a bar per step.
        dom = chromium_dom(os.path.join(self.state, "runs", run_id, "report.html"))
        for host in ("a", "b", "c"):
            self.assertIn(f'class="lane" data-host="{host}"', dom)
        self.assertEqual(dom.count('class="bar step done" data-step="prepare"'), 3)
        self.assertEqual(dom.count('class="bar step failed" data-step="change"'), 1)
        self.assertEqual(dom.count('class="bar gate"'), 2)
        self.assertIn("b refuses &lt;the change&gt; &amp; stops", dom)
        # engine report draws it again (and JUnit) from a finished run.
        again = os.path.join(self.state, "again.html")
        r = engine("report", run_id, "--html", again, "--state-dir", self.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(open(again).read(), open(os.path.join(self.state, "runs", run_id, "report.html")).read())

    def test_a_thousand_hosts_collapse_to_lanes_of_hosts_named_alike(self):
        inv = self.inventory("[web]\nweb-[0:999]\n[db]\ndb-[1:3]\n")
        rb = os.path.join(self.state, "many.lua")
        with open(rb, "w") as f:
            f.write('local fleet = require "engine.fleet"\nreturn runbook { name = "many", run = function(p, inv)\n'
                    '  fleet.each(inv:hosts("all"), { at_once = 200 }, function(h) end)\nend }\n')
        r = self.run_rb(rb, "-i", inv)
        self.assertEqual(r.returncode, 0, r.stderr)
        run_id = os.listdir(os.path.join(self.state, "runs"))[0]
        dom = chromium_dom(os.path.join(self.state, "runs", run_id, "report.html"))
        self.assertEqual(dom.count('class="lane"'), 2)
        self.assertIn('data-host="web*"', dom)
        self.assertIn("web* (1000 hosts)", dom)
        self.assertIn("db* (3 hosts)", dom)
        self.assertEqual(dom.count('<tr data-host='), 1003)  # the recap still lists every host


if __name__ == "__main__":
    unittest.main()
