"""etcd's NOSPACE alarm in the lab: a member's database at its quota ("etcdserver: mvcc: database
space exceeded"), every write refused, the API server's too, so kubectl cannot cordon and no Lease
can be written. doctor names the alarm on its member, not as members down, with the command that
fixes it; the upgrade's preflight refuses with the same; etcd-maintenance's mode=defrag with
compact=true compacts, defragments one member at a time and disarms the alarm, without the cluster
Lease it cannot write; a member still over its quota after that keeps the alarm, and the run says
why."""
import os
import subprocess
import time
import unittest

from test_etcd_migration import ROOT, Lab, lab

DOCTOR = os.path.join(ROOT, "runbooks", "doctor.lua")
MAINTENANCE = os.path.join(ROOT, "runbooks", "etcd-maintenance.lua")
UPGRADE = os.path.join(ROOT, "runbooks", "k8s-upgrade.lua")
RECOVER = ("-e", "mode=defrag", "-e", "compact=true", "-e", "compact_keep=5", "-e", "pause=1s")


class Nospace(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lb = Lab(workers=1, subnet="127.0.77")

    @classmethod
    def tearDownClass(cls):
        cls.lb.down()

    def kubectl(self, *args):
        return subprocess.run(["kubectl", "--kubeconfig", f"{self.lb.dir}/kubeconfig", *args],
                              capture_output=True, text=True, timeout=60)

    def fault(self, node, on=True):
        lab("fault" if on else "clear", node, "etcd-nospace", "--dir", self.lb.dir)

    def alarms(self):
        return [a["alarm"] for a in self.lb.etcd("cp1", "/v3/maintenance/alarm", {"action": "GET"}).get("alarms") or []]

    def db_size(self, name):
        return int(self.lb.etcd(name, "/v3/maintenance/status")["dbSize"])

    def test_1_found_refused_then_compacted_defragmented_and_disarmed(self):
        before = {n["name"]: self.db_size(n["name"]) for n in self.lb.cps}
        self.fault("cp2")
        self.addCleanup(lambda: self.alarms() and self.fault("cp2", False))
        self.assertEqual(self.alarms(), ["NOSPACE"])
        k = self.kubectl("label", "node", "w1", "team=a")  # what the operator meets first
        self.assertNotEqual(k.returncode, 0)
        self.assertIn("etcdserver: mvcc: database space exceeded", k.stderr)
        full = {n["name"]: self.db_size(n["name"]) for n in self.lb.cps}
        for name in full:  # the fault's history: about 12 MiB on every member
            self.assertGreater(full[name], before[name] + (8 << 20), name)

        # doctor: the alarm on its member, with the command; the members answer (etcd's /health
        # says false under any alarm: that is not a member down).
        r = self.lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"etcd-alarm\s+alarm NOSPACE on member cp2 \(\d+\): its database reached its quota; etcd "
                              r"refuses every write, the API server's too")
        self.assertIn("fix: runbooks/etcd-maintenance.lua -e mode=defrag -e compact=true (compact, defragment, then disarm)", out)
        self.assertNotIn("unhealthy", out)
        self.assertNotIn("no leader", out)
        # The upgrade's preflight refuses, naming the same.
        r = self.lb.engine("run", UPGRADE, "-e", "version=1.34.3", "-e", "kind=minor")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"etcd: alarm NOSPACE on member cp2 \(\d+\) \(runbooks/etcd-maintenance\.lua -e mode=defrag "
                              r"-e compact=true compacts, defragments, then disarms it\)")

        # So does etcd-to-systemd's precheck, before it snapshots or changes anything.
        r = self.lb.migrate()
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"precheck failed, nothing was changed:\n  etcd: alarm NOSPACE on member cp2 \(\d+\) "
                              r"\(runbooks/etcd-maintenance\.lua -e mode=defrag -e compact=true compacts, defragments, "
                              r"then disarms it\)")
        # A run that changes the cluster stops at its Lease, which etcd refuses too, saying why and the way out.
        r = self.lb.engine("run", os.path.join(ROOT, "runbooks", "cert-renew.lua"))
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("the cluster lease kube-system/engine-cluster (one engine run changing the cluster at a time): "
                      "etcdserver: mvcc: database space exceeded (etcd's NOSPACE alarm: its database is at its quota and "
                      "every write is refused; runbooks/etcd-maintenance.lua -e mode=defrag -e compact=true clears it)", out)
        self.assertNotIn("renewed", out)

        # A dry run plans the three steps and changes nothing.
        r = self.lb.engine("run", MAINTENANCE, *RECOVER, "--dry-run")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        for step in ("step compact", "step defragment every member", "step disarm NOSPACE"):
            self.assertIn(step, out)
        self.assertIn("would disarm alarm=NOSPACE", out)
        self.assertRegex(out, r"\ncp2 +(yes)? +\d+\.\d MiB +- +2048\.0 MiB\n")  # no size "after" a dry run
        self.assertNotIn("NOSPACE disarmed", out)
        self.assertEqual(self.alarms(), ["NOSPACE"])
        self.assertEqual({n["name"]: self.db_size(n["name"]) for n in self.lb.cps}, full)

        r = self.lb.engine("run", MAINTENANCE, *RECOVER)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn("etcd's NOSPACE alarm stands: etcd refuses every write, the API server's included; going on "
                      "without the cluster lease (it cannot be written)", out)
        self.assertRegex(out, r"compacted kept=5 revision=\d+")
        self.assertEqual(out.count("INFO  defragmented "), 3)
        self.assertIn("NOSPACE disarmed: etcd takes writes again members=cp2", out)
        self.assertRegex(out, r"\ncp2 +(yes)? +\d+\.\d MiB +\d+\.\d MiB +2048\.0 MiB\n")  # before, after, its quota
        self.assertEqual(self.alarms(), [])
        for name in full:  # the history compacted away and given back by the defragmentation
            self.assertLess(self.db_size(name), full[name] - (8 << 20), name)
        k = self.kubectl("label", "node", "w1", "team=a")  # the API server writes again
        self.assertEqual(k.returncode, 0, k.stderr)
        self.assertEqual(self.kubectl("label", "node", "w1", "team-").returncode, 0)
        self.assertIn("NotFound", self.kubectl("get", "lease", "-n", "kube-system", "engine-etcd").stderr)

    def test_2_a_member_still_over_its_quota_keeps_the_alarm(self):
        # cp3's etcd with a 1 MiB quota, below what its database needs even once compacted and
        # defragmented: etcd raises NOSPACE itself when the fault writes.
        manifest = f"{self.lb.root('cp3')}/etc/kubernetes/manifests/etcd.yaml"
        with open(manifest) as f:
            original = f.read()

        def restore():
            with open(manifest, "w") as f:
                f.write(original)
            self.wait_member("cp3", quota=False)
            if self.alarms():
                self.fault("cp3", False)
        self.addCleanup(restore)
        with open(manifest, "w") as f:
            f.write(original.replace("- --snapshot-count=10000", "- --snapshot-count=10000\n    - --quota-backend-bytes=1048576"))
        self.wait_member("cp3", quota=True)
        self.fault("cp3")
        self.assertEqual(self.alarms(), ["NOSPACE"])
        # doctor measures each database against its member's own quota (no etcd_quota_bytes given).
        r = self.lb.engine("run", DOCTOR)
        self.assertRegex(r.stdout, r"cp3\s+etcd-db-size\s+database \d+ MiB, \d{3,}% of the 1 MiB quota")
        self.assertNotRegex(r.stdout, r"cp[12]\s+etcd-db-size")
        r = self.lb.engine("run", MAINTENANCE, *RECOVER)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"NOSPACE stays armed: cp3's database is \d+\.\d MiB, its quota 1\.0 MiB after the defragmentation; "
                              r"compact \(-e compact=true, fewer compact_keep\), delete what fills it, or raise "
                              r"--quota-backend-bytes, then run this again")
        self.assertNotIn("NOSPACE disarmed", out)
        self.assertEqual(self.alarms(), ["NOSPACE"])  # disarmed over its quota, etcd would raise it at the next write

    def wait_member(self, name, quota):
        """Until the node's etcd runs with (or without) the 1 MiB quota and answers with a leader."""
        ip = next(x["ip"] for x in self.lb.cps if x["name"] == name)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ps = subprocess.run(["pgrep", "-a", "-f", f"listen-client-urls=https://{ip}:2379"], capture_output=True, text=True).stdout
            if ps and ("--quota-backend-bytes=1048576" in ps) == quota:
                try:
                    if self.lb.etcd(name, "/v3/maintenance/status").get("leader"):
                        return
                except (OSError, ValueError):
                    pass
            time.sleep(0.5)
        self.fail(f"{name}'s etcd did not come back {'with' if quota else 'without'} its 1 MiB quota")

if __name__ == "__main__":
    unittest.main()
