"""--dry-run: a runbook that would exec, write a file, cordon, evict and push does none of them
(checked on the servers) and prints each in the plan, grouped by host and step."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab import sshd as sshlab  # noqa: E402
from lab.k8sim import fixture as fx  # noqa: E402
from test_metrics import free_port, wait_http  # noqa: E402

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(HERE, "../../build/bin/engine"))
PUSHGATEWAY = shutil.which("prometheus-pushgateway")

RUNBOOK = """
local ssh = require "engine.ssh"
local k8s = require "engine.k8s"
local fleet = require "engine.fleet"
local push = require "engine.pushgateway"
return runbook {
  name = "would-change",
  params = { kh = { type = "string" }, key = { type = "string" }, kc = { type = "string" }, pgw = { type = "string" },
             marker = { type = "string" } },
  run = function(p, inv)
    ssh.configure { known_hosts = p.kh, identity_files = { p.key } }
    k8s.configure { kubeconfig = p.kc }
    push.configure { url = p.pgw }
    step("announce", function() assert(push.push("upgrade", {}, { in_flight = 1 })) end)
    fleet.each(inv:group("all"), function(h)
      step("taint", function() assert(k8s.taint(h.name, "example.com/next")) end)
      step("drain", function() assert(k8s.drain(h.name, { ignore_daemonsets = true, timeout = 30 })) end)
      step("packages", function()
        local r = assert(h:exec("touch " .. p.marker .. "-" .. h.name))
        assert(h:write_file(p.marker .. "-" .. h.name .. ".conf", "version: 1.34.3\\n"))
        local ro = assert(h:exec("uname -n", { read_only = true }))
        assert(not ro.dry_run and ro.code == 0)  -- reads happen for real
      end)
      -- The node still says schedulable (nothing was cordoned), yet the uncordon a real run makes
      -- belongs in the plan.
      step("uncordon", function() assert(k8s.uncordon(h.name)) end)
      step("untaint", function() assert(k8s.untaint(h.name, "example.com/next")) end)
    end)
  end,
}
"""


@unittest.skipUnless(PUSHGATEWAY, "prometheus-pushgateway is not installed")
class TestDryRun(unittest.TestCase):
    def test_a_dry_run_changes_nothing_and_prints_the_plan(self):
        lab = sshlab.Lab()
        cluster = fx.Cluster([fx.namespace("default"), fx.node("w1"), fx.node("w2"), fx.replicaset("web"),
                              fx.pod("web-1", "w1", labels={"app": "web"}, owner=("ReplicaSet", "web"))])
        port = free_port()
        tmp = tempfile.mkdtemp(prefix="engine-dry-")
        # Its own persistence file: Debian's default (/var/lib/prometheus) would bring back other runs' groups.
        pgw = subprocess.Popen([PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}",
                                f"--persistence.file={tmp}/pushgateway.data"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{port}/-/ready")
            sshd = lab.sshd()
            lab.trust(sshd.known_hosts_line())
            inv = os.path.join(tmp, "hosts.ini")
            with open(inv, "w") as f:
                f.write(f"w1 ansible_host=127.0.0.1 ansible_port={sshd.port} ansible_user={sshlab.USER}\n")
            rb = os.path.join(tmp, "rb.lua")
            with open(rb, "w") as f:
                f.write(RUNBOOK)
            marker = f"/tmp/engine-dry-marker-{os.getpid()}"
            r = subprocess.run([ENGINE, "run", rb, "-i", inv, "--dry-run", "-e", f"kh={lab.known_hosts}",
                                "-e", f"key={lab.keys.key}", "-e", f"kc={cluster.kubeconfig}",
                                "-e", f"pgw=http://127.0.0.1:{port}", "-e", f"marker={marker}",
                                "--state-dir", os.path.join(tmp, "state")], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # Nothing changed anywhere.
            self.assertFalse(os.path.exists(f"{marker}-w1"))
            self.assertFalse(os.path.exists(f"{marker}-w1.conf"))
            self.assertFalse(cluster.get("/api/v1/nodes/w1")["spec"].get("unschedulable"))
            self.assertEqual([p["metadata"]["name"] for p in cluster.get("/api/v1/pods")["items"]], ["web-1"])
            groups = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/metrics"))["data"]
            self.assertEqual(groups, [])
            # Each change is in the plan, under its host and step.
            plan = r.stdout[r.stdout.index("PLAN (dry run: nothing was changed)"):]
            self.assertRegex(plan, r"\(run\)\n    step announce\n      would PUT to the Pushgateway job=upgrade")
            # Each PATCH says what it changes: the cordon, then the uncordon.
            self.assertRegex(plan, r"    step drain\n      would PATCH kind=Node name=w1 patch=metadata.annotations."
                                   r"engine.dev/cordoned-by=\S+, spec.unschedulable=true\n      would evict pod=default/web-1")
            self.assertRegex(plan, r"    step uncordon\n      would PATCH kind=Node name=w1 patch=replace /spec/unschedulable=false, "
                                   r"remove /metadata/annotations/engine.dev~1cordoned-by\n")
            # Likewise the taint's removal, though the node never had it.
            self.assertIn("    step taint\n      would taint node=w1 taint=example.com/next:PreferNoSchedule\n", plan)
            self.assertIn("    step untaint\n      would untaint node=w1 taint=example.com/next:PreferNoSchedule\n", plan)
            self.assertRegex(plan, r"    step packages\n      would run cmd=touch \S+-w1 sudo=false\n      would write path=\S+-w1.conf sudo=false")
            self.assertNotIn("uname", plan)
            self.assertIn("RECAP", r.stdout)
        finally:
            pgw.kill()
            pgw.wait()
            cluster.stop()
            lab.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
