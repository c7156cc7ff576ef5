"""A kubeadm manifest gone from /etc/kubernetes/manifests (the lab's manifests-moved: etcd.yaml and
kube-scheduler.yaml moved up to /etc/kubernetes by hand and never put back). doctor names each one on its node,
not as an etcd migration stopped midway; the upgrade's preflight and cert-renew's precheck refuse
with the runbook that fixes it; recover-static-pods plans kubeadm's phases in a dry run, refuses
when the member's data is gone or the node is mid-upgrade, then writes both back with kubeadm at
the versions that ran (etcd at its peers' image, not kubeadm's pairing), and the member comes back
with its ID and the writes it missed. On a one-node control plane the same fault takes the API down
(its etcd was the only member): the ClusterConfiguration comes from the node's kubeadm
configuration file instead, and the API is back once etcd is."""
import glob
import os
import re
import shutil
import subprocess
import time
import unittest

import yaml

from test_etcd_migration import ROOT, Lab, lab, read

DOCTOR = os.path.join(ROOT, "runbooks", "doctor.lua")
RECOVER = os.path.join(ROOT, "runbooks", "recover-static-pods.lua")
RESTORE = os.path.join(ROOT, "runbooks", "etcd-restore.lua")
MAINTENANCE = os.path.join(ROOT, "runbooks", "etcd-maintenance.lua")
UPGRADE = os.path.join(ROOT, "runbooks", "k8s-upgrade.lua")
CONFIG = "/etc/kubernetes/tmp/engine-restore.yaml"
PEER_TAG = "3.5.22-0"  # a patch the operators put on by hand: kubeadm's v1.33 pairing is 3.5.21-0


class Missing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lb = Lab(workers=1, subnet="127.0.78")

    @classmethod
    def tearDownClass(cls):
        cls.lb.down()

    def manifests(self, name):
        return f"{self.lb.root(name)}/etc/kubernetes/manifests"

    def image(self, name, component):
        return re.search(r"image: (\S+)", read(f"{self.manifests(name)}/{component}.yaml")).group(1)

    def healthy(self, name, deadline=60):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                if self.lb.etcd(name, "/v3/maintenance/status").get("leader"):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.fail(f"{name}'s etcd member did not answer with a leader within {deadline}s")


    def test_found_refused_then_written_back(self):
        lb = self.lb
        # The operators patched etcd by hand on cp1 and cp2 (one member at a time).
        for name in ("cp1", "cp2"):
            path = f"{self.manifests(name)}/etcd.yaml"
            text = read(path)
            with open(path, "w") as f:
                f.write(re.sub(r"(image: registry\.k8s\.io/etcd:)\S+", r"\g<1>" + PEER_TAG, text))
            time.sleep(1)
            self.healthy(name)
        ids = lb.members()
        lab("fault", "cp3", "manifests-moved", "--dir", lb.dir)
        for f in ("etcd.yaml", "kube-scheduler.yaml"):
            self.assertFalse(os.path.exists(f"{self.manifests('cp3')}/{f}"))
        lb.put("/written-while-cp3-was-down", "kept")

        # doctor: each gone manifest on cp3, with the runbook; no migration guessed at.
        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"cp3\s+manifest-missing\s+/etc/kubernetes/manifests/kube-scheduler\.yaml is gone: the kubelet "
                              r"runs no kube-scheduler here")
        self.assertRegex(out, r"manifest-missing\s+/etc/kubernetes/manifests/etcd\.yaml is gone, and etcd-to-systemd never "
                              r"ran here: the kubelet runs no etcd member here")
        self.assertIn("fix: runbooks/recover-static-pods.lua", out)
        for wrong in ("etcd-split", "etcd-down", "stopped midway"):
            self.assertNotIn(wrong, out)

        # The upgrade's preflight refuses, naming both and the runbook.
        r = lb.engine("run", UPGRADE, "-e", "version=1.34.3", "-e", "kind=minor")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("cp3: /etc/kubernetes/manifests/kube-scheduler.yaml is gone: the kubelet runs no kube-scheduler here "
                      "(runbooks/recover-static-pods.lua writes it again)", out)
        self.assertIn("no etcd runs on cp3: /etc/kubernetes/manifests/etcd.yaml is gone, and etcd-to-systemd never ran there; "
                      "runbooks/recover-static-pods.lua writes it again (kubeadm init phase etcd local)", out)

        # cert-renew would renew cp3 and then fail restarting its scheduler and waiting for its
        # member: refused in its precheck, nothing renewed anywhere.
        serials = read(f"{lb.root('cp1')}/etc/kubernetes/pki/apiserver.crt")
        r = lb.engine("run", os.path.join(ROOT, "runbooks", "cert-renew.lua"))
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("precheck failed, nothing was changed:\n  cp3: /etc/kubernetes/manifests/kube-scheduler.yaml is gone: "
                      "this run restarts kube-scheduler after renewing (runbooks/recover-static-pods.lua writes it again)\n"
                      "  no etcd runs on cp3: /etc/kubernetes/manifests/etcd.yaml is gone", out)
        self.assertEqual(read(f"{lb.root('cp1')}/etc/kubernetes/pki/apiserver.crt"), serials)

        # restore=false: said, nothing written.
        r = lb.engine("run", RECOVER, "-e", "restore=false")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("cp3: etcd, kube-scheduler gone from /etc/kubernetes/manifests (-e restore=true writes them again)", out)

        # The dry run: kubeadm's phases, the versions that ran, and nothing written.
        r = lb.engine("run", RECOVER, "--dry-run")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn(f"commands=kubeadm init phase etcd local --config {CONFIG}; kubeadm init phase control-plane scheduler "
                      f"--config {CONFIG}", out)
        self.assertIn(f"etcd_image_tag={PEER_TAG}", out)
        self.assertIn("version=v1.33.1", out)
        self.assertFalse(os.path.exists(f"{self.manifests('cp3')}/etcd.yaml"))
        self.assertFalse(os.path.exists(f"{lb.root('cp3')}{CONFIG}"))

        # The member's data gone: an etcd.yaml would start a new, empty member. Refused, nothing
        # written. What a lost member leaves once it has tried to start again: member/snap, no WAL.
        data = f"{lb.root('cp3')}/var/lib/etcd"
        os.rename(f"{data}/member", f"{data}/member.away")
        try:
            os.makedirs(f"{data}/member/snap")
            open(f"{data}/member/snap/db", "w").close()
            r = lb.engine("run", RECOVER)
            d = lb.engine("run", DOCTOR)
            # --limit cp3 hides cp1 and cp2: cp3 is no "only member" to be restored from a snapshot.
            r3 = lb.engine("run", RECOVER, "--limit", "cp3")
            d3 = lb.engine("run", DOCTOR, "--limit", "cp3")
            # No copy left either: etcd-member-replace writes it from a peer's; both name the peer.
            copy = f"{lb.root('cp3')}/etc/kubernetes/etcd.yaml"
            os.rename(copy, copy + ".away")
            try:
                r2 = lb.engine("run", RECOVER)
                d2 = lb.engine("run", DOCTOR)
            finally:
                os.rename(copy + ".away", copy)
        finally:
            shutil.rmtree(f"{data}/member")
            os.rename(f"{data}/member.away", f"{data}/member")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("cp3: /var/lib/etcd/member holds no member's data (no WAL): an etcd.yaml written now would start a new, "
                      "empty etcd, not this node's member. Put its manifest back by hand (found /etc/kubernetes/etcd.yaml), "
                      "then replace the member (runbooks/etcd-member-replace.lua -e node=cp3)", out)
        # doctor says the same, and names the replacement rather than this runbook.
        self.assertEqual(d.returncode, 1, (d.stdout + d.stderr)[-3000:])
        self.assertRegex(d.stdout + d.stderr, r"cp3\s+manifest-missing\s+/etc/kubernetes/manifests/etcd\.yaml is gone, and so is its "
                         r"member's data \(no WAL in /var/lib/etcd/member/wal; kubeadm-config says etcd\.local\): put the manifest "
                         r"back by hand \(found /etc/kubernetes/etcd\.yaml\), then replace the member\n.*"
                         r"fix: runbooks/etcd-member-replace\.lua -e node=cp3")
        out = r3.stdout + r3.stderr
        self.assertEqual(r3.returncode, 1, out[-3000:])
        self.assertIn("empty etcd, not this node's member. --limit hides cp1, cp2, so whether the other members hold a quorum "
                      "(the member replaced) or not (every member restored from a snapshot) is not known here: runbooks/doctor.lua "
                      "without --limit says which", out)
        self.assertNotIn("etcd-restore", out)
        out = d3.stdout + d3.stderr
        self.assertEqual(d3.returncode, 1, out[-3000:])
        self.assertRegex(out, r"cp3\s+manifest-missing\s+/etc/kubernetes/manifests/etcd\.yaml is gone, and so is its member's data "
                         r"\(no WAL in /var/lib/etcd/member/wal; kubeadm-config says etcd\.local\): --limit hides cp1, cp2, so whether "
                         r"the other members hold a quorum \(the member replaced\) or not \(every member restored from a snapshot\) is "
                         r"not known here: run doctor without --limit\n\s+see: [^\n]*wal\n")  # and no fix
        self.assertRegex(out, r"cluster\s+limit-hides-members\s+--limit hides cp1, cp2 of k8s-cp: etcd is judged through cp3 alone")
        self.assertNotIn("etcd-restore", out)
        out = r2.stdout + r2.stderr
        self.assertEqual(r2.returncode, 1, out[-3000:])
        self.assertIn("cp3: /var/lib/etcd/member holds no member's data (no WAL): an etcd.yaml written now would start a new, "
                      "empty etcd, not this node's member. Replace the member, its manifest written from a peer's "
                      "(runbooks/etcd-member-replace.lua -e node=cp3 -e manifest_from=cp1)", out)
        self.assertEqual(d2.returncode, 1, (d2.stdout + d2.stderr)[-3000:])
        self.assertRegex(d2.stdout + d2.stderr, r"cp3\s+manifest-missing\s+/etc/kubernetes/manifests/etcd\.yaml is gone, and so is "
                         r"its member's data \(no WAL in /var/lib/etcd/member/wal; kubeadm-config says etcd\.local\): no copy found "
                         r"under /etc/kubernetes: replace the member, its manifest written from cp1's\n.*"
                         r"fix: runbooks/etcd-member-replace\.lua -e node=cp3 -e manifest_from=cp1")
        for f in ("etcd.yaml", "kube-scheduler.yaml"):
            self.assertFalse(os.path.exists(f"{self.manifests('cp3')}/{f}"), f)

        # An upgrade stopped midway on cp3 (its controller-manager already at v1.34.3): which version
        # to write is not this runbook's guess. Refused, nothing written.
        cm = f"{self.manifests('cp3')}/kube-controller-manager.yaml"
        text = read(cm)
        with open(cm, "w") as f:
            f.write(text.replace("kube-controller-manager:v1.33.1", "kube-controller-manager:v1.34.3"))
        try:
            r = lb.engine("run", RECOVER)
        finally:
            with open(cm, "w") as f:
                f.write(text)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("cp3: its control-plane manifests name v1.33.1 (kube-apiserver) and v1.34.3 (kube-controller-manager): "
                      "an upgrade stopped midway; finish it (runbooks/k8s-upgrade.lua, engine resume its run) before writing "
                      "the missing ones", out)
        for f in ("etcd.yaml", "kube-scheduler.yaml"):
            self.assertFalse(os.path.exists(f"{self.manifests('cp3')}/{f}"), f)

        # The real run writes both with kubeadm; the member is the same, with what it missed.
        r = lb.engine("run", RECOVER)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn("manifests written back", out)
        self.assertEqual(self.image("cp3", "etcd"), f"registry.k8s.io/etcd:{PEER_TAG}")
        self.assertEqual(self.image("cp3", "kube-scheduler"), "registry.k8s.io/kube-scheduler:v1.33.1")
        self.assertEqual(oct(os.stat(f"{lb.root('cp3')}{CONFIG}").st_mode & 0o777), "0o600")
        self.healthy("cp3")
        self.assertEqual(lb.members(), ids)
        self.assertEqual(self.lb.get("cp3", "/written-while-cp3-was-down", serializable=True), "kept")

        r = lb.engine("run", DOCTOR)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
        # Again: nothing gone, nothing written.
        r = lb.engine("run", RECOVER)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertNotIn("manifests written back", out)
        self.assertNotIn("kubeadm manifests gone", out)


class OneControlPlane(unittest.TestCase):
    """A one-node control plane (a small or edge cluster) whose etcd.yaml and kube-scheduler.yaml
    were moved out: its only etcd member stopped, so the API server answers every read with
    "etcdserver: request timed out" and kube-system/kubeadm-config cannot be read."""

    @classmethod
    def setUpClass(cls):
        cls.lb = Lab(workers=1, subnet="127.0.81", control_planes=1)

    @classmethod
    def tearDownClass(cls):
        cls.lb.down()

    def kubectl(self, *args):
        return subprocess.run(["kubectl", "--kubeconfig", f"{self.lb.dir}/kubeconfig", *args], capture_output=True,
                              text=True, timeout=60)

    def test_api_down_written_from_the_nodes_kubeadm_config(self):
        lb = self.lb
        manifests = f"{lb.root('cp1')}/etc/kubernetes/manifests"
        cc = lb.cluster_configuration()
        lb.put("/written-before", "kept")
        lab("fault", "cp1", "manifests-moved", "--dir", lb.dir)
        end = time.monotonic() + 30
        while time.monotonic() < end and self.kubectl("get", "nodes").returncode == 0:
            time.sleep(0.5)
        r = self.kubectl("get", "nodes")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("Error from server: etcdserver: request timed out", r.stderr)

        # doctor: the API answers without its etcd, and etcd.yaml is named from the data left on the node.
        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("listing nodes: etcdserver: request timed out: the API servers answer, but etcd does not give them the objects", out)
        self.assertRegex(out, r"cp1\s+manifest-missing\s+/etc/kubernetes/manifests/etcd\.yaml is gone, and etcd-to-systemd never ran "
                              r"here: the kubelet runs no etcd member here \(kube-system/kubeadm-config unread; /var/lib/etcd/member "
                              r"holds a member's data\)")
        self.assertRegex(out, r"cp1\s+manifest-missing\s+/etc/kubernetes/manifests/kube-scheduler\.yaml is gone")

        # No kubeadm configuration on the node: refused, naming the way on and the moved copies; nothing written.
        r = lb.engine("run", RECOVER)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("cp1: kube-system/kubeadm-config: etcdserver: request timed out; and /etc/kubernetes/kubeadm-config.yaml is "
                      "not there (kubeadm writes a manifest from a ClusterConfiguration: give the file kubeadm init used with "
                      "-e kubeadm_config=PATH, or bring the API back first; or move the manifest back by hand, after checking it "
                      "is the one that ran: found /etc/kubernetes/etcd.yaml, /etc/kubernetes/kube-scheduler.yaml)", out)
        for f in ("etcd.yaml", "kube-scheduler.yaml"):
            self.assertFalse(os.path.exists(f"{manifests}/{f}"), f)

        # The file kubeadm init used, kept where kubespray keeps it: kubeadm v1beta3 (extraArgs a map),
        # with the init node's InitConfiguration and a KubeletConfiguration beside it.
        old = dict(cc, apiVersion="kubeadm.k8s.io/v1beta3")
        old["apiServer"] = dict(cc.get("apiServer") or {}, extraArgs={a["name"]: a["value"] for a in
                                                                    (cc.get("apiServer") or {}).get("extraArgs") or []})
        path = "/etc/kubernetes/init/kubeadm.yaml"
        os.makedirs(os.path.dirname(f"{lb.root('cp1')}{path}"))
        with open(f"{lb.root('cp1')}{path}", "w") as f:
            f.write("---\n" + yaml.safe_dump({"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "InitConfiguration",
                                              "localAPIEndpoint": {"advertiseAddress": "192.0.2.10"}}) +
                    "---\n" + yaml.safe_dump(old) + "---\n" +
                    yaml.safe_dump({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"}))
        r = lb.engine("run", RECOVER, "-e", f"kubeadm_config={path}", "--dry-run")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn(f"from=cp1:{path}", out)
        self.assertIn("advertise=127.0.81.1", out)
        self.assertFalse(os.path.exists(f"{manifests}/etcd.yaml"))

        r = lb.engine("run", RECOVER, "-e", f"kubeadm_config={path}")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn("kube-system/kubeadm-config cannot be read; each node's kubeadm configuration file is read instead", out)
        self.assertIn("manifests written back", out)
        docs = list(yaml.safe_load_all(read(f"{lb.root('cp1')}{CONFIG}")))
        self.assertEqual({d["kind"]: d["apiVersion"] for d in docs},
                         {"InitConfiguration": "kubeadm.k8s.io/v1beta3", "ClusterConfiguration": "kubeadm.k8s.io/v1beta3"})
        self.assertEqual(next(d for d in docs if d["kind"] == "InitConfiguration")["localAPIEndpoint"]["advertiseAddress"], "127.0.81.1")
        self.assertIn("--advertise-client-urls=https://127.0.81.1:2379", read(f"{manifests}/etcd.yaml"))
        self.assertIn("image: registry.k8s.io/kube-scheduler:v1.33.1", read(f"{manifests}/kube-scheduler.yaml"))
        # The API is back with its etcd, and the member is the one that ran.
        r = self.kubectl("get", "nodes")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(lb.get("cp1", "/written-before"), "kept")
        r = lb.engine("run", DOCTOR)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])

        # Then the only kube-apiserver.yaml moved out: nothing serves the API, and the load balancer
        # in front of it has no backend (kubectl: EOF, or a reset). Written back from the same file, with the
        # address the node's etcd advertises; the one that ran is what comes back.
        ran = read(f"{manifests}/kube-apiserver.yaml")
        os.rename(f"{manifests}/kube-apiserver.yaml", f"{lb.root('cp1')}/etc/kubernetes/kube-apiserver.yaml")
        end = time.monotonic() + 30
        while time.monotonic() < end and self.kubectl("get", "nodes", "--request-timeout=5s").returncode == 0:
            time.sleep(0.5)
        r = self.kubectl("get", "nodes")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stderr, r"EOF|connection reset by peer")  # accepted and closed, as HAProxy without a server
        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"cluster\s+api-unreachable\s+the API does not answer")
        self.assertRegex(out, r"cp1\s+manifest-missing\s+/etc/kubernetes/manifests/kube-apiserver\.yaml is gone")
        r = lb.engine("run", RECOVER, "-e", f"kubeadm_config={path}")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertRegex(out, r"manifests written back advertise=127\.0\.81\.1 components=kube-apiserver from=cp1:" + re.escape(path))
        # The same flags; v1beta3's extraArgs is a map, so kubeadm writes them sorted.
        self.assertEqual(sorted(read(f"{manifests}/kube-apiserver.yaml").splitlines()), sorted(ran.splitlines()))
        r = self.kubectl("get", "nodes")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_data_gone_too_restored_from_a_snapshot(self):
        """The only member's etcd.yaml moved out and its data lost: no manifest can be written (it
        would start an empty cluster), and no member is left to replace it. doctor and
        recover-static-pods name etcd-restore with the copy; the restore puts it in place."""
        lb = self.lb
        manifests, copy = f"{lb.root('cp1')}/etc/kubernetes/manifests", "/etc/kubernetes/etcd.yaml"
        lb.put("/in-the-snapshot", "kept")
        r = lb.engine("run", MAINTENANCE, "-e", "mode=snapshot", "-e", f"snapshot_dir={lb.dir}/snaps")
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
        snapshot = glob.glob(f"{lb.dir}/snaps/etcd-*.db")[0]
        os.replace(f"{manifests}/etcd.yaml", f"{lb.root('cp1')}{copy}")
        end = time.monotonic() + 30
        while time.monotonic() < end and self.kubectl("get", "nodes", "--request-timeout=5s").returncode == 0:
            time.sleep(0.5)
        self.assertNotEqual(self.kubectl("get", "nodes", "--request-timeout=5s").returncode, 0)
        os.rename(f"{lb.root('cp1')}/var/lib/etcd/member", f"{lb.root('cp1')}/var/lib/etcd/member.lost")

        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"cp1\s+manifest-missing\s+/etc/kubernetes/manifests/etcd\.yaml is gone, and so is its member's data "
                              r"\(no WAL in /var/lib/etcd/member/wal; its kube-apiserver's etcd is on the node\): it is the only member, "
                              r"so nothing can replace it: restore every member from a snapshot, with the manifest's copy \(found "
                              r"/etc/kubernetes/etcd\.yaml\)\n.*fix: runbooks/etcd-restore\.lua -e snapshot=FILE "
                              r"-e manifest=/etc/kubernetes/etcd\.yaml")
        # At once, not after waiting for static pods an API without etcd cannot list.
        r = lb.engine("run", RECOVER)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("cp1: /var/lib/etcd/member holds no member's data (no WAL): an etcd.yaml written now would start a new, "
                      "empty etcd, not this node's member. It is the only member, so nothing can replace it. Restore every member "
                      "from a snapshot, with the manifest's copy (found /etc/kubernetes/etcd.yaml): runbooks/etcd-restore.lua "
                      "-e snapshot=FILE -e manifest=/etc/kubernetes/etcd.yaml", out)
        self.assertFalse(os.path.exists(f"{manifests}/etcd.yaml"))

        r = lb.engine("run", RESTORE, "-e", f"snapshot={snapshot}")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("cp1: no /etc/kubernetes/manifests/etcd.yaml (nor one parked at /etc/kubernetes/engine-backup/etcd.yaml.restoring) "
                      "and no /etc/etcd/etcd.env: put the member's configuration back first, or name its copy with -e manifest=PATH "
                      "(found /etc/kubernetes/etcd.yaml)", out)
        r = lb.engine("run", RESTORE, "-e", f"snapshot={snapshot}", "-e", f"manifest={copy}")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn("etcd restored from", out)
        self.assertEqual(read(f"{manifests}/etcd.yaml"), read(f"{lb.root('cp1')}{copy}"))  # the copy, and it stays
        self.assertEqual(oct(os.stat(f"{manifests}/etcd.yaml").st_mode & 0o777), "0o600")
        r = self.kubectl("get", "nodes")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(lb.get("cp1", "/in-the-snapshot"), "kept")

    def test_the_only_static_member_starts_empty(self):
        """The only member's data lost under its manifest: kubeadm's --initial-cluster-state=new
        with itself alone starts a new, empty cluster, which answers. The restore is refused as
        for any cluster with a quorum, says it is this (no kubeadm-config in it), and with force
        brings the data back."""
        lb = self.lb
        lb.put("/before-the-loss", "kept")
        r = lb.engine("run", MAINTENANCE, "-e", "mode=snapshot", "-e", f"snapshot_dir={lb.dir}/snaps-empty")
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
        snapshot = glob.glob(f"{lb.dir}/snaps-empty/etcd-*.db")[0]
        lab("fault", "cp1", "etcd-data-lost", "--dir", lb.dir)
        self.addCleanup(lab, "clear", "cp1", "etcd-data-lost", "--dir", lb.dir)
        def value():
            try:
                return lb.get("cp1", "/before-the-loss")
            except Exception as e:  # its etcd starting again
                return f"unanswered: {e}"
        end = time.monotonic() + 30
        while time.monotonic() < end and value() is not None:
            time.sleep(0.5)
        self.assertIsNone(value())  # a new cluster, empty
        # doctor: etcd answers, but kubeadm-config (which only kubeadm writes) is not in it.
        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"etcd-empty\s+etcd answers but holds no /registry/configmaps/kube-system/kubeadm-config: the "
                              r"cluster's objects are not in it \(a member that lost its data and started a new, empty cluster; "
                              r"or the API servers use another --etcd-prefix than /registry: -e etcd_prefix=\)\n.*fix: restore from "
                              r"a snapshot taken before the loss: runbooks/etcd-restore\.lua -e snapshot=FILE -e force=true")
        r = lb.engine("run", RESTORE, "-e", f"snapshot={snapshot}")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("etcd has a quorum (1 of 1 members answer with a leader): a restore would lose every write since the snapshot. "
                      "It holds no /registry/configmaps/kube-system/kubeadm-config, so not the cluster's objects: a member that lost "
                      "its data started a new, empty cluster (or the API servers use another --etcd-prefix: -e etcd_prefix=). "
                      "-e force=true restores the snapshot over it", out)
        r = lb.engine("run", RESTORE, "-e", f"snapshot={snapshot}", "-e", "force=true")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertEqual(lb.get("cp1", "/before-the-loss"), "kept")
        r = lb.engine("run", DOCTOR)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
        self.assertNotIn("etcd-empty", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
