"""runbooks/recover-disk.lua in the lab (seed 002): two control-plane nodes at 100%, their static
pods unable to start, the API reachable only through the nodes; the cleanups in the seed's order free enough, the kubelet restart brings the
API servers and etcd back, the prevention is installed, a second run changes nothing; a disk that
no cleanup can free stops with what fills it; the simulated apt, snap, journalctl and du never
touch the host's files."""
import json
import os
import socket
import subprocess
import unittest

from labtest import ROOT, LabClass, fault, lab  # noqa: E402
RECOVER = os.path.join(ROOT, "runbooks", "recover-disk.lua")
SUBNET = "127.0.75"


def answers(ip, port):
    try:
        with socket.create_connection((ip, port), timeout=2):
            return True
    except OSError:
        return False


def host_state(paths):
    """What a test must not change on the host: each path's listing, sizes and mtimes."""
    out = {}
    for p in paths:
        for d, _, files in os.walk(p):
            for f in files:
                try:
                    st = os.stat(os.path.join(d, f))
                    out[os.path.join(d, f)] = (st.st_size, st.st_mtime_ns)
                except OSError:
                    pass
    return out


class RecoverDisk(LabClass):
    SUBNET = SUBNET

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ip = {n["name"]: n["ip"] for n in cls.state["nodes"]}

    def run_recover(self, *extra):
        return self.engine_run(RECOVER, *extra)

    def ssh(self, name, cmd, check=True):
        r = subprocess.run(["ssh", "-i", f"{self.dir}/ssh/id_ed25519", "-o", f"UserKnownHostsFile={self.dir}/known_hosts",
                            "-o", "BatchMode=yes", "-p", str(self.state["ssh_port"]), f"enginetest@{self.ip[name]}", cmd],
                           capture_output=True, text=True, timeout=120)
        if check:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def used(self, node):
        return int(self.ssh(node, "df -P /").stdout.split()[-2].rstrip("%"))

    def kubectl(self, *args):
        return subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", "--request-timeout=10s", *args],
                              capture_output=True, text=True, timeout=60)

    def test_1_two_full_control_plane_nodes_recovered_prevented_and_idempotent(self):
        for n in ("cp2", "cp3"):
            lab("fault", n, "disk-full", "--dir", self.dir)
        # As in the seed: the API servers of the full nodes do not listen, their pods cannot start,
        # and the controller's route to the API is gone (only SSH to the nodes works).
        lab("fault", "cp1", "api-unreachable", "--dir", self.dir)
        self.assertTrue(all(self.used(n) == 100 for n in ("cp2", "cp3")))
        cut = self.kubectl("get", "nodes")
        self.assertNotEqual(cut.returncode, 0)
        self.assertIn("refused", cut.stderr)
        # A dry run plans the cleanups and claims nothing done: no figures freed, no node back.
        d = self.run_recover("--dry-run")
        self.assertEqual(d.returncode, 0, d.stdout[-5000:] + d.stderr[-3000:])
        self.assertIn("would run cmd=journalctl --vacuum-time=", d.stdout)
        for claim in ("the node is back", "cleanup(s)", "freed="):
            self.assertNotIn(claim, d.stdout + d.stderr)
        self.assertTrue(all(self.used(n) == 100 for n in ("cp2", "cp3")))
        r = self.run_recover()
        self.assertEqual(r.returncode, 0, r.stdout[-5000:] + r.stderr[-3000:])
        # cp2's and cp3's pods, their etcd members too, stopped with their disks: etcd has no quorum,
        # and cp1's API server answers every read "etcdserver: request timed out". No node carries
        # the API until cp2 is back; from then on the run's own credentials go through a tunnel to
        # cp2's, the Nodes' Ready is waited for, and cp2's kubelet restart, made while no API
        # server answered, is marked once one does.
        self.assertIn("The API does not answer through this run's kubeconfig nor through any control-plane node yet", r.stdout)
        self.assertIn("[cp2] the API answers through an SSH tunnel to the node's own API server", r.stdout)
        self.assertIn("the node's kubelet restart marked, now that the API answers node=cp2", r.stdout)
        self.assertNotIn("[cp3] could not mark the node", r.stdout + r.stderr)
        self.assertNotIn("Ready not checked", r.stdout)
        self.assertRegex(r.stdout, r"cp2\s+100%\s+0 MiB\s+5120 MiB\s+2048 MiB\s+2048 MiB")  # the triage's estimates
        for n in ("cp2", "cp3"):
            # Safest first, and no further than needed: journal, apt cache, images; snaps left alone.
            cleaned = [l.split("cleanup=")[1].split(" freed")[0] for l in r.stdout.splitlines() if f"[{n}] cleanup " in l]
            self.assertEqual(cleaned, ["journal", '"apt cache"', '"unused images"'])
            self.assertIn(f"[{n}] the node is back", r.stdout)
            self.assertRegex(r.stdout, rf"\[{n}\] / \d+% used, \d+ MiB free after 3 cleanup\(s\)\n")
            self.assertLessEqual(self.used(n), 80)
            self.assertTrue(answers(self.ip[n], 6443), f"{n}'s API server does not answer")
            self.assertTrue(answers(self.ip[n], 2379), f"{n}'s etcd does not answer")
            # Never etcd's data or the control plane's files.
            self.assertIn("member", self.ssh(n, "sudo ls /var/lib/etcd").stdout)
            self.assertIn("kube-apiserver.yaml", self.ssh(n, "sudo ls /etc/kubernetes/manifests").stdout)
        self.assertNotIn("[cp1] cleanup", r.stdout)
        # Prevention on every node: journald's limit and the weekly timer; the alert rule printed.
        for n in self.ip:
            with open(f"{self.dir}/nodes/{n}/root/etc/systemd/journald.conf.d/engine-disk.conf") as f:
                self.assertIn("SystemMaxUse=500M", f.read())
            self.assertIn("engine-disk-cleanup.timer", self.ssh(n, "systemctl list-timers --all --no-pager").stdout)
        self.assertFalse(os.path.exists("/etc/systemd/journald.conf.d/engine-disk.conf"))  # the host's own
        self.assertIn("alert: NodeRootFilesystemFilling", r.stdout)
        # A second run changes nothing.
        again = self.run_recover()
        self.assertEqual(again.returncode, 0, again.stdout[-3000:])
        self.assertIn("Every node's / is at or under 80%: nothing to clean.", again.stdout)
        self.assertNotIn("cleanup", again.stdout.replace("engine-disk-cleanup", ""))
        self.assertNotIn("would write", again.stdout)
        self.assertEqual(again.stdout.count(": already so"), 6 * 6)
        # The route back: the cluster answers through the kubeconfig again, every node Ready, and
        # the restarts of cp2 and cp3 marked as this engine's own (quiet_hours does not count them).
        lab("clear", "cp1", "api-unreachable", "--dir", self.dir)
        nodes = json.loads(self.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        ready = {n["metadata"]["name"]: [c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"] for n in nodes}
        self.assertEqual(ready, {n: ["True"] for n in self.ip})
        marked = {n["metadata"]["name"] for n in nodes if "engine.dev/kubelet-restarted" in n["metadata"].get("annotations", {})}
        self.assertEqual(marked, {"cp2", "cp3"})

    def test_2_a_disk_no_cleanup_can_free_stops_with_what_fills_it(self):
        lab("fault", "w1", "disk-full-stuck", "--dir", self.dir)
        # Only the workers examined, the API through a node: the control-plane nodes it was not
        # asked to examine still carry the route (they once made it fail on a nil).
        lab("fault", "cp1", "api-unreachable", "--dir", self.dir)
        try:
            r = self.run_recover("-e", "prevention=false", "-e", "nodes=k8s-worker")
            self.assertIn("it does through an SSH tunnel to cp1's own API server", r.stdout)
            self.assertEqual(r.returncode, 1, r.stdout[-3000:])
            self.assertRegex(r.stdout + r.stderr, r"/ is still 100% used after every cleanup \(target 80%\): biggest under /var: "
                                                  r"/var/lib 51200 MiB.*; within them: /var/lib/docker 51200 MiB, "
                                                  r"/var/log/journal \d+ MiB\. Nothing else was touched")
            self.assertNotIn("[w1] the node is back", r.stdout)
            self.assertNotIn("kubelet and control plane back", r.stdout.split("[w1]")[-1])
        finally:
            lab("clear", "w1", "disk-full-stuck", "--dir", self.dir)
            lab("clear", "cp1", "api-unreachable", "--dir", self.dir)

    def test_3_the_simulated_tools_never_touch_the_host(self):
        paths = ["/var/cache/apt", "/var/log/journal", "/var/lib/snapd", "/etc/systemd/journald.conf.d"]
        before = host_state(paths)
        for cmd in ("sudo apt clean", "sudo apt-get clean", "sudo apt autoclean", "sudo snap list --all",
                    "sudo journalctl --vacuum-time=1s", "sudo journalctl --disk-usage", "sudo du -x -d 1 /var", "sudo du -x -d 2 /var",
                    "sudo du -s /var/cache/apt /var/log/journal", "sudo crictl rmi --prune", "df -i /"):
            self.ssh("w2", cmd)
        r = self.ssh("w2", "sudo apt dist-upgrade", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("the lab's apt does", r.stderr)
        self.assertEqual(host_state(paths), before)

    def test_4_a_full_node_whose_etcd_runs_under_systemd(self):
        # After etcd-to-systemd there is no etcd container to wait for: systemd restarts etcd once
        # there is room, and the node's member is what is asked (it waited 3 minutes for a
        # container that never comes, and failed).
        mig = self.engine_run(os.path.join(ROOT, "runbooks", "etcd-to-systemd.lua"), "-e", f"snapshot_dir={self.dir}/snapshots")
        self.assertEqual(mig.returncode, 0, mig.stdout[-3000:] + mig.stderr[-3000:])
        lab("clear", "cp2", "disk-full", "--dir", self.dir)  # test_1's fault, repaired by its run
        lab("fault", "cp2", "disk-full", "--dir", self.dir)
        self.assertEqual(self.used("cp2"), 100)
        r = self.run_recover("-e", "prevention=false")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertIn("[cp2] the node is back", r.stdout)
        self.assertNotIn("has no running container", r.stdout + r.stderr)
        self.assertEqual(self.ssh("cp2", "sudo systemctl is-active etcd").stdout.strip(), "active")
        self.assertTrue(answers(self.ip["cp2"], 2379), "cp2's etcd does not answer")
        self.assertNotIn("etcd.yaml", self.ssh("cp2", "sudo ls /etc/kubernetes/manifests").stdout)

    def test_5_an_unreachable_node_stops_the_triage_and_the_way_round_is_named(self):
        # A worker whose SSH is refused, beside a full control-plane node: nothing is cleaned while a
        # node's disk is unknown (it may be the full one), and the run says how to go on without it.
        with fault(self.dir, "w1", "ssh-down"), fault(self.dir, "cp1", "disk-full"):
            r = self.run_recover("-e", "prevention=false")
            self.assertEqual(r.returncode, 1, r.stdout[-3000:] + r.stderr[-3000:])
            self.assertIn("w1 was not reachable over SSH: refused (connect", r.stderr)
            self.assertIn("a run with --limit '!w1' leaves it out", r.stderr)
            self.assertNotIn("[cp1] cleanup", r.stdout)
            self.assertEqual(self.used("cp1"), 100)
            again = self.run_recover("-e", "prevention=false", "--limit", "!w1")
            self.assertEqual(again.returncode, 0, again.stdout[-3000:] + again.stderr[-3000:])
            self.assertIn("[cp1] the node is back", again.stdout)
            self.assertLessEqual(self.used("cp1"), 80)
            self.assertNotIn("not reachable", again.stderr)


class OneControlPlane(LabClass):
    """A one-node control plane (an edge cluster) with its disk full: every pod on it stopped, the
    API gone with them (the load balancer has no API server behind it). The kubeconfig's own route
    comes back with the node: no tunnel is needed, and the kubelet restart is marked once it does."""
    SUBNET = "127.0.82"
    UP_ARGS = ("--control-planes", "1", "--workers", "1")

    def test_the_api_back_through_the_kubeconfig_with_the_node(self):
        lab("fault", "cp1", "disk-full", "--dir", self.dir)
        kubectl = ["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig"]
        cut = subprocess.run([*kubectl, "get", "nodes"], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(cut.returncode, 0, cut.stdout)
        self.assertRegex(cut.stderr, r"EOF|connection reset by peer")
        r = self.engine_run(RECOVER, "-e", "prevention=false")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-5000:])
        self.assertIn("The API does not answer through this run's kubeconfig nor through any control-plane node yet", out)
        self.assertNotIn("tunnel to the node's own API server", out)
        self.assertIn("the node's kubelet restart marked, now that the API answers node=cp1", out)
        self.assertIn("[cp1] the node is back node=cp1", out)
        nodes = subprocess.run([*kubectl, "get", "nodes", "-o", "json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(nodes.returncode, 0, nodes.stderr)
        cp1 = [n for n in json.loads(nodes.stdout)["items"] if n["metadata"]["name"] == "cp1"][0]
        self.assertIn("engine.dev/kubelet-restarted", cp1["metadata"]["annotations"])


if __name__ == "__main__":
    unittest.main()
