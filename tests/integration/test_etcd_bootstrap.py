"""runbooks/etcd-bootstrap.lua in the lab (seed 003, flow B): from nodes with no cluster at all
(`scripts/lab up --empty`) to a 3+2 cluster Ready on an external etcd 3.5 run by systemd; etcd's PKI
made on the leader, its temporary files gone and its CA key nowhere else (IR-8); the join tokens
kept out of the log; a second run changing nothing; and a node holding another etcd's data refused
with nothing changed."""
import glob
import json
import os
import re
import shutil
import subprocess
import unittest

from test_etcd_migration import DOCTOR, ROOT, UPGRADE, Lab, read

BOOTSTRAP = os.path.join(ROOT, "runbooks", "etcd-bootstrap.lua")


class Bootstrap(unittest.TestCase):
    def test_a_cluster_from_nothing_on_an_external_etcd(self):
        lb = Lab(workers=2, subnet="127.0.72", empty=True)
        self.addCleanup(lb.down)
        run = lambda: lb.engine("run", BOOTSTRAP, "-e", "version=3.5.16")  # noqa: E731

        # Another etcd's data on a node: refused, nothing made anywhere.
        stale = f"{lb.root('cp2')}/var/lib/etcd/member/snap"
        os.makedirs(stale)
        r = run()
        self.assertEqual(r.returncode, 1)
        self.assertIn("precheck failed, nothing was changed", r.stdout + r.stderr)
        self.assertIn("cp2: /var/lib/etcd holds an etcd member's data and no etcd.service runs it", r.stdout + r.stderr)
        for n in lb.state["nodes"]:
            self.assertFalse(os.path.exists(f"{lb.root(n['name'])}/etc/etcd/etcd.env"))
            self.assertFalse(os.path.exists(f"{lb.root(n['name'])}/etc/kubernetes/pki/etcd"))
        shutil.rmtree(f"{lb.root('cp2')}/var/lib/etcd/member")

        r = run()
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-4000:])
        self.assertIn("The cluster is up on its external etcd", r.stdout)
        nodes = json.loads(subprocess.run(["kubectl", "--kubeconfig", f"{lb.dir}/kubeconfig", "get", "nodes", "-o", "json"],
                                          capture_output=True, text=True, check=True).stdout)["items"]
        ready = {n["metadata"]["name"]: [c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"] for n in nodes}
        self.assertEqual(ready, {x: ["True"] for x in ("cp1", "cp2", "cp3", "w1", "w2")})
        roles = {n["metadata"]["name"] for n in nodes if "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"]}
        self.assertEqual(roles, {"cp1", "cp2", "cp3"})
        cc = lb.cluster_configuration()
        endpoints = [f"https://{c['ip']}:2379" for c in lb.cps]
        self.assertEqual(cc["etcd"]["external"]["endpoints"], endpoints)
        self.assertEqual(cc["apiVersion"], "kubeadm.k8s.io/v1beta4")
        for n in lb.cps:
            name = n["name"]
            self.assertEqual(lb.unit(name), ("active", "enabled"))
            api = read(f"{lb.root(name)}/etc/kubernetes/manifests/kube-apiserver.yaml")
            self.assertIn("--etcd-servers=" + ",".join(endpoints), api)
            self.assertFalse(os.path.exists(f"{lb.root(name)}/etc/kubernetes/manifests/etcd.yaml"))
            env = read(f"{lb.root(name)}/etc/etcd/etcd.env")
            self.assertIn("ETCD_INITIAL_CLUSTER_STATE=new\n", env)
            self.assertIn("ETCD_INITIAL_CLUSTER=" + ",".join(f"{c['name']}=https://{c['ip']}:2380" for c in lb.cps) + "\n", env)
            # etcd's CA key stays on the leader (IR-8); every node has its own server certificate.
            self.assertEqual(os.path.exists(f"{lb.root(name)}/etc/kubernetes/pki/etcd/ca.key"), name == "cp1")
            san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                                  f"{lb.root(name)}/etc/kubernetes/pki/etcd/server.crt"], capture_output=True, text=True).stdout
            self.assertIn(f"IP Address:{n['ip']}", san)
        members = lb.etcd("cp1", "/v3/cluster/member/list")["members"]
        self.assertEqual(sorted(m["name"] for m in members), ["cp1", "cp2", "cp3"])
        self.assertEqual({lb.etcd(c["name"], "/v3/maintenance/status")["version"] for c in lb.cps}, {"3.5.16"})
        self.assertEqual(glob.glob("/tmp/*.engine-etcd-pki"), [])  # the PKI's temporary files are gone (IR-8)
        logs = "".join(read(p) for p in glob.glob(f"{lb.dir}/state/runs/*etcd-bootstrap*/run.log"))
        self.assertIsNone(re.search(r"\b[0-9a-f]{6}\.[0-9a-f]{16}\b", logs), "a join token reached the log")

        again = run()
        self.assertEqual(again.returncode, 0, again.stdout[-3000:] + again.stderr[-3000:])
        for what in ("etcd certificates", "start etcd.service", "kubeadm init", "kubeadm join --control-plane", "kubeadm join"):
            self.assertIn(f"{what}: already so", again.stdout)
        self.assertNotIn("kubeadm token create", again.stdout)

        # The new cluster is healthy to doctor (etcd under systemd, kubeadm told: no split), and its
        # first upgrade's preflight passes: each node's first Ready, when it joined, is no flap.
        doc = lb.engine("run", DOCTOR)
        self.assertEqual(doc.returncode, 0, doc.stdout[-3000:] + doc.stderr[-3000:])
        self.assertIn("Healthy: nothing found", doc.stdout)
        up = lb.engine("run", UPGRADE, "-e", "version=1.34.3", "-e", "kind=minor", "--dry-run")
        self.assertEqual(up.returncode, 0, up.stdout[-3000:] + up.stderr[-3000:])
        self.assertIn("preflight passed", up.stdout)
        self.assertRegex(up.stdout, r"node became Ready when it joined the cluster: not counted for quiet_hours .*node=w2")


if __name__ == "__main__":
    unittest.main()
