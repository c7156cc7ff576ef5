"""What test_upgrade's tests share: the paths, the versions, and the Helpers every test case mixes
in to run the engine against its lab and read the nodes, the gauges and apt's history."""
import json
import os
import re
import subprocess
import tempfile
import urllib.request

from labtest import kill_all

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "scripts", "lab")
ENGINE = os.environ.get("ENGINE_BIN", os.path.join(ROOT, "build", "bin", "engine"))
UPGRADE = os.path.join(ROOT, "runbooks", "k8s-upgrade.lua")
RECOVER = os.path.join(ROOT, "runbooks", "recover-static-pods.lua")
SUBNET = "127.0.30"
FROM, TO = "v1.33.1", "v1.34.3"


class Helpers:
    """What every test of test_upgrade does to its lab: run the engine, read the nodes, the gauges, apt."""

    # --- helpers ------------------------------------------------------------------------------
    def lab(self, *args):
        r = subprocess.run([LAB, *args, "--dir", self.dir], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def args(self, *extra, kubeconfig=None):
        # No Prometheus or Pushgateway URL: the runbook reads the lab inventory's prometheus_url and
        # pushgateway_url, as an operator's run does (the alert gate's and the gauges' tests read them).
        return ["-i", f"{self.dir}/inventory.yml", "--kubeconfig", kubeconfig or f"{self.dir}/kubeconfig",
                "--state-dir", f"{self.dir}/state", "-e", "version=1.34.3", "-e", "kind=minor",
                "-e", f"snapshot_dir={self.dir}/snapshots", "-e", "gate_interval=1s", "-e", "gate_passes=1",
                "-e", "node_timeout=60s", *extra]

    def engine(self, *args, timeout=600):
        return subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout)

    def upgrade(self, *extra, timeout=600, kubeconfig=None):
        return self.engine("run", UPGRADE, *self.args(*extra, kubeconfig=kubeconfig), timeout=timeout)

    def start_upgrade(self, *extra):
        p = subprocess.Popen([ENGINE, "run", UPGRADE, *self.args(*extra)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        self.procs.append(p)
        return p

    def resume(self, run_id, *extra):
        return self.engine("resume", run_id, "--state-dir", f"{self.dir}/state", *extra)

    @staticmethod
    def run_id(out):
        m = re.search(r"engine resume (\S+)", out)
        assert m, out
        return m.group(1)

    def kubectl(self, *args):
        return subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", *args], capture_output=True,
                              text=True, timeout=60)

    def nodes(self):
        items = json.loads(self.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        return {n["metadata"]["name"]: {"version": n["status"]["nodeInfo"]["kubeletVersion"],
                                        "cordoned": bool(n["spec"].get("unschedulable"))} for n in items}

    def taints(self):
        items = json.loads(self.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        return {n["metadata"]["name"]: sorted(f"{t['key']}:{t['effect']}" for t in n["spec"].get("taints") or [])
                for n in items}

    def upgrade_taints(self):
        return {n: t for n, t in self.taints().items() if any(x.startswith("engine.dev/upgrade-next") for x in t)}

    def report(self, out):
        run_id = re.search(r" run=(\S+)", out).group(1)
        with open(f"{self.dir}/state/runs/{run_id}/report.json") as f:
            return json.load(f)

    def gauges(self):
        with urllib.request.urlopen(self.state["pushgateway_url"] + "/metrics", timeout=5) as r:
            text = r.read().decode()
        return {m.group(1): float(m.group(2)) for m in
                re.finditer(r'^(k8s_upgrade_\w+)\{[^}]*job="k8s_upgrade"[^}]*\} (\S+)$', text, re.M)}

    def apt_history(self, node):
        try:
            with open(f"{self.dir}/nodes/{node}/root/var/log/apt/history.log") as f:
                return f.read()
        except OSError:
            return ""

    def assert_upgraded(self, left_out=()):
        """Every node upgraded, but left_out's: untouched (at FROM, no package installed)."""
        nodes = self.nodes()
        self.assertEqual({n: v["version"] for n, v in nodes.items()}, {n: FROM if n in left_out else TO for n in nodes})
        self.assertEqual([n for n, v in nodes.items() if v["cordoned"] and n not in left_out], [])
        for n in left_out:
            self.assertEqual(self.apt_history(n), "", n)
        nodes = {n: v for n, v in nodes.items() if n not in left_out}
        self.assertEqual(self.kubectl("version").stdout.splitlines()[-1], f"Server Version: {TO}")
        self.assertEqual(self.gauges(), {"k8s_upgrade_in_flight": 0, "k8s_upgrade_started_timestamp": 0,
                                         "k8s_upgrade_snapshot_taken": 0})
        for n in nodes:  # every package upgraded exactly once on every node
            h = self.apt_history(n)
            for pkg in ("kubeadm", "kubelet", "kubectl"):
                self.assertEqual(h.count(f"{pkg}:amd64 (1.33.1-1.1, 1.34.3-1.1)"), 1, f"{n} {pkg}:\n{h}")
            # and held again (installed over the hold, never unheld: a stop in between leaves it held)
            with open(f"{self.dir}/nodes/{n}/root/var/lib/engine-lab/packages.json") as f:
                pkgs = json.load(f)
            self.assertEqual({p: pkgs[p].get("hold") for p in ("kubeadm", "kubelet", "kubectl")},
                             {"kubeadm": True, "kubelet": True, "kubectl": True}, n)
        # the run's PreferNoSchedule taints on the next workers are all gone
        self.assertEqual(self.upgrade_taints(), {})

    def assert_untouched(self):
        nodes = self.nodes()
        self.assertEqual({n: v for n, v in nodes.items()}, {n: {"version": FROM, "cordoned": False} for n in nodes})
        self.assertEqual(self.gauges(), {})
        self.assertIn("NotFound", self.kubectl("get", "lease", "-n", "kube-system", "k8s-upgrade").stderr)
        self.assertNotIn("k8s-upgrade", self.lease_holder("engine-cluster"))  # never taken, or by another runbook
        for n in nodes:
            self.assertEqual(self.apt_history(n), "")

    def lease_holder(self, name):
        """kube-system/NAME's holderIdentity: "" when it is free or there is none."""
        r = self.kubectl("get", "lease", "-n", "kube-system", name, "-o", "json")
        return (json.loads(r.stdout)["spec"].get("holderIdentity") or "") if r.returncode == 0 else ""


class FreshLab(Helpers):
    """A fresh lab for every test (an upgrade changes it for good), taken down after it."""
    WORKERS = 3  # the lab's workers (three control-plane nodes beside them)
    SUBNET = SUBNET  # a module of its own runs beside this one (scripts/test: ctest -j2) on another

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="engine-upgrade-test-")
        image = []
        if "as_a_job" in self.id():  # the engine's pods run its image, built from this tree (scripts/image)
            b = subprocess.run([os.path.join(ROOT, "scripts", "image"), "--out", f"{self.dir}.image.tar"],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(b.returncode, 0, b.stderr)
            self.addCleanup(os.remove, f"{self.dir}.image.tar")
            image = ["--engine-image", f"{self.dir}.image.tar"]
        r = subprocess.run([LAB, "up", "--dir", self.dir, "--subnet", self.SUBNET, "--workers", str(self.WORKERS), "--kubeadm-timeout", "10",
                            "--pod-start-delay", "0.5",  # half the default: the same steps, less waiting
                            "--apt-download-delay", "0.1", *image],  # each package fetch takes a moment
                           capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise AssertionError(f"lab up failed: {r.stdout}{r.stderr}")
        with open(f"{self.dir}/lab.json") as f:
            self.state = json.load(f)
        self.procs = []

    def tearDown(self):
        kill_all(self.procs)
        subprocess.run([LAB, "down", "--dir", self.dir], capture_output=True, timeout=120)
