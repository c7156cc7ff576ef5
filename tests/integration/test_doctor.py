"""runbooks/doctor.lua in the lab: a healthy cluster has no finding, every lab fault that can be
seen at rest is found on the right node with its evidence and nothing else is, and a run changes
no file on any node."""
import hashlib
import json
import os
import ssl
import subprocess
import sys
import time
import unittest
import urllib.request

from labtest import ROOT, LabClass, lab  # noqa: E402
DOCTOR = os.path.join(ROOT, "runbooks", "doctor.lua")
SUBNET = "127.0.74"

# What each fault is found as: (fault, node, extra lab args, {(finding name, node)} expected, a
# piece of the evidence). Faults that act only during an operation (apiserver-phase-timeout, the
# etcd unit faults, etcd-old-holds-datadir) are not visible at rest and are not listed.
CASES = [
    ("stale-manifest-bak", "cp2", [], {("stray-manifest", "cp2")}, "kube-apiserver.yaml.bak"),
    ("scheduler-rbac-missing", "cp1", [], {("rbac-missing", None)}, "system:kube-scheduler is refused"),
    ("controller-manager-rbac-missing", "cp1", [], {("rbac-missing", None)}, "system:kube-controller-manager is refused"),
    ("cluster-admins-binding-missing", "cp1", [], {("rbac-missing", None)}, "kubeadm:cluster-admins"),
    ("pdb-blocks", "w1", [], {("pdb-blocks-drain", None)}, "shop/guarded-w1 allows no disruption"),
    ("certs-expired", "cp2", [], {("certificate-expired", "cp2")}, "apiserver (/etc/kubernetes/pki/apiserver.crt) expired"),
    # cp1's also expires the lab's kubeconfig (an old admin.conf copy): the API servers refuse it,
    # and the finding says so, and that cert-renew's admin_conf gets a working one back.
    ("certs-expired", "cp1", [], {("certificate-expired", "cp1"), ("api-unreachable", None)},
     "cp2: the server refused the client certificate: TLS alert certificate expired"),
    ("certs-expiring", "cp3", ["--days", "10"], {("certificate-expiring", "cp3")}, "etcd-server (/etc/kubernetes/pki/etcd/server.crt) expires in"),
    ("ca-expiring", "cp1", ["--days", "20"], {("certificate-expiring", "cp1")}, "ca (/etc/kubernetes/pki/ca.crt) expires in"),
    ("node-notready", "w2", [], {("node-not-ready", "w2")}, "Ready is not True"),
    # Seed 001's node: its kubelet cannot start with an expired client certificate.
    ("kubelet-cert-expired", "w1", [], {("certificate-expired", "w1"), ("node-not-ready", "w1")},
     "kubelet.conf (/etc/kubernetes/kubelet.conf) expired"),
    ("ssh-down", "w3", [], {("node-unreadable", "w3")}, "w3"),
    # The leader's node down: etcd is examined through the next control-plane node, and its quorum
    # is not reported lost.
    ("ssh-down", "cp1", [], {("node-unreadable", "cp1")}, "cp1"),
    ("alert-firing", "w1", [], {("alert-firing", None)}, "LabFaultAlert firing"),
    # Seed 002: the route cut, not the API servers; the rest examined through cp1 (nothing else flagged).
    ("api-unreachable", "cp1", [], {("api-unreachable", None)}, "but cp1's own API server does, through SSH"),
    # Last: its etcd member stops with its pods (no space to start them) and takes a moment to rejoin.
    ("disk-full", "cp2", [], {("disk-full", "cp2"), ("node-pressure", "cp2"), ("etcd-unhealthy", None)}, "/ is 100% used"),
]


def tree_hashes(root):
    """sha256 of every file a runbook could change on the lab's nodes (etcd's data, logs and the
    simulators' own state change by themselves and are left out)."""
    out = {}
    for node in sorted(os.listdir(f"{root}/nodes")):
        base = f"{root}/nodes/{node}/root"
        for sub in ("etc/kubernetes", "etc/systemd/system", "etc/etcd", "etc/apt", "usr/local/bin", "var/cache/engine"):
            for d, _, files in os.walk(os.path.join(base, sub)):
                for f in files:
                    p = os.path.join(d, f)
                    with open(p, "rb") as fh:
                        out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


class Doctor(LabClass):
    SUBNET = SUBNET

    def doctor(self, *extra, kubeconfig=None):
        t0 = time.monotonic()
        r = self.engine_run(DOCTOR, "--log-format", "json", *extra, timeout=300, kubeconfig=kubeconfig)
        print(f"doctor ran in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        findings = [json.loads(x)["fields"] for x in r.stdout.splitlines()
                    if x.startswith("{") and json.loads(x).get("msg") == "finding"]
        return r, [f for f in findings if f["severity"] in ("critical", "warning")]

    def node_conditions(self):
        r = subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", "get", "nodes", "-o", "json"],
                           capture_output=True, text=True, timeout=60, check=True)
        return {n["metadata"]["name"]: {c["type"]: c["status"] for c in n["status"]["conditions"]}
                for n in json.loads(r.stdout)["items"]}

    def wait_nodes(self, pred, what):
        """The kubelets report every second: a fault on a node shows in its Node a moment later."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if pred(self.node_conditions()):
                return
            time.sleep(0.5)
        self.fail(f"nodes not {what} within 60s: {self.node_conditions()}")

    def wait_etcd(self):
        """Every control-plane node's etcd answers its health check (a member back from disk-full)."""
        deadline = time.monotonic() + 60
        for n in (x for x in self.state["nodes"] if x["role"] == "control-plane"):
            pki = f"{self.dir}/nodes/{n['name']}/root/etc/kubernetes/pki/etcd"
            ctx = ssl.create_default_context(cafile=f"{pki}/ca.crt")
            ctx.load_cert_chain(f"{pki}/healthcheck-client.crt", f"{pki}/healthcheck-client.key")
            while True:
                try:
                    with urllib.request.urlopen(f"https://{n['ip']}:2379/health", context=ctx, timeout=3) as r:
                        if json.load(r).get("health") == "true":
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    self.fail(f"etcd on {n['name']} not healthy within 60s")
                time.sleep(0.5)

    def settled(self, conds):
        return all(c.get("Ready") == "True" and c.get("DiskPressure") != "True" for c in conds.values())

    def wait_alert(self, firing):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with urllib.request.urlopen(self.state["prometheus_url"] + "/api/v1/alerts", timeout=5) as r:
                alerts = json.load(r)["data"]["alerts"]
            if any(a["labels"].get("alertname") == "LabFaultAlert" and a["state"] == "firing" for a in alerts) == firing:
                return
            time.sleep(1)
        self.fail(f"LabFaultAlert did not {'fire' if firing else 'stop'} within 120s")

    def test_1_a_healthy_lab_has_no_finding_and_nothing_changes(self):
        before = tree_hashes(self.dir)
        r, bad = self.doctor()
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-3000:])
        self.assertEqual(bad, [])
        self.assertIn("Healthy: nothing found", r.stdout)
        self.assertEqual(tree_hashes(self.dir), before)
        # report.json holds the findings (none here) as the examine step's result.
        runs = f"{self.dir}/state/runs"
        last = sorted(os.listdir(runs))[-1]
        with open(f"{runs}/{last}/report.json") as f:
            report = json.load(f)
        self.assertTrue(any(s.get("step", s.get("key", "")).endswith("examine") for s in report["steps"]))
        # --dry-run reads as much and shows no side effect.
        r, bad = self.doctor("--dry-run")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:])
        self.assertNotIn("would run", r.stdout)
        self.assertEqual(tree_hashes(self.dir), before)
        # The lab's Prometheus runs seed 004's Upgrade Gates from deploy/'s rule file, none firing.
        with urllib.request.urlopen(self.state["prometheus_url"] + "/api/v1/rules", timeout=5) as resp:
            groups = json.load(resp)["data"]["groups"]
        gates = {r["name"]: r["state"] for g in groups if g["name"] == "Upgrade Gates" for r in g["rules"]}
        self.assertEqual(gates, {"K8sVersionSkew": "inactive", "EtcdPreUpgradeSnapshotMissing": "inactive",
                                 "K8sUpgradeStalled": "inactive"})

    def test_2_each_fault_found_on_its_node_and_nothing_else(self):
        for fault, node, extra, want, evidence in CASES:
            with self.subTest(fault=fault, node=node):
                self.wait_nodes(self.settled, "Ready without pressure")
                lab("fault", node, fault, *extra, "--dir", self.dir)
                try:
                    if fault == "alert-firing":
                        self.wait_alert(True)
                    elif fault in ("node-notready", "kubelet-cert-expired"):
                        self.wait_nodes(lambda c: c[node]["Ready"] != "True", f"{node} NotReady")
                    elif fault == "disk-full":
                        self.wait_nodes(lambda c: c[node].get("DiskPressure") == "True", f"{node} under DiskPressure")
                    before = tree_hashes(self.dir)
                    r, bad = self.doctor()
                    self.assertEqual(r.returncode, 1, r.stdout[-3000:] + r.stderr[-2000:])
                    got = {(f["name"], f.get("node")) for f in bad}
                    self.assertEqual(got, want, json.dumps(bad, indent=1)[:3000])
                    self.assertTrue(any(evidence in f["evidence"] for f in bad), json.dumps(bad, indent=1)[:3000])
                    self.assertTrue(all(f.get("see") for f in bad))
                    table = r.stdout[r.stdout.rfind("doctor: "):]
                    for f in bad:
                        self.assertIn(f["evidence"], table)
                    if fault == "ssh-down":  # not examined, and the summary and the recap say so
                        self.assertIn(f"doctor: 5 of 6 nodes examined (3 control plane); not readable: {node}", table)
                        self.assertTrue(any(x.get("host") == node and x.get("msg") == "failed"
                                            for x in map(json.loads, filter(lambda x: x.startswith("{"), r.stdout.splitlines()))))
                    if fault == "certs-expired" and node == "cp1":
                        self.assertTrue(any("-e admin_conf=PATH" in f.get("runbook", "") for f in bad), json.dumps(bad, indent=1)[:3000])
                    if fault == "certs-expiring":  # eleven rows of one kind on one node: one see/fix line
                        self.assertGreater(len(bad), 5)
                        self.assertEqual(table.count("see: kubeadm certs check-expiration   fix: runbooks/cert-renew.lua"), 1, table)
                    # Counted as the table groups them (one node's expired certificates: one finding).
                    kinds = {(f["severity"], f.get("node"), f["name"]) for f in bad}
                    self.assertIn(f"{sum(k[0] == 'critical' for k in kinds)} critical and "
                                  f"{sum(k[0] == 'warning' for k in kinds)} warning finding(s)", r.stderr)
                    if fault != "ssh-down":
                        self.assertEqual(tree_hashes(self.dir), before)
                finally:
                    lab("clear", node, fault, "--dir", self.dir)
                    if fault == "alert-firing":
                        self.wait_alert(False)

    def test_4_as_the_engines_service_account(self):
        # deploy/rbac.yaml's rights are enough for the whole examination; a binding this identity
        # may not read is "not checked", never "missing" (a CronJob's doctor would cry wolf). The lab
        # is as test_3 left it: settled, its gauge deleted.
        k = subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", "apply", "--validate=false", "-f",
                            os.path.join(ROOT, "deploy", "rbac.yaml")], capture_output=True, text=True, timeout=60)
        self.assertEqual(k.returncode, 0, k.stderr)
        sa = f"{self.dir}/engine-sa.kubeconfig"
        lab("kubeconfig", "system:serviceaccount:engine:engine", "--out", sa, "--dir", self.dir)
        r, bad = self.doctor(kubeconfig=sa)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-2000:])
        self.assertEqual(bad, [])
        patch = json.dumps([{"op": "remove", "path": "/rules/10"}])  # the kubeadm:cluster-admins rule
        role = json.loads(subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", "get", "clusterrole",
                                          "engine-upgrade", "-o", "json"], capture_output=True, text=True, timeout=60).stdout)
        self.assertEqual(role["rules"][10]["resourceNames"], ["kubeadm:cluster-admins"])
        k = subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", "patch", "clusterrole",
                            "engine-upgrade", "--type=json", "-p", patch], capture_output=True, text=True, timeout=60)
        self.assertEqual(k.returncode, 0, k.stderr)
        r, bad = self.doctor(kubeconfig=sa)
        self.assertEqual(r.returncode, 1, r.stdout[-3000:])
        self.assertEqual([(f["name"], f["severity"]) for f in bad], [("rbac", "warning")])
        self.assertIn("ClusterRoleBinding kubeadm:cluster-admins could not be read", bad[0]["evidence"])
        self.assertIn("is not checked", bad[0]["evidence"])

    def test_3_an_upgrade_left_in_flight(self):
        # Seed 004: the Pushgateway still says an upgrade is in flight.
        self.wait_nodes(self.settled, "Ready without pressure")  # after the last fault of test_2
        self.wait_etcd()
        url = f"{self.state['pushgateway_url']}/metrics/job/k8s_upgrade"
        body = f"k8s_upgrade_in_flight 1\nk8s_upgrade_started_timestamp {int(time.time()) - 7200}\n".encode()
        urllib.request.urlopen(urllib.request.Request(url, data=body, method="PUT"), timeout=5).read()
        try:
            r, bad = self.doctor()
            self.assertEqual(r.returncode, 1, r.stdout[-3000:])
            self.assertEqual({(f["name"], f.get("node")) for f in bad}, {("upgrade-in-flight", None)})
            self.assertIn("k8s_upgrade_in_flight is 1 since", bad[0]["evidence"])
            self.assertIn("engine resume", bad[0]["runbook"])
        finally:
            urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5).read()

    def test_5_api_servers_at_two_versions(self):
        # A Kubernetes upgrade stopped midway with no Pushgateway to say so: cp2's kube-apiserver
        # at the next patch, the others and kubeadm-config not.
        path = f"{self.dir}/nodes/cp2/root/etc/kubernetes/manifests/kube-apiserver.yaml"
        with open(path) as f:
            saved = f.read()

        def put(text, image):
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)  # in one rename, as kubeadm writes it
            deadline = time.monotonic() + 60  # the kubelet runs it, and its mirror pod says so
            while time.monotonic() < deadline:
                r = subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", "-n", "kube-system", "get", "pod",
                                    "kube-apiserver-cp2", "-o", "jsonpath={.spec.containers[0].image}"],
                                   capture_output=True, text=True, timeout=60)
                if r.stdout == image:
                    return
                time.sleep(0.5)
            self.fail(f"kube-apiserver-cp2 does not run {image}")
        self.assertIn("kube-apiserver:v1.33.1", saved)
        put(saved.replace("kube-apiserver:v1.33.1", "kube-apiserver:v1.33.5"), "registry.k8s.io/kube-apiserver:v1.33.5")
        try:
            r, bad = self.doctor()
            self.assertEqual(r.returncode, 1, r.stdout[-3000:])
            self.assertEqual({(f["name"], f.get("node")) for f in bad}, {("version-skew", None)}, json.dumps(bad, indent=1))
            self.assertEqual(bad[0]["evidence"], "kube-apiserver v1.33.1 on cp1, cp3; v1.33.5 on cp2 (kubeadm-config says "
                                                 "v1.33.1): a Kubernetes upgrade stopped midway")
            self.assertIn("engine resume", bad[0]["runbook"])
        finally:
            put(saved, "registry.k8s.io/kube-apiserver:v1.33.1")


if __name__ == "__main__":
    unittest.main()
