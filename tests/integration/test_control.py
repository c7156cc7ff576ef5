"""Operator control of a live run (engine ctl pause, continue, skip, abort) and confirm(); the live
table and plain lines are in tests/cli/test_console.py."""
import os
import pty
import shutil
import subprocess
import tempfile
import time
import unittest

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin/engine"))

FLEET = """
local fleet = require "engine.fleet"
return runbook { name = "ctl", params = { nap = { type = "duration", default = "400ms" } }, run = function(p, inv)
  local hosts = {}
  for i = 1, 6 do hosts[i] = "h" .. i end
  local res = fleet.each(hosts, { at_once = 1 }, function(h)
    log.info("start")
    sleep(p.nap)
    log.info("end")
  end)
  log.info("summary", { ok = res.ok, skipped = res.skipped })
end }
"""

CONFIRM = """
return runbook { name = "confirm", run = function()
  if confirm("drain the control plane?") then print("ANSWER yes") else print("ANSWER no") end
end }
"""


class TestControl(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="engine-ctl-")
        self.state = os.path.join(self.tmp, "state")
        self.rb = os.path.join(self.tmp, "fleet.lua")
        with open(self.rb, "w") as f:
            f.write(FLEET)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, *extra):
        p = subprocess.Popen([ENGINE, "run", self.rb, "--state-dir", self.state, *extra],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            runs = os.path.join(self.state, "runs")
            if os.path.isdir(runs) and os.listdir(runs):
                return p, os.listdir(runs)[0]
            time.sleep(0.02)
        self.fail("the run never started")

    def ctl(self, run_id, *cmd):
        r = subprocess.run([ENGINE, "ctl", run_id, *cmd, "--state-dir", self.state], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def wait_line(self, p, text, seen, limit=20):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            seen.append(line)
            if text in line:
                return
        self.fail(f"never saw {text!r}:\n{''.join(seen)}")

    def test_pause_holds_admission_and_continue_releases_it(self):
        p, run_id = self.start()
        seen = []
        self.wait_line(p, "[h1] start", seen)
        self.ctl(run_id, "pause")
        self.wait_line(p, "paused by an operator", seen)
        self.wait_line(p, "[h1] end", seen)
        time.sleep(1.2)  # three naps' worth: nothing may start while paused
        self.ctl(run_id, "continue")
        out, _ = p.communicate(timeout=30)
        lines = "".join(seen) + out
        self.assertEqual(p.returncode, 0)
        self.assertNotIn("[h2] start", "".join(seen))  # h2 waited for continue
        self.assertLess(out.index("continued by an operator"), out.index("[h2] start"))
        self.assertIn("summary ok=6 skipped=0", lines)

    def test_skip_a_host_that_has_not_started(self):
        p, run_id = self.start()
        seen = []
        self.wait_line(p, "[h1] start", seen)
        self.ctl(run_id, "skip", "h4")
        out, _ = p.communicate(timeout=30)
        lines = "".join(seen) + out
        self.assertEqual(p.returncode, 0, lines)
        self.assertNotIn("[h4] start", lines)
        self.assertIn("[h4] skipped by an operator", lines)
        self.assertIn("summary ok=5 skipped=1", lines)
        self.assertRegex(lines, r"h4\s+skipped")

    def test_abort_cancels_what_is_in_flight(self):
        p, run_id = self.start("-e", "nap=30s")
        seen = []
        self.wait_line(p, "[h1] start", seen)
        self.ctl(run_id, "abort")
        out, err = p.communicate(timeout=15)  # far less than the 30 s nap
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("aborted by an operator", "".join(seen) + out)
        self.assertIn("[h1] failed error=cancelled", out)

    def test_ctl_refuses_a_finished_run_and_an_unknown_command(self):
        r = subprocess.run([ENGINE, "run", self.rb, "-e", "nap=1ms", "--state-dir", self.state], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        run_id = os.listdir(os.path.join(self.state, "runs"))[0]
        r = subprocess.run([ENGINE, "ctl", run_id, "pause", "--state-dir", self.state], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("is not running: there is nothing to steer", r.stderr)
        self.assertEqual(self.runs()[run_id], "finished")
        r = subprocess.run([ENGINE, "ctl", "nope", "pause", "--state-dir", self.state], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no run 'nope'", r.stderr)

    def runs(self):
        r = subprocess.run([ENGINE, "runs", "--state-dir", self.state], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return {cols[0]: cols[2] for cols in (line.split() for line in r.stdout.splitlines()[1:]) if len(cols) > 2}

    def test_a_resumed_run_shows_as_running_and_can_be_steered(self):
        p, run_id = self.start("-e", "nap=30s")
        seen = []
        self.wait_line(p, "[h1] start", seen)
        self.assertEqual(self.runs()[run_id], "running")
        r = subprocess.run([ENGINE, "resume", run_id, "--state-dir", self.state], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)  # one process per run
        self.assertIn(f"run {run_id} is running (pid {p.pid})", r.stderr)
        self.ctl(run_id, "abort")
        p.communicate(timeout=15)
        self.assertEqual(p.returncode, 130)
        self.assertEqual(self.runs()[run_id], "stopped")
        # Resumed: running again, steerable, and the abort sent to the first attempt is not replayed.
        q = subprocess.Popen([ENGINE, "resume", run_id, "--state-dir", self.state], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            seen = []
            self.wait_line(q, "[h1] start", seen)
            self.assertEqual(self.runs()[run_id], "running")
            show = subprocess.run([ENGINE, "show", run_id, "--state-dir", self.state], capture_output=True, text=True)
            self.assertIn(f"state     running (pid {q.pid})\nearlier   interrupted (exit 130)", show.stdout)
            self.ctl(run_id, "pause")
            self.wait_line(q, "paused by an operator", seen)
            self.ctl(run_id, "abort")
            out, _ = q.communicate(timeout=15)
        finally:
            if q.poll() is None:
                q.kill()
                q.wait()
        self.assertEqual(q.returncode, 130)
        self.assertIn("aborted by an operator", "".join(seen) + out)
        self.assertEqual(self.runs()[run_id], "stopped")

    def confirm_run(self, *extra, stdin=None):
        rb = os.path.join(self.tmp, "confirm.lua")
        with open(rb, "w") as f:
            f.write(CONFIRM)
        return subprocess.run([ENGINE, "run", rb, "--state-dir", self.state, *extra], capture_output=True, text=True,
                              stdin=stdin if stdin is not None else subprocess.DEVNULL, timeout=30)

    def test_confirm_without_a_terminal_fails_clearly_and_yes_answers(self):
        r = self.confirm_run()
        self.assertEqual(r.returncode, 1)
        self.assertIn('confirm: "drain the control plane?" needs an answer, but there is no terminal to ask on; run with --yes', r.stderr)
        r = self.confirm_run("--yes")
        self.assertEqual(r.returncode, 0)
        self.assertIn("ANSWER yes", r.stdout)

    def test_confirm_asks_on_a_terminal(self):
        for answer, want in (("y\n", "ANSWER yes"), ("n\n", "ANSWER no")):
            master, slave = pty.openpty()
            os.write(master, answer.encode())
            r = self.confirm_run(stdin=slave)
            os.close(master)
            os.close(slave)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("drain the control plane? [y/N]", r.stdout)
            self.assertIn(want, r.stdout)


if __name__ == "__main__":
    unittest.main()
