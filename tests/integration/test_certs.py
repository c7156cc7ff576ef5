"""runbooks/cert-check.lua in the lab (seed 001): every kubeadm certificate in files and as served,
an expired control plane named, a renewed file not yet served flagged, and the upgrade's preflight
refusing expired certificates."""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "scripts", "lab")
ENGINE = os.environ.get("ENGINE_BIN", os.path.join(ROOT, "build", "bin", "engine"))
CHECK = os.path.join(ROOT, "runbooks", "cert-check.lua")
UPGRADE = os.path.join(ROOT, "runbooks", "k8s-upgrade.lua")
SUBNET = "127.0.60"


def lab(*args):
    r = subprocess.run([LAB, *args], capture_output=True, text=True, timeout=180)
    if r.returncode != 0:
        raise AssertionError(f"scripts/lab {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


class CertCheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="engine-certs-")
        lab("up", "--dir", cls.dir, "--subnet", SUBNET)
        with open(f"{cls.dir}/lab.json") as f:
            cls.state = json.load(f)

    @classmethod
    def tearDownClass(cls):
        lab("down", "--dir", cls.dir)

    def check(self, *extra):
        return subprocess.run([ENGINE, "run", CHECK, "-i", f"{self.dir}/inventory.yml", "--kubeconfig", f"{self.dir}/kubeconfig",
                               "--state-dir", f"{self.dir}/state", *extra], capture_output=True, text=True, timeout=300)

    def rows(self, out):
        return [line.split() for line in out.splitlines() if re.match(r"^(cp|w)\d\s", line)]

    def ssh(self, name, cmd):
        n = next(x for x in self.state["nodes"] if x["name"] == name)
        r = subprocess.run(["ssh", "-i", f"{self.dir}/ssh/id_ed25519", "-o", f"UserKnownHostsFile={self.dir}/known_hosts",
                            "-o", "BatchMode=yes", "-p", str(self.state["ssh_port"]), f"enginetest@{n['ip']}", cmd],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def test_1_a_fresh_cluster_is_all_green_files_and_served(self):
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertIn("Every certificate has 30 days or more left.", r.stdout)
        rows = self.rows(r.stdout)
        names = {(x[0], x[1]) for x in rows}
        for cp in ("cp1", "cp2", "cp3"):
            for name in ("apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "front-proxy-client",
                         "etcd-server", "etcd-peer", "etcd-healthcheck-client", "admin.conf", "super-admin.conf",
                         "controller-manager.conf", "scheduler.conf", "kubelet.conf", "ca", "etcd-ca", "front-proxy-ca"):
                self.assertIn((cp, name), names)
        for w in ("w1", "w2", "w3"):
            self.assertIn((w, "kubelet.conf"), names)
            self.assertNotIn((w, "apiserver"), names)  # workers have no control-plane PKI
        # etcd serves the node's own files: served rows with the file's days, and no mismatch.
        served = [x for x in rows if x[2] == "served" and x[1] in ("etcd-server", "etcd-peer")]
        self.assertEqual(len(served), 6, r.stdout)
        self.assertNotIn("serves serial", r.stdout)
        # Sorted by days left: the CAs (10 years) come last among the certificates.
        days = [int(x[4]) for x in rows if x[4].lstrip("-").isdigit()]
        self.assertEqual(days, sorted(days))
        # report.json carries the rows (the step's result), for a scheduled check.
        with open(sorted(self.report_paths())[-1]) as f:
            report = json.load(f)
        step = next(s for s in report["steps"] if s.get("step", s.get("key", "")).endswith("certificates"))
        self.assertGreaterEqual(len(step["results"][0]), 48)

    def report_paths(self):
        runs = f"{self.dir}/state/runs"
        return [f"{runs}/{d}/report.json" for d in os.listdir(runs) if os.path.exists(f"{runs}/{d}/report.json")]

    def test_2_expired_certificates_fail_the_check_and_the_upgrade_preflight(self):
        lab("fault", "cp2", "certs-expired", "--dir", self.dir)
        try:
            r = self.check("--log-format", "json")
            self.assertEqual(r.returncode, 1, r.stdout[-3000:])
            self.assertRegex(r.stderr, r"certificate\(s\) under 30 days")
            self.assertIn("cp2 apiserver (/etc/kubernetes/pki/apiserver.crt, expired ", r.stderr)
            self.assertIn("cp2 admin.conf (/etc/kubernetes/admin.conf, expired ", r.stderr)
            self.assertNotIn("cp1 apiserver", r.stderr)
            lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
            rows = [x["fields"] for x in lines if x.get("msg") == "certificate"]
            expired = [x for x in rows if x["node"] == "cp2" and x["name"] == "apiserver" and not x["where"].startswith("served")]
            self.assertEqual(len(expired), 1)
            self.assertLessEqual(expired[0]["days_left"], 0)
            up = subprocess.run([ENGINE, "run", UPGRADE, "-i", f"{self.dir}/inventory.yml", "--kubeconfig", f"{self.dir}/kubeconfig",
                                 "--state-dir", f"{self.dir}/state", "--dry-run", "-e", "version=1.34.3", "-e", "kind=minor",
                                 "-e", f"pushgateway={self.state['pushgateway_url']}", "-e", f"prometheus={self.state['prometheus_url']}"],
                                capture_output=True, text=True, timeout=300)
            self.assertEqual(up.returncode, 1, up.stdout[-3000:])
            self.assertIn("cp2: certificate apiserver (/etc/kubernetes/pki/apiserver.crt) expired", up.stderr)
        finally:
            lab("clear", "cp2", "certs-expired", "--dir", self.dir)

    def test_3_a_threshold_and_a_renewed_file_not_yet_served(self):
        r = self.check("-e", "threshold=400")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cp1 apiserver (/etc/kubernetes/pki/apiserver.crt, 364 days left)", r.stderr)
        # kubeadm renews the file; the API server keeps serving the certificate it read at start.
        # (etcd rereads its files at every handshake, as the real one does: its renewal is served at once.)
        self.ssh("cp3", "sudo kubeadm certs renew etcd-server")
        self.ssh("cp1", "sudo kubeadm certs renew apiserver")
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        etcd = next(x for x in r.stdout.splitlines() if x.startswith("cp3") and "served" in x and "etcd-server" in x)
        self.assertNotIn("the file holds", etcd)
        line = next(x for x in r.stdout.splitlines() if x.startswith("cp1") and "served" in x and " apiserver " in x)
        self.assertIn("the file holds", line)
        self.assertIn("restart the component", line)
        self.assertIn("a renewed certificate is not served yet", r.stdout)

    def test_4_certificates_expiring_in_ten_days(self):
        lab("fault", "cp3", "certs-expiring", "--days", "10", "--dir", self.dir)
        try:
            r = self.check()
            self.assertEqual(r.returncode, 1, r.stdout[-3000:])
            for name, where in (("apiserver", "/etc/kubernetes/pki/apiserver.crt"), ("etcd-server", "/etc/kubernetes/pki/etcd/server.crt"),
                                ("scheduler.conf", "/etc/kubernetes/scheduler.conf")):
                self.assertRegex(r.stderr, rf"cp3 {re.escape(name)} \({re.escape(where)}, (9|10) days left\)")
            # etcd serves the renewed file at once: its served row is due too, and matches the file.
            self.assertRegex(r.stderr, r"cp3 etcd-server \(served 127\.0\.60\.3:2379, (9|10) days left\)")
            self.assertNotIn("cp1 ", r.stderr.split("under 30 days")[1].split("stack traceback")[0])
        finally:
            lab("clear", "cp3", "certs-expiring", "--dir", self.dir)
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])

    def test_5_the_api_through_a_node_with_its_own_admin_conf(self):
        # Seeds 001/002: the controller has no working credentials or route; the node's admin.conf
        # (read with sudo, kept in memory) and a tunnel reach the API, its certificate still checked
        # against the name kubeadm issued it for.
        api_ip = self.state["api"].split("//")[1].split(":")[0]
        rb = os.path.join(self.dir, "through.lua")
        with open(rb, "w") as f:
            f.write(f"""
local k8s, ssh, remote = require "engine.k8s", require "engine.ssh", require "std.remote"
return runbook {{ name = "through-a-node", run = function(p, inv)
  local cp1 = inv:host("cp1")
  local conf = remote.must(cp1, "cat /etc/kubernetes/admin.conf", {{ read_only = true, what = "reading admin.conf" }}).stdout
  local t <close> = assert(ssh.tunnel(cp1, "{api_ip}", 6443))
  k8s.configure {{ kubeconfig_data = conf, server = "https://127.0.0.1:" .. t.port, tls_server_name = "kubernetes" }}
  print("NODES", #assert(k8s.nodes()))
  k8s.configure {{ kubeconfig_data = conf, server = "https://127.0.0.1:" .. t.port, tls_server_name = "not-the-apiserver" }}
  print("WRONG NAME", select(2, k8s.nodes()))
end }}
""")
        r = subprocess.run([ENGINE, "run", rb, "-i", f"{self.dir}/inventory.yml", "--state-dir", f"{self.dir}/state"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertIn("NODES\t6", r.stdout)
        self.assertIn("WRONG NAME\tunreachable", r.stdout)
        self.assertNotIn("PRIVATE KEY", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
