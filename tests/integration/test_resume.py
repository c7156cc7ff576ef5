"""Journaled steps and `engine resume`: SIGKILL at random points, torn journals, changed runbooks."""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab import sshd as sshlab  # noqa: E402

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin/engine"))

STEPS = """
local ssh = require "engine.ssh"
local fleet = require "engine.fleet"
return runbook {
  name = "ten-steps",
  params = { kh = { type = "string" }, key = { type = "string" }, dir = { type = "string" } },
  run = function(p, inv)
    ssh.configure { known_hosts = p.kh, identity_files = { p.key } }
    fleet.each(inv:group("all"), { at_once = 5 }, function(h)
      local file = p.dir .. "/" .. h.name .. ".log"
      for i = 1, 10 do
        local line = "step" .. i
        step(line, function()
          local r = assert(h:exec("echo " .. line .. " >> " .. file))
          assert(r.code == 0, r.stderr)
        end, { probe = function()
          local r = assert(h:exec("grep -qx " .. line .. " " .. file, { read_only = true }))
          return r.code == 0
        end })
      end
    end)
  end,
}
"""


class TestResume(sshlab.LabCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="engine-resume-")
        os.chmod(self.tmp, 0o777)  # the hosts' files are written by the SSH user
        self.state = os.path.join(self.tmp, "state")
        self.runbook = os.path.join(self.tmp, "steps.lua")
        with open(self.runbook, "w") as f:
            f.write(STEPS)
        self.inv = os.path.join(self.tmp, "hosts.ini")
        with open(self.inv, "w") as f:
            for i in range(5):
                f.write(f"node{i} ansible_host=127.0.0.1 ansible_port={self.sshd.port} ansible_user={sshlab.USER}\n")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self):
        return subprocess.Popen([ENGINE, "run", self.runbook, "-i", self.inv, "-e", f"kh={self.lab.known_hosts}",
                                 "-e", f"key={self.lab.keys.key}", "-e", f"dir={self.tmp}", "--state-dir", self.state],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def resume(self, *extra):
        return subprocess.Popen([ENGINE, "resume", self.run_id(), "--state-dir", self.state, *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run_id(self):
        return os.listdir(os.path.join(self.state, "runs"))[0]

    def lines(self, host):
        path = os.path.join(self.tmp, f"{host}.log")
        return open(path).read().split() if os.path.exists(path) else []

    def test_sigkill_at_random_points_100_times_every_step_runs_exactly_once(self):
        rng = random.Random(20261121)
        kills, finished = 0, False
        p = self.start()
        while kills < 100:
            time.sleep(rng.uniform(0.0, 0.35))
            if p.poll() is None:
                p.kill()
                kills += 1
            p.wait()
            if p.returncode == 0:
                finished = True
                # Finished before a kill landed: start over on fresh files to keep killing.
                if kills < 100:
                    shutil.rmtree(self.state)
                    for i in range(5):
                        os.remove(os.path.join(self.tmp, f"node{i}.log"))
                    p = self.start()
                    continue
                break
            p = self.resume() if os.path.isdir(os.path.join(self.state, "runs")) and os.listdir(os.path.join(self.state, "runs")) else self.start()
        # Let the last run finish without a kill.
        if p.poll() is None:
            p.wait(timeout=120)
        if p.returncode != 0:
            p = self.resume()
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err)
        self.assertEqual(kills, 100)
        for i in range(5):
            self.assertEqual(self.lines(f"node{i}"), [f"step{n}" for n in range(1, 11)], f"node{i}")

    def test_show_lists_each_step_done_failed_or_unknown(self):
        rb = os.path.join(self.tmp, "mixed.lua")
        with open(rb, "w") as f:
            f.write("""
local fleet = require "engine.fleet"
return runbook {
  name = "mixed",
  run = function(p, inv)
    fleet.each(inv:hosts("node0,node1"), { at_once = 2 }, function(h)
      step("prepare", function() return 1 end)
      if h.name == "node1" then step("upgrade", function() error("kubeadm exited 1: boom", 0) end) end
      step("upgrade", function() sleep(60) end)  -- node0: killed in the middle of it
    end)
  end,
}
""")
        p = subprocess.Popen([ENGINE, "run", rb, "-i", self.inv, "--state-dir", self.state],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        journal = lambda: open(os.path.join(self.state, "runs", self.run_id(), "journal")).read()
        sshlab.wait_for(lambda: os.path.isdir(os.path.join(self.state, "runs")) and os.listdir(os.path.join(self.state, "runs"))
                        and '"node0/upgrade"' in journal() and "boom" in journal(), 30)
        p.kill()
        p.wait()
        show = subprocess.run([ENGINE, "show", self.run_id(), "--state-dir", self.state], capture_output=True, text=True)
        self.assertEqual(show.returncode, 0, show.stderr)
        self.assertIn("state     incomplete", show.stdout)
        self.assertRegex(show.stdout, r"done\s+node0\s+prepare")
        self.assertRegex(show.stdout, r"done\s+node1\s+prepare")
        self.assertRegex(show.stdout, r"failed\s+node1\s+upgrade\s+\d+\.\ds\s+kubeadm exited 1: boom")
        self.assertRegex(show.stdout, r"unknown\s+node0\s+upgrade\s+running\s+started, no record of finishing")

    def test_a_torn_journal_tail_is_detected_and_not_trusted(self):
        p = self.start()
        _, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err)
        import json
        rep = json.load(open(os.path.join(self.state, "runs", self.run_id(), "report.json")))
        steps = {s["step"]: s for s in rep["steps"]}
        self.assertEqual(len(steps), 50)
        self.assertEqual(steps["node3/step7"]["status"], "done")
        self.assertGreaterEqual(steps["node3/step7"]["seconds"], 0)
        journal = os.path.join(self.state, "runs", self.run_id(), "journal")
        with open(journal, "a") as f:
            f.write('1234abcd {"step":"node0/step11","t":"DO')  # a write cut by a crash
        show = subprocess.run([ENGINE, "show", self.run_id(), "--state-dir", self.state], capture_output=True, text=True)
        self.assertIn("the last record is torn", show.stdout)
        p = self.resume()
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("the last record is torn", out)
        self.assertNotIn("DO\n", open(journal).read())  # cut away before new records
        rep = json.load(open(os.path.join(self.state, "runs", self.run_id(), "report.json")))
        self.assertTrue(all(s["status"] == "skipped" for s in rep["steps"]))  # all done by the first run
        for i in range(5):
            self.assertEqual(self.lines(f"node{i}"), [f"step{n}" for n in range(1, 11)])

    def test_a_corrupt_record_in_the_middle_refuses_the_journal(self):
        p = self.start()
        p.communicate(timeout=120)
        journal = os.path.join(self.state, "runs", self.run_id(), "journal")
        lines = open(journal).read().splitlines(True)
        lines[3] = lines[3].replace("step", "stop")  # its checksum no longer matches
        open(journal, "w").write("".join(lines))
        p = self.resume()
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("record 4 of", err)
        self.assertIn("cannot be trusted", err)

    def test_resume_refuses_a_changed_runbook_unless_forced(self):
        p = self.start()
        time.sleep(0.3)
        p.kill()
        p.wait()
        with open(self.runbook, "a") as f:
            f.write("-- edited after the run started\n")
        p = self.resume()
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("changed since the run started", err)
        p = self.resume("--force")
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err)

    def test_an_unknown_step_stops_the_resume_and_says_so(self):
        unknown = os.path.join(self.tmp, "unknown.lua")
        with open(unknown, "w") as f:
            f.write("""return runbook { name = "u", run = function()
  step("first", function() return 1 end)
  step("slow", function() sleep(30) end)
end }""")
        p = subprocess.Popen([ENGINE, "run", unknown, "--state-dir", self.state], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        journal = None
        while time.monotonic() < deadline:
            runs = os.path.join(self.state, "runs")
            if os.path.isdir(runs) and os.listdir(runs):
                journal = os.path.join(runs, os.listdir(runs)[0], "journal")
                if os.path.exists(journal) and '"slow"' in open(journal).read():
                    break
            time.sleep(0.05)
        p.kill()
        p.wait()
        r = subprocess.run([ENGINE, "resume", self.run_id(), "--state-dir", self.state], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("step 'slow' started before the run stopped and has no record of finishing", r.stderr)

    def test_a_dry_run_keeps_no_journal(self):
        r = subprocess.run([ENGINE, "run", self.runbook, "-i", self.inv, "-e", f"kh={self.lab.known_hosts}",
                            "-e", f"key={self.lab.keys.key}", "-e", f"dir={self.tmp}", "--state-dir", self.state, "--dry-run"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.state, "runs", self.run_id(), "journal")))
        self.assertEqual(self.lines("node0"), [])


WINDOWED = """
local fleet = require "engine.fleet"
local time = require "engine.time"
return runbook {
  name = "windowed",
  run = function()
    fleet.each({ "a", "b", "c", "d", "e", "f" }, { at_once = 1, window = "%s" WAIT }, function(h)
      step("work " .. h, function() print(string.format("RAN %%s %%.3f", h, time.now())) sleep(1) end)
    end)
  end,
}
"""


def clock(t):
    return time.strftime("%H:%M:%S", time.gmtime(t))


class TestMaintenanceWindow(unittest.TestCase):
    """fleet.each's window (the upgrade's maintenance_window): it closes mid-rollout, the running
    host finishes and no new one starts; a resume outside the window starts nothing; a resume in
    the next window goes on, and every host's step ran exactly once."""

    def two_windows(self, extra=""):
        """A runbook in a temporary directory whose window closes in 3 s and opens again 4 s later:
        (tmp, runbook, the first's end, the second's start)."""
        tmp = tempfile.mkdtemp(prefix="engine-window-")
        self.addCleanup(shutil.rmtree, tmp, True)
        now = time.time()
        first_end, second = int(now) + 3, int(now) + 7
        spec = f"daily {clock(now - 3600)}-{clock(first_end)}; daily {clock(second)}-{clock(now + 3600)} UTC"
        runbook = os.path.join(tmp, "windowed.lua")
        with open(runbook, "w") as f:
            f.write((WINDOWED % spec).replace(" WAIT", extra))
        return tmp, runbook, first_end, second

    def test_a_window_that_closes_mid_rollout_stops_and_the_next_window_goes_on(self):
        tmp, runbook, first_end, second = self.two_windows()
        state = os.path.join(tmp, "state")
        first = subprocess.run([ENGINE, "run", runbook, "--state-dir", state], capture_output=True, text=True, timeout=60)
        self.assertEqual(first.returncode, 1, first.stderr)
        opens = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        self.assertRegex(first.stderr, r"fleet.each: the maintenance window closed \(daily .*\) at \S+Z: [1-5] hosts not started; "
                                       f"it opens next at {opens}: continue then with engine resume")
        ran = re.findall(r"RAN (\w)", first.stdout)
        self.assertTrue(1 <= len(ran) <= 5, first.stdout)
        self.assertIn("the maintenance window is closed: no new host starts", first.stdout)
        run_id = os.listdir(os.path.join(state, "runs"))[0]
        if time.time() < second - 1:  # still between the windows: nothing starts
            early = subprocess.run([ENGINE, "resume", run_id, "--state-dir", state], capture_output=True, text=True, timeout=60)
            self.assertEqual(early.returncode, 1, early.stderr)
            self.assertRegex(early.stderr, r"outside the maintenance window \(.*\) at \S+Z: 6 hosts not started; it opens next at " + opens)
            self.assertNotIn("RAN", early.stdout)
        time.sleep(max(0, second - time.time() + 0.5))
        last = subprocess.run([ENGINE, "resume", run_id, "--state-dir", state], capture_output=True, text=True, timeout=60)
        self.assertEqual(last.returncode, 0, last.stderr)
        ran += re.findall(r"RAN (\w)", last.stdout)
        self.assertEqual(sorted(ran), ["a", "b", "c", "d", "e", "f"])  # each exactly once, across the attempts

    def test_window_wait_sleeps_through_the_closed_window_and_goes_on_and_an_interruption_ends_the_wait(self):
        # A Job's pod cannot "resume in the next window": with window_wait the run waits for it.
        tmp, runbook, first_end, second = self.two_windows(", window_wait = true")
        r = subprocess.run([ENGINE, "run", runbook, "--state-dir", os.path.join(tmp, "state")], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
        ran = {h: float(t) for h, t in re.findall(r"RAN (\w) ([\d.]+)", r.stdout)}
        self.assertEqual(sorted(ran), ["a", "b", "c", "d", "e", "f"])
        self.assertFalse([h for h, t in ran.items() if first_end + 1 <= t < second], f"started while closed: {ran}")
        self.assertTrue(any(t >= second for t in ran.values()), ran)
        opens = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        self.assertRegex(r.stdout, "the maintenance window is closed: no new host starts until it opens opens_at=" + opens)
        # Waiting for a window an hour away: SIGTERM ends the wait at once, exit 130, nothing started.
        now = time.time()
        spec = f"daily {clock(now + 3600)}-{clock(now + 7200)} UTC"
        with open(runbook, "w") as f:
            f.write((WINDOWED % spec).replace(" WAIT", ", window_wait = true"))
        p = subprocess.Popen([ENGINE, "run", runbook, "--state-dir", os.path.join(tmp, "state2")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        out = []
        for line in p.stdout:
            out.append(line)
            if "no new host starts until it opens" in line:
                p.send_signal(signal.SIGTERM)
                break
        stdout, stderr = p.communicate(timeout=15)
        self.assertEqual(p.returncode, 130, "".join(out) + stdout + stderr)
        self.assertNotIn("RAN", "".join(out) + stdout)

    def test_a_bad_window_names_what_is_wrong(self):
        tmp = tempfile.mkdtemp(prefix="engine-window-")
        self.addCleanup(shutil.rmtree, tmp, True)
        runbook = os.path.join(tmp, "windowed.lua")
        with open(runbook, "w") as f:
            f.write((WINDOWED % "Mon-Fry 22:00-04:00 Europe/Berlin").replace(" WAIT", ""))
        r = subprocess.run([ENGINE, "run", runbook, "--state-dir", os.path.join(tmp, "state")], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("windowed.lua:7: fleet.each: maintenance window 'Mon-Fry 22:00-04:00 Europe/Berlin': 'Fry' is not a day", r.stderr)
        self.assertNotIn("RAN", r.stdout)


if __name__ == "__main__":
    unittest.main()
