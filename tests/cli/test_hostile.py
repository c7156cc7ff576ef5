"""A runbook cannot hang or crash the engine: a table that contains itself, a C++ exception inside a
binding, a loop that never waits. Each ends with a clear error (or a timeout the runbook chose), not
a signal, a garbage message or a process only SIGKILL ends."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin/engine"))

TEMPLATE = """
local http = require "engine.http"
local ssh = require "engine.ssh"
local time = require "engine.time"
return runbook {
  name = "hostile",
  run = function(p, inv)
%s
  end,
}
"""


class HostileTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="engine-hostile-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write(self, body):
        path = os.path.join(self.tmp, f"rb{time.monotonic_ns()}.lua")
        with open(path, "w") as f:
            f.write(TEMPLATE % body)
        return path

    def run_lua(self, body, timeout=60):
        return subprocess.run([ENGINE, "run", self.write(body), "--state-dir", os.path.join(self.tmp, "state")],
                              capture_output=True, text=True, timeout=timeout)


class TestJson(HostileTest):
    def test_encoding_a_table_that_contains_itself_is_an_error_not_a_crash(self):
        r = self.run_lua("""
    local t = { name = "x" }
    t.self = t
    local ok, err = pcall(http.json_encode, t)
    print("caught", ok, err)
    local deep = {}
    local cur = deep
    for i = 1, 500 do cur.next = {} cur = cur.next end
    print("deep", pcall(http.json_encode, deep))
    log.info("logging it", { t = t })
""")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # not 139 (SIGSEGV)
        self.assertIn("caught\tfalse\tcannot encode a table that contains itself", r.stdout)
        self.assertIn("deep\tfalse\tcannot encode a table nested deeper than 200 levels", r.stdout)
        self.assertIn("cannot encode a table that contains itself", r.stderr)

    def test_a_table_met_twice_on_different_branches_is_not_a_cycle(self):
        r = self.run_lua("""
    local shared = { 1, 2 }
    print(http.json_encode({ a = shared, b = shared }))
""")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('{"a":[1,2],"b":[1,2]}', r.stdout)

    def test_empty_arrays_survive_the_round_trip(self):
        r = self.run_lua("""
    local t = http.json_decode('{"items": [], "meta": {}}')
    print(http.json_encode(t))
    print(http.json_encode({ list = http.json_array {}, obj = {} }))
""")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('{"items":[],"meta":{}}', r.stdout)
        self.assertIn('{"list":[],"obj":{}}', r.stdout)


class TestExceptions(HostileTest):
    def test_a_cpp_exception_in_a_binding_is_a_lua_error_the_runbook_can_catch(self):
        r = self.run_lua("""
    local ok, err = pcall(ssh.configure, { identity_files = { 1 } })
    print("caught", ok, type(err), err)
    print("still running")
""")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"caught\tfalse\tstring\t.*must be string")
        self.assertIn("still running", r.stdout)
        self.assertNotIn("table: 0x", r.stdout + r.stderr)


class TestCancels(unittest.TestCase):
    def test_no_yielding_binding_registers_a_cancel_that_does_nothing(self):
        # A wait whose cancel is an empty lambda goes on after timeout() or Ctrl-C (an SFTP upload
        # then renamed into /etc/kubernetes/manifests). Operations that only read say so by name
        # (nothing_to_undo); an empty one is refused here.
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings")
        empty = re.compile(r"\barm\(\s*\w+\s*,\s*\[[^\]]*\]\s*(\([^)]*\))?\s*(->\s*\w+\s*)?\{\s*\}\s*\)")
        found = []
        for name in sorted(os.listdir(root)):
            with open(os.path.join(root, name)) as f:
                for n, line in enumerate(f, 1):
                    if empty.search(line):
                        found.append(f"bindings/{name}:{n}: {line.strip()}")
        self.assertEqual(found, [])
        self.assertTrue(any("arm(" in open(os.path.join(root, n)).read() for n in os.listdir(root)))


class TestBusyRunbook(HostileTest):
    def test_timeout_interrupts_a_loop_that_never_waits(self):
        r = self.run_lua("""
    local t0 = time.monotonic()
    local ok, err = timeout(0.3, function() while true do end end)
    print("result", ok, err)
    local n = 0
    print("again", timeout(0.2, function() while true do n = n + 1 end end))
""")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("result\tnil\ttimeout", r.stdout)
        self.assertIn("again\tnil\ttimeout", r.stdout)

    def _interrupt_busy(self, sig):
        p = subprocess.Popen([ENGINE, "run", self.write('    print("SPINNING")\n    while true do end'),
                              "--state-dir", os.path.join(self.tmp, "state")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(20):  # the run log comes first
                if "SPINNING" in p.stdout.readline():
                    break
            p.send_signal(sig)
            out, err = p.communicate(timeout=20)  # SIGKILL was the only way out before
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        return p.returncode, out, err

    def test_ctrl_c_stops_a_loop_that_never_waits(self):
        code, out, err = self._interrupt_busy(signal.SIGINT)
        self.assertEqual(code, 130, out + err)
        self.assertIn("busy without waiting", out + err)

    def test_sigterm_stops_a_loop_that_never_waits(self):
        code, out, err = self._interrupt_busy(signal.SIGTERM)
        self.assertEqual(code, 130, out + err)


class TestTerminated(HostileTest):
    """SIGTERM (an evicted pod, a stopped service): no new host starts, the running ones get
    ENGINE_TERM_GRACE seconds to finish their step, then what still runs is cancelled."""
    BODY = """
    local fleet = require "engine.fleet"
    fleet.each({ "a", "b", "c" }, { at_once = 1 }, function(h)
      step("work " .. h, function() print("START " .. h) sleep(%s) print("END " .. h) end)
    end)
"""

    def terminated(self, work_seconds, grace):
        p = subprocess.Popen([ENGINE, "run", self.write(self.BODY % work_seconds), "--state-dir", os.path.join(self.tmp, "state")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, ENGINE_TERM_GRACE=str(grace)))
        try:
            for _ in range(20):
                if "START a" in p.stdout.readline():
                    break
            t0 = time.monotonic()
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=30)
            return p.returncode, "START a\n" + out, err, time.monotonic() - t0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_the_running_step_finishes_within_the_grace_and_nothing_new_starts(self):
        code, out, err, _ = self.terminated(1.5, 20)
        self.assertEqual(code, 130, out + err)
        self.assertIn("terminated: no new hosts start", out)
        self.assertIn("END a", out)  # finished, so journaled done: a resume does not run it again
        self.assertNotIn("START b", out)
        self.assertNotIn("cancelling", out)

    def test_what_outlives_the_grace_is_cancelled(self):
        code, out, err, took = self.terminated(30, 0.5)
        self.assertEqual(code, 130, out + err)
        self.assertIn("the grace period is over: cancelling everything in flight", out)
        self.assertNotIn("END a", out)
        self.assertLess(took, 25)  # not the step's 30 s (a bound on a hang, not a timing figure)


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"), "needs root to mount a small tmpfs")
class TestFullDisk(HostileTest):
    def test_a_run_whose_records_cannot_be_written_fails_and_names_the_file(self):
        # The state directory on a 256 KiB tmpfs, in a mount namespace of the test's own: the run
        # log fills it, then the report cannot be written. Before: "finished exit=0", report empty.
        state = os.path.join(self.tmp, "small")
        os.makedirs(state)
        rb = self.write("""
    local line = string.rep("x", 1000)
    for i = 1, 600 do log.info(line, { i = i }) end
    print("RUNBOOK DONE")
""")
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f'mount -t tmpfs -o size=256k tmpfs "{state}" && exec "$0" run "$1" --state-dir "$2"',
                            ENGINE, rb, state], capture_output=True, text=True, timeout=120)
        self.assertIn("RUNBOOK DONE", r.stdout)
        self.assertEqual(r.returncode, 1, r.stdout[-2000:] + r.stderr[-2000:])
        self.assertRegex(r.stderr, r"cannot write the run log \S+/run\.log: ")
        self.assertRegex(r.stderr, r"cannot write \S+/report\.json: No space left on device")
        self.assertLess(r.stderr.count("cannot write the run log"), 3)  # said once, not per line


class TestJournalDisk(HostileTest):
    """The journal's fdatasync on a slow disk and a failing one, made so by strace's fault
    injection on the engine's own system calls (no test hook in the engine)."""
    RB = """
local fleet = require "engine.fleet"
return runbook { name = "disk", run = function(p, inv)
  local res = fleet.each(inv:hosts("all"), { at_once = 100 }, function(h)
    step("one", function() print("SIDE EFFECT " .. h.name); return 1 end)
    step("two", function() return 2 end)
  end)
  print("RESULT ok=" .. res.ok .. " failed=" .. res.failed)
end }
"""

    def run_traced(self, inject, hosts=30):
        rb = os.path.join(self.tmp, "disk.lua")
        with open(rb, "w") as f:
            f.write(self.RB)
        inv = os.path.join(self.tmp, "hosts.ini")
        with open(inv, "w") as f:
            f.write("".join(f"h{i:02d} ansible_connection=local\n" for i in range(hosts)))
        trace = os.path.join(self.tmp, "trace")
        r = subprocess.run(["strace", "-f", "-o", trace, "-e", "trace=fdatasync", "-e", f"inject=fdatasync:{inject}",
                            ENGINE, "run", rb, "-i", inv, "--state-dir", os.path.join(self.tmp, "state")],
                           capture_output=True, text=True, timeout=300)
        with open(trace) as f:
            syncs = sum("fdatasync(" in line for line in f)
        return r, syncs

    def journal_records(self):
        runs = os.path.join(self.tmp, "state", "runs")
        [run] = os.listdir(runs)
        with open(os.path.join(runs, run, "journal")) as f:
            return [json.loads(line.split(" ", 1)[1]) for line in f]

    @unittest.skipUnless(shutil.which("strace"), "strace (scripts/setup test) is not installed")
    def test_a_slow_disk_is_synced_once_for_the_records_of_many_hosts(self):
        # Each fdatasync takes 20 ms. One per record (120 here) held every host for each; now the
        # hosts' records written meanwhile share the next one, and every record is still on disk.
        r, syncs = self.run_traced("delay_exit=20000")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn("RESULT ok=30 failed=0", r.stdout)
        records = self.journal_records()
        self.assertEqual(len(records), 120)
        self.assertEqual(sum(rec["t"] == "DONE" for rec in records), 60)
        self.assertGreater(syncs, 0)
        self.assertLessEqual(syncs, 40, f"{syncs} fdatasyncs for 120 records")

    @unittest.skipUnless(shutil.which("strace"), "strace (scripts/setup test) is not installed")
    def test_a_failing_fsync_stops_every_step_before_its_side_effect(self):
        r, syncs = self.run_traced("error=EIO", hosts=5)
        self.assertEqual(r.returncode, 1, r.stdout[-2000:] + r.stderr[-2000:])
        self.assertGreater(syncs, 0)
        self.assertNotIn("SIDE EFFECT", r.stdout)
        self.assertIn("fleet.each finished failed=5 not_started=0 ok=0", r.stdout)
        self.assertIn("the run's journal is not on disk", r.stdout)
        self.assertRegex(r.stdout + r.stderr, r"journal \S+/journal: fsync: Input/output error")


if __name__ == "__main__":
    unittest.main()
