"""A runbook cannot hang or crash the engine: a table that contains itself, a C++ exception inside a
binding, a loop that never waits. Each ends with a clear error (or a timeout the runbook chose), not
a signal, a garbage message or a process only SIGKILL ends."""
import os
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


if __name__ == "__main__":
    unittest.main()
