"""k8s-upgrade.lua's tests that change nothing on the cluster, on one lab of their own: a dry run,
input that is refused, a refused preflight. Run with test_upgrade (which imports ReadOnly)."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab.sshd import poll  # noqa: E402
from labtest import kill_all, text_server  # noqa: E402

from upgrade_lab import ENGINE, FROM, LAB, RECOVER, SUBNET, UPGRADE, Helpers  # noqa: E402


class ReadOnly(Helpers, unittest.TestCase):
    """Tests that change nothing on the cluster (a dry run, input that is refused, a refused
    preflight) share one lab; the refused preflight goes last, as its faults stay."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="engine-upgrade-test-")
        r = subprocess.run([LAB, "up", "--dir", cls.dir, "--subnet", SUBNET, "--kubeadm-timeout", "10",
                            "--pod-start-delay", "0.5"], capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            subprocess.run([LAB, "down", "--dir", cls.dir], capture_output=True, timeout=120)
            raise AssertionError(f"lab up failed: {r.stdout}{r.stderr}")
        with open(f"{cls.dir}/lab.json") as f:
            cls.state = json.load(f)

    @classmethod
    def tearDownClass(cls):
        subprocess.run([LAB, "down", "--dir", cls.dir], capture_output=True, timeout=120)

    def setUp(self):
        self.procs = []

    def tearDown(self):
        kill_all(self.procs)

    def test_shell_metacharacters_in_inventory_values_never_reach_a_node(self):
        import yaml
        marker = f"/tmp/engine-injected-{os.getpid()}"  # the nodes share the machine's /tmp
        with open(f"{self.dir}/inventory.yml") as f:
            inv = yaml.safe_load(f)
        for name, host in inv["all"]["children"]["k8s-cp"]["hosts"].items():
            host["etcd_access_address"] = f"{host['ansible_host']}; touch {marker}; echo $(id) `id` \"'"
        bad = f"{self.dir}/inventory-bad.yml"
        with open(bad, "w") as f:
            yaml.safe_dump(inv, f)
        # Params that reach a node or a URL carry them too: each is validated, quoted or escaped.
        evil = f"x; touch {marker}; echo $(id) `id` \"'"
        for extra in ((), ("--dry-run",)):
            args = self.args(*extra, "-e", f"pushgateway_job={evil}", "-e", f"snapshot_dir=/tmp/{evil}")
            args[args.index("-i") + 1] = bad
            r = self.engine("run", UPGRADE, *args)
            self.assertEqual(r.returncode, 1, r.stdout[-2000:] + r.stderr[-2000:])
            self.assertIn(f'etcd.via_node: address "{self.state["nodes"][0]["ip"]}; touch {marker}', r.stderr)
            self.assertFalse(os.path.exists(marker), "an inventory value ran as a command on a node")
            r = self.engine("run", RECOVER, "-i", bad, "--kubeconfig", f"{self.dir}/kubeconfig", "--state-dir",
                            f"{self.dir}/state", "-e", f"backup_dir=/tmp/{evil}", "-e", "timeout=30s", *extra)
            self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
            self.assertFalse(os.path.exists(marker), "a param ran as a command on a node")
        self.assert_untouched()

    def test_dry_run_prints_the_whole_plan_and_changes_nothing(self):
        manifest = f"{self.dir}/nodes/cp1/root/etc/kubernetes/manifests/kube-apiserver.yaml"
        with open(manifest) as f:
            before = f.read()
        r = self.upgrade("--dry-run")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        for n in ("cp1", "cp2", "cp3"):
            self.assertRegex(out, rf"\n  {n}\n    step pull images\n.*\n    step drain\n")
        for n in ("w1", "w2", "w3"):  # the next worker's taint, said before the drain (outside a step)
            self.assertRegex(out, rf"\n  {n}\n(    step \(outside a step\)\n(      .*\n)+)?    step drain\n")
        self.assertIn("would taint node=w2 taint=engine.dev/upgrade-next:PreferNoSchedule", out)
        self.assertIn("Dry run: nothing was changed.", out)
        self.assertIn("would run cmd=kubeadm upgrade apply v1.34.3 --yes", out)
        self.assertEqual(out.count("would run cmd=kubeadm upgrade node"), 5)
        self.assertIn("would evict pod=shop/web-5d4f8b7c9-0", out)
        self.assert_untouched()
        with open(manifest) as f:
            self.assertEqual(f.read(), before)
        self.assertFalse(os.path.exists(f"{self.dir}/snapshots"))
        # In a pod on w1 (NODE_NAME, the downward API): w1 goes last, so w2 is the canary and w3 next.
        r = subprocess.run([ENGINE, "run", UPGRADE, *self.args("--dry-run")], capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, NODE_NAME="w1"))
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertIn("this engine runs on this node: it is upgraded last among its kind node=w1", r.stdout)
        self.assertIn("would taint node=w3 taint=engine.dev/upgrade-next:PreferNoSchedule", r.stdout)


    def test_a_version_nobody_published_is_refused_before_anything_changes(self):
        # kubeadm upgrade plan offers any version it is given; 1.34.9 was found missing only by
        # the leader's apt-get install, after its drain and its apt source switched to v1.34.
        r = self.upgrade("-e", "version=1.34.9")  # the later -e wins over args()'s 1.34.3
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("preflight failed; nothing was changed", out)
        self.assertIn(f"kubeadm 1.34.9 is not published in {self.state['mirror_url']}/core:/stable:/v1.34/deb "
                      "(its newest: 1.34.3)", out)
        self.assert_untouched()

    def test_groups_that_do_not_match_the_nodes_roles_are_refused_before_anything_changes(self):
        # A worker group given as the control plane was reported as an etcd migration stopped
        # midway on those workers; the control plane given as workers would be upgraded as workers.
        for extra, said in ((("-e", "control_plane=k8s-worker", "-e", "leader=w1"),
                             ["inventory host w1 (control_plane: k8s-worker) is not a control-plane node: its Node has no "
                              "node-role.kubernetes.io/control-plane label"]),
                            (("-e", "workers=all"),
                             ["inventory host cp1 (workers: all) is a control-plane node (node-role.kubernetes.io/control-plane): "
                              "it would be upgraded as a worker"]),
                            (("-e", "leader=w1"), ["the leader w1 is not one of the control-plane hosts (control_plane: k8s-cp)"]),
                            # Left out, cp3 would go on running the old API server beside the new:
                            # found only by the postflight, after every other node was upgraded.
                            (("--limit", "!cp3"), ["control-plane node cp3 is not a host of this run (the inventory's "
                                                   "k8s-cp group, or --limit left it out); kubeadm's procedure upgrades "
                                                   "every control-plane node"])):
            r = self.upgrade(*extra)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 1, out[-3000:])
            self.assertIn("preflight failed; nothing was changed", out)
            for line in said:
                self.assertIn(line, out)
        self.assert_untouched()

    def test_x_another_engine_run_changing_the_cluster_holds_the_upgrade_off(self):
        # A certificate renewal elsewhere holds kube-system/engine-cluster (std.cluster_lease):
        # the upgrade is refused before it changes anything, naming that run. Each family held
        # only its own lease before, and both would have restarted the control plane at once.
        done = threading.Event()
        srv = text_server(lambda: b"done" if done.is_set() else b"wait")
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        path = f"{self.dir}/elsewhere.lua"
        with open(path, "w") as f:
            f.write(f"""local http = require "engine.http"
local k8s = require "engine.k8s"
return runbook {{
  name = "cert-renew-elsewhere",
  run = function()
    local l = assert(k8s.lease("engine-cluster", {{ namespace = "kube-system", ttl = 30 }}))
    print("HOLDING " .. l.holder)
    for _ = 1, 300 do  -- until the test is done with it (60 s at most)
      local r = http.request {{ url = "http://127.0.0.1:{srv.server_address[1]}/", retries = 0, timeout = 5 }}
      if r and r.body == "done" then break end
      sleep(0.2)
    end
  end,
}}
""")
        holder = subprocess.Popen([ENGINE, "run", path, "--kubeconfig", f"{self.dir}/kubeconfig", "--state-dir",
                                   f"{self.dir}/state-elsewhere"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(holder)
        try:
            line, deadline = "", time.monotonic() + 60
            while "HOLDING" not in line and time.monotonic() < deadline and holder.poll() is None:
                line = holder.stdout.readline()
            self.assertIn("HOLDING", line)
            r = self.upgrade()
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 1, out[-3000:])
            self.assertRegex(out, r"the cluster lease kube-system/engine-cluster \(one engine run changing the cluster at a "
                                  r"time\): lease kube-system/engine-cluster is held by \S+-cert-renew-elsewhere-\w+")
            self.assert_untouched()
        finally:
            done.set()  # its run ends and gives the lease back
            holder.communicate(timeout=60)
        self.assertEqual(self.lease_holder("engine-cluster"), "")

    def test_y_an_image_pull_that_fails_stops_the_run_before_any_node_changes(self):
        # cp2's / is 80% used (under max_disk_used: the preflight passes) with 256 MiB free, room
        # for no image: its pull beside the snapshot fails, and again after it, where it stops the run.
        path = f"{self.dir}/nodes/cp2/root/var/lib/engine-lab/disk.json"
        with open(path) as f:
            saved = f.read()
        with open(path, "w") as f:
            json.dump({"size": (1 << 30) + (256 << 20), "base": 1 << 30, "journal": 0, "images": {}}, f)
        try:
            r = self.upgrade()
        finally:
            with open(path, "w") as f:
                f.write(saved)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"\[cp2\].*preparing ahead failed: its own turn does that work")
        self.assertRegex(r.stderr, r"\n  cp2: kubeadm config images pull exited 1: .*no space left on device")
        self.assertIn("etcd snapshot", r.stdout)
        # Nothing changed on a node; the run gave both Leases back as it ended (its resume would
        # take them again under its run id); deleted here, so the next test sees none taken.
        nodes = self.nodes()
        self.assertEqual(nodes, {n: {"version": FROM, "cordoned": False} for n in nodes})
        self.assertEqual(self.gauges(), {})
        for n in nodes:
            self.assertEqual(self.apt_history(n), "")
        self.assertEqual({n: self.lease_holder(n) for n in ("engine-cluster", "k8s-upgrade")},
                         {"engine-cluster": "", "k8s-upgrade": ""})
        for lease in ("engine-cluster", "k8s-upgrade"):
            self.assertEqual(self.kubectl("delete", "lease", "-n", "kube-system", lease).returncode, 0, lease)

    def test_z_preflight_names_every_failed_check_and_changes_nothing(self):
        # Outside its maintenance window the upgrade starts nothing and says when it opens; a bad
        # window is named.
        later = time.time() + 3600
        window = f"daily {time.strftime('%H:%M', time.gmtime(later))}-{time.strftime('%H:%M', time.gmtime(later + 3600))} UTC"
        r = self.upgrade("-e", f"maintenance_window={window}")
        self.assertEqual(r.returncode, 1, r.stderr[-3000:])
        self.assertRegex(r.stderr, rf"outside the maintenance window \({window}\): it opens next at \S+Z; nothing was changed")
        self.assertNotIn("preflight", r.stdout)
        # As a Job's pod (window_wait): it waits for the window, changing nothing; SIGTERM ends the wait.
        p = subprocess.Popen([ENGINE, "run", UPGRADE, *self.args("-e", f"maintenance_window={window}", "-e", "window_wait=true")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, ENGINE_TERM_GRACE="1"))
        self.procs.append(p)
        waited = []
        for line in p.stdout:
            waited.append(line)
            if "outside the maintenance window: waiting until it opens; nothing was changed" in line:
                p.send_signal(signal.SIGTERM)
                break
        waited = "".join(waited) + p.communicate(timeout=60)[0]
        self.assertEqual(p.returncode, 130, waited[-3000:])
        self.assertNotIn("preflight", waited)
        r = self.upgrade("-e", "maintenance_window=Mon-Fry 22:00-04:00 Europe/Berlin")
        self.assertEqual(r.returncode, 1, r.stderr[-3000:])
        self.assertIn("maintenance window 'Mon-Fry 22:00-04:00 Europe/Berlin': 'Fry' is not a day", r.stderr)
        self.lab("fault", "cp3", "disk-full")
        self.lab("fault", "cp1", "scheduler-rbac-missing")
        self.lab("fault", "w3", "node-notready")
        self.lab("fault", "w1", "alert-firing")
        self.assertTrue(poll(lambda: "LabFaultAlert" in urllib.request.urlopen(
            self.state["prometheus_url"] + "/api/v1/alerts", timeout=5).read().decode(), 30))
        # cp3's kubelet reports DiskPressure once it has stopped its pods (etcd takes a second to
        # stop): the alert above can fire sooner, and the preflight reads what the API says.
        self.assertTrue(poll(lambda: "True" in self.kubectl(
            "get", "node", "cp3", "-o", "jsonpath={.status.conditions[?(@.type=='DiskPressure')].status}").stdout, 30))
        # One of shop/web's pods is not ready: the Deployment the gate waits for is short.
        k = self.kubectl("patch", "pod", "web-5d4f8b7c9-1", "-n", "shop", "--subresource=status", "--type=merge", "-p",
                         '{"status":{"conditions":[{"type":"Ready","status":"False"}]}}')
        self.assertEqual(k.returncode, 0, k.stderr)
        r = self.upgrade("-e", "kind=patch", "-e", "wait_workloads=shop/deployment/web")
        self.assertEqual(r.returncode, 1, r.stderr[-3000:])
        self.assertIn("workloads not ready: shop/deployment/web: 2 of 3 replicas available", r.stderr)
        for want in ("version: v1.33.1 to v1.34.3 is a minor upgrade, but kind=patch was asked for",
                     "node w3 is NotReady", "node cp3 has DiskPressure (runbooks/recover-disk.lua frees it)",
                     "cp3: / is 100% used (max_disk_used 85%); free space first (runbooks/recover-disk.lua)",
                     "rbac: ClusterRole system:kube-scheduler: missing (runbooks/recover-rbac.lua restores it)",
                     "alerts: alerts firing: LabFaultAlert (firing)"):
            self.assertIn(want, r.stderr)
        self.assert_untouched()


if __name__ == "__main__":
    unittest.main()
