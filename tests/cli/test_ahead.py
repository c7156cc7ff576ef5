"""std.ahead.alongside, run by the built engine on tests/cli/runbooks/ahead.lua: hosts prepared
while the work before them runs, and no longer."""
import json
import os
import signal
import subprocess
import time
import unittest

from test_cli import CliTest, ENGINE, HERE


class TestAhead(CliTest):
    """std.ahead.alongside: hosts prepared while the work before them runs, and no longer."""
    INV = "[web]\nweb1\nweb2\n[db]\n" + "".join(f"db{i}\n" for i in range(1, 21))

    def lines(self, out):
        return [(l.get("host", ""), l["msg"]) for l in map(json.loads, out.splitlines())]

    def test_hosts_are_prepared_while_fn_runs_and_none_after(self):
        r = self.run_rb("runbooks/ahead.lua", "-i", self.inventory(self.INV), "--log-format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = self.lines(r.stdout)
        # fn's two hosts take 2 s, a host 0.2 s to prepare: db1 is ready long before web2 is done,
        # and db20 (4 s in) is never started.
        self.assertLess(lines.index(("db1", "prepared")), lines.index(("web2", "visited")))
        preparing = [h for h, m in lines if m == "preparing"]
        self.assertNotIn("db20", preparing)
        self.assertGreater(len(preparing), 2)
        for h in preparing:  # each started one finished, before alongside returned
            self.assertLess(lines.index((h, "prepared")), lines.index(("", "alongside returned")))
        self.assertIn('"value":"main result"', r.stdout)
        # fn's fleet.each is the run's phase: its hosts are the report's, the prepared ones are not
        run_id = os.listdir(os.path.join(self.state, "runs"))[0]
        with open(os.path.join(self.state, "runs", run_id, "report.json")) as f:
            self.assertEqual(sorted(json.load(f)["hosts"]), ["web1", "web2"])

    def test_a_failed_preparation_is_a_warning_naming_the_host(self):
        r = self.run_rb("runbooks/ahead.lua", "-i", self.inventory(self.INV), "-e", "fail_prepare=db2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('[db2] preparing ahead failed: its own turn does that work error="planned prepare failure on db2"',
                      r.stdout)
        self.assertIn("[db3] prepared", r.stdout)  # the others go on

    def test_fns_error_is_raised_as_it_was_once_the_preparations_in_flight_end(self):
        r = self.run_rb("runbooks/ahead.lua", "-i", self.inventory(self.INV), "-e", "fail_main=true", "-e", "prep_nap=300ms",
                        "--log-format", "json")
        self.assertEqual(r.returncode, 1, r.stderr)
        # fleet.each's stop and the host's fail() as worded, without the lines they were raised at.
        self.assertIn("runbook failed: fleet.each: 1 of 2 hosts failed, more than max_failures (0)\n"
                      "  web1: planned failure on web1\n", r.stderr)
        lines = self.lines(r.stdout)
        preparing = [h for h, m in lines if m == "preparing"]
        self.assertTrue(preparing)
        self.assertEqual([h for h, m in lines if m == "prepared"], preparing)
        self.assertFalse([m for h, m in lines if h == "" and m == "failed"])  # said once, as fn said it
        # the wait for the one in flight is said when fn fails, naming it, before it ends
        warn = [json.loads(l) for l in r.stdout.splitlines() if "preparations in flight" in l]
        self.assertEqual(len(warn), 1, r.stdout)
        self.assertEqual(warn[0]["fields"]["hosts"], preparing[-1])
        self.assertIn("1 of 2 hosts failed", warn[0]["fields"]["error"])
        said = lines.index(("", warn[0]["msg"]))
        self.assertLess(said, lines.index((preparing[-1], "prepared")))

    def test_inside_a_hosts_turn_fn_works_as_that_host(self):
        # fn is the rest of web1's turn: its log lines and its steps (their journal keys) are web1's,
        # as if it ran in the turn itself; the prepared host's are its own.
        r = self.run_rb("runbooks/ahead.lua", "-i", self.inventory(self.INV), "-e", "in_turn=true", "-e", "main_nap=300ms")
        self.assertEqual(r.returncode, 0, r.stderr)
        for h in ("web1", "web2"):
            self.assertIn(f"[{h}] finishing", r.stdout)
        self.assertIn("[db1] preparing", r.stdout)
        run_id = os.listdir(os.path.join(self.state, "runs"))[0]
        with open(os.path.join(self.state, "runs", run_id, "report.json")) as f:
            rep = json.load(f)
        self.assertEqual(sorted(s["step"] for s in rep["steps"]),
                         ["db1/prepare", "db2/prepare", "web1/first half", "web1/second half",
                          "web2/first half", "web2/second half"])
        self.assertEqual(sorted(rep["hosts"]), ["web1", "web2"])

    def test_an_interrupt_stops_both(self):
        inv = self.inventory(self.INV)
        p = subprocess.Popen([ENGINE, "run", "runbooks/ahead.lua", "-i", inv, "--state-dir", self.state],
                             cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        seen = ""
        while time.monotonic() < deadline and "[db1] prepared" not in seen:
            line = p.stdout.readline()
            if not line:
                break
            seen += line
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        out = seen + out
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("[web1] visited", out)  # in flight: finished
        self.assertNotIn("[web2]", out)
        self.assertNotIn("[db20]", out)
        self.assertIn("interrupted", err)
        # said once, by the run: no line with no host for alongside's own two branches, nor their count
        self.assertNotRegex(out + err, r"ERROR +failed error=")
        self.assertNotIn("failed=2", out + err)


if __name__ == "__main__":
    unittest.main()
