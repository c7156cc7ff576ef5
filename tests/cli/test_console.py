"""The console as an operator sees it: the live table and colour on a terminal, -v and -vv, and
what a runbook prints (its summary tables) kept as it wrote them."""
import os
import select
import subprocess
import time
import unittest

from test_cli import ENGINE, HERE, CliTest


class TestTerminal(CliTest):
    def on_a_terminal(self, env, body='log.warn("careful")', extra=()):
        """The engine's output as a terminal shows it (stdout is a pty)."""
        import pty
        rb = os.path.join(self.state, "t.lua")
        with open(rb, "w") as f:
            f.write('local log = require "engine.log"\nlocal fleet = require "engine.fleet"\n'
                    'return runbook { name = "t", run = function(p, inv) ' + body + ' end }\n')
        master, slave = pty.openpty()
        p = subprocess.Popen([ENGINE, "run", rb, "--state-dir", self.state, *extra], stdout=slave, stderr=slave, cwd=HERE,
                             env={**os.environ, **env})
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 60  # bounded: a run that hangs fails the test, not the suite
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        os.close(master)
        text = out.decode(errors="replace")
        self.assertEqual(p.returncode, 0, text)
        return text

    def test_the_live_table_shows_the_phase_and_progress_and_starts_over_each_phase(self):
        out = self.on_a_terminal({"TERM": "xterm", "NO_COLOR": ""}, body="""
  step("first phase", function() fleet.each(inv:hosts("web"), { at_once = 2 }, function(h) sleep(0.4) end) end)
  step("second phase", function() fleet.each(inv:hosts("db"), function(h) sleep(0.4) end) end)""",
                                 extra=("-i", self.inventory("[web]\nweb1\nweb2\n[db]\ndb1\n")))
        self.assertRegex(out, r"first phase  0/2 hosts done, 2 running")
        self.assertRegex(out, r"second phase  0/1 hosts done, 1 running")
        # After the second phase began, the first phase's hosts are no longer rows of the table.
        tail = out[out.index("second phase  0/1"):]
        self.assertNotIn("web1", tail.split("RECAP")[0])
        self.assertIn("web1", out[:out.index("second phase  0/1")])  # a row while its phase ran

    def test_the_live_table_is_redrawn_at_most_10_times_a_second(self):
        t0 = time.monotonic()
        out = self.on_a_terminal({"TERM": "xterm"}, body="""
  local hosts = {}
  for i = 1, 6 do hosts[i] = "node" .. i end
  fleet.each(hosts, { at_once = 2 }, function(h)
    step("drain", function() sleep(0.3) log.info("drained") end)
    step("upgrade", function() sleep(0.3) end)
  end)""")
        elapsed = time.monotonic() - t0
        draws = out.count("HOST")
        self.assertGreaterEqual(draws, 3)
        self.assertLessEqual(draws, 10 * elapsed + 1)
        self.assertRegex(out, r"node\d\s+(drain|upgrade)\s+\d+\.\ds\s+running")
        self.assertIn("\033[J", out)  # the table is erased before lines scroll above it

    def test_plain_lines_when_not_on_a_terminal(self):
        rb = os.path.join(self.state, "t.lua")
        with open(rb, "w") as f:
            f.write('local fleet = require "engine.fleet"\nreturn runbook { name = "t", run = function()\n'
                    '  fleet.each({ "h1", "h2", "h3" }, function(h) log.info("start") end)\nend }\n')
        r = subprocess.run([ENGINE, "run", rb, "--state-dir", self.state], capture_output=True, text=True,
                           timeout=60, cwd=HERE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("\033[", r.stdout)
        self.assertIn("[h3] start", r.stdout)

    def test_colour_on_a_terminal_and_none_with_no_color_or_a_dumb_terminal(self):
        self.assertIn("\x1b[", self.on_a_terminal({"TERM": "xterm", "NO_COLOR": ""}))
        for env in ({"TERM": "xterm", "NO_COLOR": "1"}, {"TERM": "dumb"}):
            out = self.on_a_terminal(env)
            self.assertIn("careful", out)
            self.assertNotIn("\x1b[", out, env)


class TestPrint(CliTest):
    def test_a_printed_table_keeps_its_columns(self):
        """A runbook's summary table (k8s-upgrade's nodes, cert-check's certificates) prints as it
        was written: its first line is not pushed right by the timestamp; one line stays on one."""
        rb = os.path.join(self.state, "table.lua")
        with open(rb, "w") as f:
            f.write('return runbook { name = "table", run = function()\n'
                    '  print("\\nThe cluster runs v1:")\n'
                    '  print(string.format("%-6s %s\\n%-6s %s", "NODE", "STATE", "cp1", "done"))\n'
                    '  print("one line")\nend }\n')
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn("The cluster runs v1:", lines)
        i = lines.index("NODE   STATE")
        self.assertEqual(lines[i + 1], "cp1    done")
        self.assertRegex(lines[i - 1], r"^\S+ INFO$")
        self.assertRegex(r.stdout, r"(?m)^\S+ INFO  one line$")


class TestVerbosity(CliTest):
    def test_v_shows_debug_logs_and_vv_traces_http(self):
        rb = os.path.join(self.state, "v.lua")
        with open(rb, "w") as f:
            f.write('local log = require "engine.log"\nreturn runbook { name = "v", run = function() log.debug("deep detail") end }\n')
        self.assertNotIn("deep detail", self.run_rb(rb).stdout)
        self.assertIn("deep detail", self.run_rb(rb, "-v").stdout)
        self.assertIn("deep detail", self.run_rb(rb, "-vv").stdout)


if __name__ == "__main__":
    unittest.main()
