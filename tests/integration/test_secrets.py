"""A secret sentinel never appears in any output: console, run log, report, journal, at any level."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab import sshd as sshlab  # noqa: E402

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin/engine"))
PARAM, INVENTORY, MARKED = "sentinel-PARAM-77q", "sentinel-INV-93z", "sentinel-MARKED-41k"

RUNBOOK = """
local ssh = require "engine.ssh"
return runbook {
  name = "secrets",
  params = { token = { type = "string", secret = true }, kh = { type = "string" }, key = { type = "string" } },
  run = function(p, inv)
    ssh.configure { known_hosts = p.kh, identity_files = { p.key } }
    local h = inv:host("n1")
    local become = h.vars.ansible_become_password
    log.secret("sentinel-MARKED-41k")
    print("param", p.token, "inventory", become)
    log.debug("fields", { token = p.token, nested = { become } })
    log.warn("marked sentinel-MARKED-41k")
    step("echo", function() return p.token, { become } end)
    local r = assert(h:exec("echo $0 " .. p.token, { sudo_password = become, stream = true }))
    print(r.stdout)
    error("failing with " .. p.token .. " and " .. become)
  end,
}
"""


class TestSecrets(unittest.TestCase):
    def test_a_secret_sentinel_never_appears_in_any_output(self):
        lab = sshlab.Lab()
        tmp = tempfile.mkdtemp(prefix="engine-secrets-")
        try:
            sshd = lab.sshd()
            lab.trust(sshd.known_hosts_line())
            subprocess.run(["chpasswd"], input=f"{sshlab.PW_USER}:{INVENTORY}\n", text=True, check=True)
            inv = os.path.join(tmp, "hosts.ini")
            with open(inv, "w") as f:
                f.write(f"n1 ansible_host=127.0.0.1 ansible_port={sshd.port} ansible_user={sshlab.PW_USER} "
                        f"ansible_become_password={INVENTORY}\n")
            rb = os.path.join(tmp, "secrets.lua")
            with open(rb, "w") as f:
                f.write(RUNBOOK)
            state = os.path.join(tmp, "state")
            r = subprocess.run([ENGINE, "run", rb, "-i", inv, "-e", f"token={PARAM}", "-e", f"kh={lab.known_hosts}",
                                "-e", f"key={lab.keys.key}", "--state-dir", state, "--log-level", "debug"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("<secret>", r.stdout)
            self.assertIn("failing with <secret> and <secret>", r.stderr)
            outputs = {"stdout": r.stdout, "stderr": r.stderr}
            for root, _, files in os.walk(state):
                for name in files:
                    outputs[os.path.join(root, name)] = open(os.path.join(root, name), errors="replace").read()
            self.assertTrue(any(k.endswith("journal") for k in outputs))
            self.assertTrue(any(k.endswith("report.json") for k in outputs))
            for where, text in outputs.items():
                for sentinel in (PARAM, INVENTORY, MARKED):
                    self.assertNotIn(sentinel, text, f"{sentinel} in {where}")
            # Resume asks for the secret again instead of having kept it.
            run_id = os.listdir(os.path.join(state, "runs"))[0]
            again = subprocess.run([ENGINE, "resume", run_id, "--state-dir", state], capture_output=True, text=True, timeout=60)
            self.assertEqual(again.returncode, 2)
            self.assertIn("secret params are not recorded: give them again with -e", again.stderr)
            again = subprocess.run([ENGINE, "resume", run_id, "--state-dir", state, "-e", f"token={PARAM}"],
                                   capture_output=True, text=True, timeout=60)
            self.assertEqual(again.returncode, 1)  # resumed, and fails where it failed before
            self.assertIn("failing with <secret>", again.stderr)
            self.assertNotIn(PARAM, again.stdout + again.stderr)
        finally:
            subprocess.run(["chpasswd"], input=f"{sshlab.PW_USER}:{sshlab.PW}\n", text=True, check=True)
            lab.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
