"""runbooks/etcd-restore.lua in the lab: a quorum lost for good (the lab's etcd-data-lost on two of
three members, then on a one-node control plane's only member under systemd), the API answering
"etcdserver: request timed out". A snapshot taken before with etcd-maintenance's mode=snapshot is
restored to every member: refused while etcd has a quorum, nothing changed by a dry run or by a
snapshot that is not there, then the members made again from it (the write after the snapshot
gone, the one before it back on every member), the old data kept aside, the API back; killed in the
middle of the restore command on every node, the resume finishes it from any of its moments."""
import glob
import json
import os
import re
import subprocess
import time
import unittest

from test_etcd_migration import ROOT, Lab, lab, read

RESTORE = os.path.join(ROOT, "runbooks", "etcd-restore.lua")
MAINTENANCE = os.path.join(ROOT, "runbooks", "etcd-maintenance.lua")
DOCTOR = os.path.join(ROOT, "runbooks", "doctor.lua")
RECOVER = os.path.join(ROOT, "runbooks", "recover-static-pods.lua")


def kubectl(lb, *args):
    return subprocess.run(["kubectl", "--kubeconfig", f"{lb.dir}/kubeconfig", *args], capture_output=True, text=True, timeout=60)


class Restore(unittest.TestCase):
    def snapshot(self, lb):
        r = lb.engine("run", MAINTENANCE, "-e", "mode=snapshot", "-e", f"snapshot_dir={lb.dir}/snaps")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        path = re.search(r"etcd snapshot of revision \d+ through cp1: (\S+)", out).group(1)
        self.assertEqual(oct(os.stat(path).st_mode & 0o777), "0o600")
        return path

    def lose(self, lb, names):
        for name in names:
            lab("fault", name, "etcd-data-lost", "--dir", lb.dir)
        end = time.monotonic() + 30
        while time.monotonic() < end and kubectl(lb, "get", "nodes").returncode == 0:
            time.sleep(0.5)
        r = kubectl(lb, "get", "nodes")
        self.assertIn("Error from server: etcdserver: request timed out", r.stderr)

    def restore(self, lb, *extra):
        r = lb.engine("run", RESTORE, *extra)
        return r, r.stdout + r.stderr

    def unchanged(self, lb, names, kind="static"):
        for name in names:
            manifests = f"{lb.root(name)}/etc/kubernetes/manifests"
            self.assertTrue(os.path.exists(f"{manifests}/kube-apiserver.yaml"), name)
            if kind == "static":
                self.assertTrue(os.path.exists(f"{manifests}/etcd.yaml"), name)
            self.assertEqual(glob.glob(f"{lb.root(name)}/var/lib/etcd/restore-*"), [], name)

    def restored(self, lb, names, before):
        after = lb.members()
        self.assertEqual(set(after), set(names))
        for name in names:
            self.assertNotEqual(after[name], before[name], name)  # a new cluster: every member new
            self.assertEqual(lb.get(name, "/before-snapshot", serializable=True), "kept", name)
            self.assertIsNone(lb.get(name, "/after-snapshot", serializable=True), name)
            self.assertEqual(len(glob.glob(f"{lb.root(name)}/var/lib/etcd/member.before-restore-*")), 1, name)
            self.assertEqual(glob.glob(f"{lb.root(name)}/etc/kubernetes/engine-backup/*.restoring"), [], name)
            self.assertTrue(os.path.exists(f"{lb.root(name)}/etc/kubernetes/manifests/kube-apiserver.yaml"), name)
        r = kubectl(lb, "get", "nodes", "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        # Every kubelet restarted once the API was back, and marked so that a later quiet_hours
        # does not count the Ready flap as the node's own.
        for n in json.loads(r.stdout)["items"]:
            self.assertIn("engine.dev/kubelet-restarted", n["metadata"].get("annotations", {}), n["metadata"]["name"])

    def test_two_of_three_members_lost(self):
        lb = Lab(workers=1, subnet="127.0.84")
        self.addCleanup(lb.down)
        names = [n["name"] for n in lb.cps]
        lb.put("/before-snapshot", "kept")
        snap = self.snapshot(lb)
        lb.put("/after-snapshot", "lost")
        before = lb.members()

        # A quorum stands: a restore would lose every write since the snapshot. Refused, nothing changed.
        r, out = self.restore(lb, "-e", f"snapshot={snap}")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("etcd has a quorum (3 of 3 members answer with a leader): a restore would lose every write since the snapshot", out)
        self.assertIn("runbooks/etcd-member-replace.lua", out)
        self.unchanged(lb, names)
        self.assertEqual(lb.members(), before)

        self.lose(lb, ["cp2", "cp3"])
        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"etcd-quorum-lost\s+\d of 3 members healthy, a quorum is 2")
        self.assertIn("restore every member from a snapshot: runbooks/etcd-restore.lua -e snapshot=PATH", out)
        self.assertNotIn("etcd-member-replace.lua -e node=", out)  # a replacement needs the quorum that is gone
        # Each node that lost its data says so on its own row, from its data directory.
        for name, other in (("cp2", "cp1"), ("cp3", "cp1")):
            self.assertRegex(out, name + r"\s+etcd-data-lost\s+/etc/kubernetes/manifests/etcd\.yaml starts a member whose data "
                                         r"is gone \(no WAL in /var/lib/etcd/member/wal\): it exits at each start \(\"has already "
                                         r"been bootstrapped\"\); 1 of the other 2 members runs with its data \(" + other + r"\), fewer "
                                         r"than a quorum of 2, so nothing can replace it: restore every member from a snapshot\n.*fix: "
                                         r"runbooks/etcd-restore\.lua -e snapshot=FILE\n")
        # cp3's etcd.yaml moved out as well: cp2 crash-loops on its lost data, so only cp1 kept its
        # data, and the manifest's copy goes with the restore, not a replacement.
        manifest, copy = f"{lb.root('cp3')}/etc/kubernetes/manifests/etcd.yaml", f"{lb.root('cp3')}/etc/kubernetes/etcd.yaml"
        os.rename(manifest, copy)
        try:
            r = lb.engine("run", DOCTOR)
        finally:
            os.rename(copy, manifest)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"cp3\s+manifest-missing\s+/etc/kubernetes/manifests/etcd\.yaml is gone, and so is its member's data "
                              r"\(no WAL in /var/lib/etcd/member/wal; its kube-apiserver's etcd is on the node\): 1 of the other 2 "
                              r"members runs with its data \(cp1\), fewer than a quorum of 2, so nothing can replace it: restore "
                              r"every member from a snapshot, with the manifest's copy \(found /etc/kubernetes/etcd\.yaml\)\n.*fix: runbooks/etcd-restore"
                              r"\.lua -e snapshot=FILE -e manifest=/etc/kubernetes/etcd\.yaml")
        self.assertNotIn("etcd-member-replace.lua -e node=", out)

        # A control plane without cp3: the restored cluster would not have it, and cp3 would keep
        # the old data. Refused, naming it (from cp1's member list: no quorum needed), unless cp3
        # is gone for good.
        r, out = self.restore(lb, "-e", f"snapshot={snap}", "--dry-run", "-e", "control_plane=k8s-cp:!cp3")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("the old cluster also has cp3 (https://127.0.84.3:2380), not in k8s-cp:!cp3: a restore would leave it out, "
                      "with the old data. Add its node to the group, or -e drop_members=true when it is gone for good", out)
        # --limit hiding cp3 is refused as such, whatever the member list says.
        r, out = self.restore(lb, "-e", f"snapshot={snap}", "--dry-run", "--limit", "!cp3")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("--limit hides cp3 of k8s-cp: a restore makes every member anew from the snapshot, and a member left out "
                      "would go on with the old data. Run it without --limit, or -e drop_members=true when its node is gone for good", out)
        self.assertNotIn("the old cluster also has", out)
        r, out = self.restore(lb, "-e", f"snapshot={snap}", "--dry-run", "--limit", "!cp3", "-e", "drop_members=true")
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn("members of the old cluster left out of the restored one (drop_members) members=\"cp3 (https://127.0.84.3:2380)\"", out)
        self.assertIn("--initial-cluster 'cp1=https://127.0.84.1:2380,cp2=https://127.0.84.2:2380'", out)

        r, out = self.restore(lb, "-e", f"snapshot={snap}", "--dry-run")
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertNotIn("drop_members", out)
        self.assertIn("--initial-cluster 'cp1=https://127.0.84.1:2380,cp2=https://127.0.84.2:2380,cp3=https://127.0.84.3:2380'", out)
        self.assertIn("--name 'cp2'", out)
        self.unchanged(lb, names)

        # Killed in the middle of the restore command itself, on every node: etcdctl (a wrapper in
        # each node's /usr/local/bin, ahead of /usr/bin under sudo) has written the restored data
        # and holds there. Every API server and etcd parked, nothing moved yet.
        held = {name: f"{lb.root(name)}/var/lib/engine-lab/restore-held" for name in names}
        for name in names:
            with open(f"{lb.root(name)}/usr/local/bin/etcdctl", "w") as f:
                f.write("#!/bin/sh\n/usr/bin/etcdctl \"$@\" || exit $?\n"
                        "case \"$*\" in *'snapshot restore'*) touch /var/lib/engine-lab/restore-held; exec sleep 600.5;; esac\n")
            os.chmod(f"{lb.root(name)}/usr/local/bin/etcdctl", 0o755)
        run_id = lb.run_killed_when(RESTORE, lambda _: all(os.path.exists(f) for f in held.values()), "-e", f"snapshot={snap}",
                                    timeout=120)
        self.assertIsNotNone(run_id, "the restore command never ran on every node")
        subprocess.run(["pkill", "-f", "^sleep 600.5$"], check=True)  # the commands die with the run (set -e)
        end = time.monotonic() + 30
        while time.monotonic() < end and subprocess.run(["pgrep", "-f", "^sleep 600.5$"]).returncode == 0:
            time.sleep(0.2)
        for name in names:
            with open(f"{lb.root(name)}/usr/local/bin/etcdctl", "w") as f:  # the path the journaled run names
                f.write("#!/bin/sh\nexec /usr/bin/etcdctl \"$@\"\n")
            self.assertTrue(glob.glob(f"{lb.root(name)}/etc/kubernetes/engine-backup/kube-apiserver.yaml.restoring"), name)
        # The two later moments a kill can leave, made by hand: on cp2 the old member moved aside and
        # the restored one not yet in; on cp3 the restored one in, its marker not yet written.
        data = {name: f"{lb.root(name)}/var/lib/etcd" for name in names}
        work = {name: glob.glob(f"{data[name]}/restore-*") for name in names}
        for name in names:
            self.assertEqual(len(work[name]), 1, name)
            self.assertTrue(os.path.isdir(f"{work[name][0]}/data/member"), name)
        aside = {name: f"{data[name]}/member.before-restore-" + work[name][0].rsplit("restore-", 1)[1] for name in names}
        os.rename(f"{data['cp2']}/member", aside["cp2"])
        os.rename(f"{data['cp3']}/member", aside["cp3"])
        os.rename(f"{work['cp3'][0]}/data/member", f"{data['cp3']}/member")
        r = lb.engine("resume", run_id)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertRegex(out, r"etcd restored from \S+ \(revision \d+\) as a new cluster of 3 members; the API answers again")
        self.assertIn("static pod restarted", out)
        self.restored(lb, names, before)
        # What was kept aside is each member's old data, not a restored copy: cp1's WAL, and the
        # snap directory alone that cp2's and cp3's lost data left.
        self.assertTrue(glob.glob(f"{aside['cp1']}/wal/*.wal"))
        for name in ("cp2", "cp3"):
            self.assertEqual(glob.glob(f"{aside[name]}/wal/*.wal"), [], name)
        r = lb.engine("run", DOCTOR)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
        # Again: etcd has its quorum, nothing to restore.
        r, out = self.restore(lb, "-e", f"snapshot={snap}")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("etcd has a quorum (3 of 3 members answer with a leader)", out)

    def test_the_only_member_under_systemd(self):
        lb = Lab(workers=1, subnet="127.0.85", control_planes=1)
        self.addCleanup(lb.down)
        r = lb.migrate()
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
        lb.put("/before-snapshot", "kept")
        snap = self.snapshot(lb)
        lb.put("/after-snapshot", "lost")
        before = lb.members()
        self.lose(lb, ["cp1"])
        # doctor: the only member's data is lost; nothing can replace it, a snapshot restores it.
        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"cp1\s+etcd-down\s+its data is lost: /var/lib/etcd/member holds no member's data \(no WAL\) \(the "
                              r"only member: nothing can replace it; restore it from a snapshot\)\n.*fix: runbooks/etcd-restore\.lua "
                              r"-e snapshot=FILE")
        self.assertNotIn("etcd-member-replace.lua -e node=", out)
        # recover-static-pods has nothing to write back, and says why at once rather than waiting
        # `timeout` for static pods an API without etcd cannot list.
        r = lb.engine("run", RECOVER)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("the API servers answer, but etcd gives them nothing (etcdserver: request timed out), and no control-plane "
                      "node's etcd.yaml is gone: etcd has lost its quorum some other way.", out)

        # A snapshot that is not there, or cut short: said, and nothing stopped.
        r, out = self.restore(lb, "-e", f"snapshot={lb.dir}/snaps/nothing.db")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn(f"precheck failed, nothing was changed:\n  the snapshot: {lb.dir}/snaps/nothing.db: No such file or directory", out)
        with open(snap, "rb") as f, open(f"{lb.dir}/snaps/cut.db", "wb") as g:
            g.write(f.read()[:-100])
        r, out = self.restore(lb, "-e", f"snapshot={lb.dir}/snaps/cut.db")
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn(f"the snapshot: {lb.dir}/snaps/cut.db: its sha256 trailer does not match its data", out)
        self.unchanged(lb, ["cp1"], kind="systemd")

        # The controller's route to the API cut as well (seed 002): no API server answered at the
        # start, so the route is chosen once cp1's is back, through its own :6443.
        lab("fault", "cp1", "api-unreachable", "--dir", lb.dir)
        r, out = self.restore(lb, "-e", f"snapshot={snap}")
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn("it does through an SSH tunnel to cp1's own API server", out)
        lab("clear", "cp1", "api-unreachable", "--dir", lb.dir)
        self.restored(lb, ["cp1"], before)
        self.assertEqual(lb.unit("cp1"), ("active", "enabled"))
        self.assertFalse(lb.manifest("cp1"))  # no static Pod came back beside the unit
        member = f"{lb.root('cp1')}/var/lib/etcd/member"
        data = f"{lb.root('cp1')}/var/lib/etcd"
        self.assertEqual((os.stat(member).st_uid, os.stat(member).st_gid), (os.stat(data).st_uid, os.stat(data).st_gid))
        self.assertNotEqual(os.stat(member).st_uid, 0)  # etcd's own user, not root's
        self.assertEqual(read(f"{lb.root('cp1')}/var/lib/etcd/{os.path.basename(glob.glob(data + '/restore-*')[0])}/restored"), "")


if __name__ == "__main__":
    unittest.main()
