"""runbooks/etcd-member-replace.lua in the lab: a member whose data is lost (the lab's
etcd-data-lost: its data directory wiped, etcd started again) exits with "member ... has already
been bootstrapped" (a static Pod) or a raft panic (etcd.service), the cluster a member short. The
precheck refuses a host that is not a member and a member that answers; the dry run changes
nothing; the run takes a snapshot, removes the member, keeps its old data aside, adds it again and
starts it as an existing member: a new ID, the others' kept, and the data it lost back from its
peers. Then the same for a member under systemd, after etcd-to-systemd."""
import glob
import os
import re
import signal
import subprocess
import time
import unittest

from test_etcd_migration import ROOT, Lab, lab, read

REPLACE = os.path.join(ROOT, "runbooks", "etcd-member-replace.lua")
DOCTOR = os.path.join(ROOT, "runbooks", "doctor.lua")


class Replace(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lb = Lab(workers=1, subnet="127.0.80")

    @classmethod
    def tearDownClass(cls):
        cls.lb.down()

    def replace(self, *extra):
        r = self.lb.engine("run", REPLACE, "-e", f"snapshot_dir={self.lb.dir}/snapshots", *extra)
        return r, r.stdout + r.stderr

    def lose(self, name, log, says):
        """The member's data lost; its etcd started again says so in its log (within 30 s)."""
        lb = self.lb
        lb.put(f"/before-{name}", "kept")
        before = lb.members()
        path = f"{lb.root(name)}{log}"
        start = os.path.getsize(path) if os.path.exists(path) else 0
        self.kept_before = set(glob.glob(f"{lb.root(name)}/var/lib/etcd/member.replaced-*"))
        lab("fault", name, "etcd-data-lost", "--dir", lb.dir)
        end = time.monotonic() + 30
        while says not in read(path)[start:] and time.monotonic() < end:
            time.sleep(0.3)
        self.assertIn(says, read(path)[start:])
        lb.put(f"/while-{name}-down", "caught up")
        return before

    def check_replaced(self, name, before, out):
        lb = self.lb
        after = lb.members()
        self.assertEqual(set(after), set(before))
        self.assertNotEqual(after[name], before[name])
        for other in set(before) - {name}:
            self.assertEqual(after[other], before[other])
        self.assertIn(f"{name}'s member was {before[name]}, is now {after[name]}", out)
        # The data it lost, from its peers: its own copy, no leader asked.
        self.assertEqual(lb.get(name, f"/before-{name}", serializable=True), "kept")
        self.assertEqual(lb.get(name, f"/while-{name}-down", serializable=True), "caught up")
        aside = set(glob.glob(f"{lb.root(name)}/var/lib/etcd/member.replaced-*")) - self.kept_before
        self.assertEqual(len(aside), 1, aside)
        self.assertTrue(glob.glob(f"{lb.dir}/snapshots/etcd-*.db"))

    def test_1_static_pod_member(self):
        lb = self.lb
        # A healthy member is not replaced unasked.
        r, out = self.replace("-e", "node=cp1")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("precheck failed, nothing was changed:\n  cp1's member answers, healthy, with a leader: nothing to "
                      "replace (-e force=true replaces it anyway: a member whose data you no longer trust)\n", out)
        before = self.lose("cp3", "/var/log/pods/etcd.log", "has already been bootstrapped")

        # doctor: the member unhealthy, and what replaces it when its data is lost.
        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"etcd-unhealthy\s+cp3 unhealthy")
        self.assertIn("runbooks/etcd-member-replace.lua -e node=cp3", out)
        # On cp3's own row, from its data directory: the manifest starts a member with no WAL.
        self.assertRegex(out, r"cp3\s+etcd-data-lost\s+/etc/kubernetes/manifests/etcd\.yaml starts a member whose data is gone "
                              r"\(no WAL in /var/lib/etcd/member/wal\): it exits at each start \(\"has already been bootstrapped\"\); "
                              r"2 of the other 2 members are healthy, a quorum: replace it [^\n]*\n.*fix: "
                              r"runbooks/etcd-member-replace\.lua -e node=cp3\n")
        # cp2's etcd frozen too (its data kept, its member not answering): no quorum to replace cp3
        # with, and a restore would lose what cp1 and cp2 hold. doctor says to bring cp2 back first.
        ip = next(n["ip"] for n in lb.state["nodes"] if n["name"] == "cp2")
        frozen = subprocess.run(["pgrep", "-f", f"etcd .*--listen-client-urls=https://{ip}:2379"],
                                capture_output=True, text=True).stdout.split()
        self.assertEqual(len(frozen), 1, frozen)
        os.kill(int(frozen[0]), signal.SIGSTOP)
        try:
            r = lb.engine("run", DOCTOR)
        finally:
            os.kill(int(frozen[0]), signal.SIGCONT)
        end = time.monotonic() + 60  # cp1 and cp2 a quorum again: a linearizable read answers
        while time.monotonic() < end:
            try:
                if lb.get("cp1", "/before-cp3") == "kept":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"cp3\s+etcd-data-lost\s+[^\n]*; 2 of the other 2 members run with their data \(cp1, cp2\) but "
                              r"only 0 are healthy, fewer than a quorum of 2: bring them back first \(etcdctl endpoint health "
                              r"--cluster, their logs; a restore would lose what they hold\), then replace it\n")
        self.assertNotIn("etcd-restore.lua -e snapshot=FILE", out)

        # Refusals, nothing changed: not a member's host; another member while cp3 is down (with
        # force: it answers), which would leave no quorum.
        r, out = self.replace("-e", "node=w1")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("node=w1 is not in k8s-cp (3 hosts)", out)
        r, out = self.replace("-e", "node=cp1", "-e", "force=true")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("precheck failed, nothing was changed:\n  only 1 of the 3 members answer without cp1 (a quorum is 2): "
                      "removing and adding a member needs one; bring the others back first, or restore every member from a "
                      "snapshot (runbooks/etcd-restore.lua -e snapshot=FILE)", out)
        self.assertEqual(lb.members(), before)

        # The dry run: the plan, nothing changed.
        r, out = self.replace("-e", "node=cp3", "--dry-run")
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn(f"would remove the etcd member id={before['cp3']}", out)
        self.assertIn("would add an etcd member peer_urls=https://127.0.80.3:2380", out)
        self.assertRegex(out, r"would start etcd as an existing member how=static initial_cluster=cp1=https://127\.0\.80\.1:2380,"
                              r"cp2=https://127\.0\.80\.2:2380,cp3=https://127\.0\.80\.3:2380")
        self.assertEqual(lb.members(), before)
        self.assertTrue(os.path.exists(f"{lb.root('cp3')}/etc/kubernetes/manifests/etcd.yaml"))
        self.assertFalse(glob.glob(f"{lb.root('cp3')}/var/lib/etcd/member.replaced-*"))

        r, out = self.replace("-e", "node=cp3")
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.check_replaced("cp3", before, out)
        manifest = read(f"{lb.root('cp3')}/etc/kubernetes/manifests/etcd.yaml")
        self.assertIn("--initial-cluster-state=existing", manifest)
        self.assertFalse(os.path.exists(f"{lb.root('cp3')}/etc/kubernetes/engine-backup/etcd.yaml.replacing"))
        # Now healthy: a second run has nothing to replace.
        r, out = self.replace("-e", "node=cp3")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("cp3's member answers, healthy", out)

    def test_1b_manifest_gone_too(self):
        """cp2's data lost and its etcd.yaml removed with no copy left: refused until
        manifest_from names a peer; then written from cp1's, its name and addresses cp2's."""
        lb = self.lb
        before = self.lose("cp2", "/var/log/pods/etcd.log", "has already been bootstrapped")
        os.remove(f"{lb.root('cp2')}/etc/kubernetes/manifests/etcd.yaml")
        r, out = self.replace("-e", "node=cp2")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("cp2: no /etc/kubernetes/manifests/etcd.yaml (nor one parked at /etc/kubernetes/engine-backup/etcd.yaml.replacing) "
                      "and no /etc/etcd/etcd.env: put the member's configuration back first, or write it from a peer's: "
                      "-e manifest_from=PEER", out)
        r, out = self.replace("-e", "node=cp2", "-e", "manifest_from=w1")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("cp2: manifest_from=w1 is not in k8s-cp", out)
        key = f"{lb.root('cp2')}/etc/kubernetes/pki/etcd/peer.key"
        os.rename(key, key + ".away")
        try:
            r, out = self.replace("-e", "node=cp2", "-e", "manifest_from=cp1")
        finally:
            os.rename(key + ".away", key)
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("cp2: the certificates its etcd.yaml would name are not there (/etc/kubernetes/pki/etcd/peer.key): its etcd "
                      "certificates are gone too; a node rebuilt so joins again (kubeadm join --control-plane)", out)
        r, out = self.replace("-e", "node=cp2", "-e", "manifest_from=cp1", "--dry-run")
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertRegex(out, r"would write the member's etcd\.yaml from a peer's from=cp1 name=cp2 node=cp2 "
                              r"peer_urls=https://127\.0\.80\.2:2380 to=/etc/kubernetes/engine-backup/etcd\.yaml\.replacing")
        self.assertFalse(os.path.exists(f"{lb.root('cp2')}/etc/kubernetes/engine-backup/etcd.yaml.replacing"))
        self.assertEqual(lb.members(), before)

        r, out = self.replace("-e", "node=cp2", "-e", "manifest_from=cp1")
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.check_replaced("cp2", before, out)
        path = f"{lb.root('cp2')}/etc/kubernetes/manifests/etcd.yaml"
        self.assertEqual(oct(os.stat(path).st_mode & 0o777), "0o600")
        flags = dict(a[2:].split("=", 1) for a in read(path).split() if a.startswith("--") and "=" in a)
        self.assertEqual(flags["name"], "cp2")
        for k in ("advertise-client-urls", "listen-client-urls"):
            self.assertEqual(flags[k], "https://127.0.80.2:2379", k)
        for k in ("initial-advertise-peer-urls", "listen-peer-urls"):
            self.assertEqual(flags[k], "https://127.0.80.2:2380", k)
        self.assertEqual(flags["initial-cluster-state"], "existing")
        self.assertEqual(flags["cert-file"], "/etc/kubernetes/pki/etcd/server.crt")
        # cp1's address only where every member is listed; kubeadm's annotation cp2's too.
        self.assertEqual([k for k, v in flags.items() if "127.0.80.1" in v], ["initial-cluster"])
        self.assertIn("kubeadm.kubernetes.io/etcd.advertise-client-urls: https://127.0.80.2:2379", read(path))
        lab("clear", "cp2", "etcd-data-lost", "--dir", lb.dir)  # repaired: test_2 loses cp2's data again

    def test_1c_a_member_that_forked(self):
        """cp1's data lost under the manifest kubeadm writes at init and at every upgrade
        (--initial-cluster naming itself alone): its etcd starts a new, empty cluster of its own,
        healthy, with a leader and the same member ID. doctor names the fork and the replacement
        (not the empty cluster's forced restore, which would undo the others' writes), and the
        member is replaced without force."""
        lb = self.lb

        def members(via):
            return {m["name"]: m["ID"] for m in lb.etcd(via, "/v3/cluster/member/list")["members"]}

        lb.put("/before-cp1", "kept")
        before = members("cp2")
        lab("fault", "cp1", "etcd-forked", "--dir", lb.dir)
        self.assertEqual(list(members("cp1")), ["cp1"])
        self.assertEqual(members("cp1")["cp1"], before["cp1"])  # the same member ID: only the cluster ID tells
        self.assertNotEqual(lb.etcd("cp1", "/v3/maintenance/status")["header"]["cluster_id"],
                            lb.etcd("cp2", "/v3/maintenance/status")["header"]["cluster_id"])
        self.assertEqual(members("cp2"), before)

        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"cp1\s+etcd-forked\s+its etcd answers as a cluster of its own \(cluster \d+: cp1\), not the one "
                              r"cp2, cp3 answer for \(cluster \d+: 3 members, [^)]*\): its data was lost and its manifest "
                              r"\(--initial-cluster naming itself alone, as kubeadm writes it at init and at every upgrade\) started "
                              r"a new, empty cluster\. The node's API server reads and writes that one\n.*fix: "
                              r"runbooks/etcd-member-replace\.lua -e node=cp1\n")
        self.assertRegex(out, r"cp1 unhealthy \(forked: it answers as another cluster")
        self.assertNotIn("etcd-empty", out)
        self.assertNotIn("etcd-restore.lua", out)

        r, out = self.replace("-e", "node=cp1")
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn("cp1's etcd answers as a cluster of its own: its member is replaced", out)
        after = members("cp2")
        self.assertEqual(set(after), set(before))
        self.assertNotEqual(after["cp1"], before["cp1"])
        self.assertEqual({k: v for k, v in after.items() if k != "cp1"}, {k: v for k, v in before.items() if k != "cp1"})
        self.assertEqual(members("cp1"), after)  # one cluster again
        self.assertEqual(lb.get("cp1", "/before-cp1", serializable=True), "kept")  # from its peers
        self.assertEqual(len(glob.glob(f"{lb.root('cp1')}/var/lib/etcd/member.replaced-*")), 1)
        r = lb.engine("run", DOCTOR)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
        self.assertIn("Healthy: nothing found", r.stdout)
        lab("clear", "cp1", "etcd-forked", "--dir", lb.dir)

    def test_1d_manifests_that_would_fork_made_safe(self):
        """cp1's and cp2's etcd.yaml as kubeadm writes them at init and at upgrades (itself alone,
        state new), their data kept: doctor warns of the fork a data loss would make there, and
        only there. etcd-maintenance mode=manifests lists every member with state existing, one
        restart at a time, the leader last; a second run changes nothing. Then cp2's data lost: it
        does not fork, it fails, and doctor says so and names the replacement."""
        lb = self.lb
        maintenance = os.path.join(ROOT, "runbooks", "etcd-maintenance.lua")
        ids = {m["name"]: m["ID"] for m in lb.etcd("cp3", "/v3/cluster/member/list")["members"]}
        for name in ("cp1", "cp2"):
            lab("fault", name, "etcd-kubeadm-flags", "--dir", lb.dir)
        manifest = lambda name: read(f"{lb.root(name)}/etc/kubernetes/manifests/etcd.yaml")
        self.assertIn("--initial-cluster=cp1=https://", manifest("cp1"))
        self.assertNotIn(",cp2=", manifest("cp1"))

        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertRegex(out, r"cp1\s+etcd-fork-risk\s+/etc/kubernetes/manifests/etcd.yaml: --initial-cluster names this member "
                              r"alone \(cp1=https://[0-9.]+:2380\) with --initial-cluster-state new")
        self.assertRegex(out, r"cp2\s+etcd-fork-risk\s+")
        self.assertNotRegex(out, r"cp3\s+etcd-fork-risk")
        self.assertIn("fix: runbooks/etcd-maintenance.lua -e mode=manifests", out)

        r = lb.engine("run", maintenance, "-e", "mode=manifests", "--dry-run")
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
        self.assertIn("--initial-cluster=cp1=https://", manifest("cp1"))  # a dry run writes nothing
        leader = [n for n, i in ids.items() if i == lb.etcd("cp3", "/v3/maintenance/status")["leader"]]
        self.assertEqual(len(leader), 1, ids)
        # cp3's is the lab's (every member) or, after an earlier replacement, already safe.
        safe = lambda text: "--initial-cluster-state=existing" in text and all(f"{o}=https://" in text for o in ("cp1", "cp2", "cp3"))
        due = [name for name in ("cp1", "cp2", "cp3") if not safe(manifest(name))]
        r = lb.engine("run", maintenance, "-e", "mode=manifests")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertRegex(out, r"cp1\s+1 of 3 members\s+new\s+every member, existing")
        self.assertRegex(out, r"cp3\s+3 of 3 members\s+(new|existing)\s+every member, existing")
        restarts = [re.search(r"node=(cp\d)", line).group(1) for line in out.splitlines()
                    if "etcd restarted with every member in its manifest" in line]
        self.assertEqual(sorted(restarts), due, out[-3000:])  # one restart each, only where due
        if leader[0] in due:
            self.assertEqual(restarts[-1], leader[0])  # the leader restarted last
        for name in ("cp1", "cp2", "cp3"):
            text = manifest(name)
            self.assertIn("--initial-cluster-state=existing", text)
            for other in ("cp1", "cp2", "cp3"):
                self.assertIn(f"{other}=https://", text)
        self.assertEqual({m["name"]: m["ID"] for m in lb.etcd("cp3", "/v3/cluster/member/list")["members"]}, ids)
        r = lb.engine("run", maintenance, "-e", "mode=manifests")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertEqual(out.count("etcd.yaml names every member: already so"), 3, out[-3000:])
        r = lb.engine("run", DOCTOR)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
        self.assertIn("Healthy: nothing found", r.stdout)

        # What the flags are for: cp2's data lost now fails to start instead of forking.
        before = self.lose("cp2", "/var/log/pods/etcd.log", "out of range")
        try:  # a member that answers is in the cluster, not in one of its own
            forked = lb.etcd("cp2", "/v3/maintenance/status")["header"]["cluster_id"] != \
                lb.etcd("cp3", "/v3/maintenance/status")["header"]["cluster_id"]
        except Exception:
            forked = False
        self.assertFalse(forked)
        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertNotIn("etcd-forked", out)
        # It crash-loops ("tocommit ... is out of range"): the cluster a member short, and its fix.
        self.assertRegex(out, r"etcd-unhealthy\s+cp2 unhealthy \(unreachable")
        self.assertIn("runbooks/etcd-member-replace.lua -e node=cp2", out)
        r, out = self.replace("-e", "node=cp2")
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.check_replaced("cp2", before, out)
        lab("clear", "cp2", "etcd-data-lost", "--dir", lb.dir)
        for name in ("cp1", "cp2"):
            lab("clear", name, "etcd-kubeadm-flags", "--dir", lb.dir)

    def test_2_systemd_member(self):
        lb = self.lb
        r = lb.migrate()
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
        before = self.lose("cp2", "/var/log/etcd.log", "panic")
        # doctor: etcd.service down on cp2, its journal saying the data is lost, and the runbook.
        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"cp2\s+etcd-down\s+etcd\.service is \S+ \(enabled\), and no etcd static Pod runs here")
        self.assertRegex(out, r"its journal says its data is lost: tocommit\(\d+\) is out of range \[lastIndex\(0\)\]\. "
                              r"Was the raft log corrupted, truncated, or lost\?")
        self.assertIn("fix: runbooks/etcd-member-replace.lua -e node=cp2", out)
        # The controller's route to the API cut as well (seed 002): the run, its cluster Lease
        # included, goes through a control-plane node's own API server over SSH.
        lab("fault", "cp1", "api-unreachable", "--dir", lb.dir)
        self.addCleanup(lab, "clear", "cp1", "api-unreachable", "--dir", lb.dir)
        r, out = self.replace("-e", "node=cp2")
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn("The API does not answer through this run's kubeconfig; it does through an SSH tunnel to cp1's own "
                      "API server, with the same credentials: the run uses that.", out)
        self.assertIn("lease taken", out)
        self.check_replaced("cp2", before, out)
        env = read(f"{lb.root('cp2')}/etc/etcd/etcd.env")
        self.assertIn("ETCD_INITIAL_CLUSTER_STATE=existing", env)
        self.assertRegex(env, r"ETCD_INITIAL_CLUSTER=cp1=https://127\.0\.80\.1:2380,cp2=https://127\.0\.80\.2:2380,"
                              r"cp3=https://127\.0\.80\.3:2380\n")
        self.assertEqual(lb.unit("cp2"), ("active", "enabled"))
        # etcd-to-systemd's copy of the old manifest stays where it was, and no static Pod came back.
        self.assertFalse(os.path.exists(f"{lb.root('cp2')}/etc/kubernetes/manifests/etcd.yaml"))
        self.assertTrue(os.path.exists(f"{lb.root('cp2')}/etc/kubernetes/engine-backup/etcd.yaml"))
        # The new member's data is the unit's user's (etcd), as the data directory is: not root's.
        self.assertEqual(os.stat(f"{lb.root('cp2')}/var/lib/etcd/member").st_uid, os.stat(f"{lb.root('cp2')}/var/lib/etcd").st_uid)
        self.assertNotEqual(os.stat(f"{lb.root('cp2')}/var/lib/etcd/member").st_uid, 0)
        r = lb.engine("run", DOCTOR)
        self.assertNotIn("etcd-unhealthy", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
