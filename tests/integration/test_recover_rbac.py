"""runbooks/recover-rbac.lua in the lab (seed 000): the scheduler's ClusterRole deleted leaves a new
pod Pending (the lab's scheduler is refused, as the real one is); the runbook names what the
scheduler is refused, restores the role from the bootstrap policy, and the pod is scheduled; with
the operator's admin.conf powerless (kubeadm:cluster-admins gone, kubeadm#3308) it breaks glass
through the leader's super-admin.conf, says so, and restores both; --dry-run changes nothing; a
component it has no policy for is refused by name; the upgrade's preflight points at it."""
import glob
import json
import os
import shutil
import subprocess
import time
import unittest

from test_etcd_migration import ROOT, Lab, lab, read

RECOVER = os.path.join(ROOT, "runbooks", "recover-rbac.lua")


class RecoverRbac(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lb = Lab(workers=1, subnet="127.0.73")

    @classmethod
    def tearDownClass(cls):
        cls.lb.down()

    def kubectl(self, *args, kubeconfig=None, check=True):
        return subprocess.run(["kubectl", "--kubeconfig", kubeconfig or f"{self.lb.dir}/kubeconfig", *args],
                              capture_output=True, text=True, timeout=60, check=check)

    def pod_node(self, name):
        pod = json.loads(self.kubectl("-n", "shop", "get", "pod", name, "-o", "json").stdout)
        return (pod.get("spec") or {}).get("nodeName")

    def fault(self, kind, on=True):
        lab("fault" if on else "clear", "cp1", kind, "--dir", self.lb.dir)

    def test_1_a_healthy_cluster_needs_nothing(self):
        r = self.lb.engine("run", RECOVER)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertIn("kube-scheduler: every access of the bootstrap policy is allowed", r.stdout)
        self.assertIn("Nothing to restore", r.stdout)

    def test_2_the_scheduler_role_lost_pods_pending_restored_scheduled(self):
        self.fault("scheduler-rbac-missing")
        self.addCleanup(lambda: self.fault("scheduler-rbac-missing", False))
        self.kubectl("-n", "shop", "run", "cron-1", "--image=busybox", "--restart=Never")
        time.sleep(2)
        self.assertIsNone(self.pod_node("cron-1"), "a pod was scheduled without the scheduler's RBAC")
        dry = self.lb.engine("run", RECOVER, "--dry-run")
        self.assertEqual(dry.returncode, 0, dry.stdout[-3000:] + dry.stderr[-3000:])
        self.assertIn("would POST kind=ClusterRole name=system:kube-scheduler", dry.stdout)
        self.assertNotIn("ClusterRole restored", dry.stdout + dry.stderr)  # a dry run restores nothing
        self.assertNotEqual(self.kubectl("get", "clusterrole", "system:kube-scheduler", check=False).returncode, 0)
        self.assertIsNone(self.pod_node("cron-1"))
        r = self.lb.engine("run", RECOVER)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertIn("kube-scheduler (system:kube-scheduler) is refused", r.stdout)
        self.assertIn("create pods/binding", r.stdout + r.stderr)  # in the log line naming what it is refused
        self.assertIn("1 pod(s) Pending without a node: shop/cron-1", r.stdout)
        self.assertIn("The 1 pod(s) that were Pending are scheduled.", r.stdout)
        self.assertIsNotNone(self.pod_node("cron-1"))
        can = self.kubectl("auth", "can-i", "create", "pods", "--subresource=binding", "--as", "system:kube-scheduler", check=False)
        self.assertEqual(can.stdout.strip(), "yes")
        role = json.loads(self.kubectl("get", "clusterrole", "system:kube-scheduler", "-o", "json").stdout)
        self.assertIn({"apiGroups": [""], "resources": ["bindings", "pods/binding"], "verbs": ["create"]}, role["rules"])
        again = self.lb.engine("run", RECOVER)
        self.assertIn("Nothing to restore", again.stdout)

    def test_3_admin_conf_powerless_breaks_glass_with_the_leaders_super_admin(self):
        self.fault("scheduler-rbac-missing")
        self.fault("cluster-admins-binding-missing")
        self.addCleanup(lambda: self.fault("cluster-admins-binding-missing", False))
        self.addCleanup(lambda: self.fault("scheduler-rbac-missing", False))
        operator = f"{self.lb.dir}/operator.conf"  # the operator's copy of admin.conf (kubeadm:cluster-admins)
        shutil.copy(f"{self.lb.root('cp1')}/etc/kubernetes/admin.conf", operator)
        self.assertIn("Forbidden", self.kubectl("get", "nodes", kubeconfig=operator, check=False).stderr)
        r = subprocess.run([os.environ.get("ENGINE_BIN", os.path.join(ROOT, "build", "bin", "engine")), "run", RECOVER,
                            "-i", f"{self.lb.dir}/inventory.yml", "--kubeconfig", operator, "--state-dir", f"{self.lb.dir}/state"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertIn("BREAK GLASS: this run's credentials cannot repair RBAC (may not create clusterroles); using cp1's "
                      "/etc/kubernetes/super-admin.conf (held in memory, never written here)", r.stdout)
        self.assertIn("ClusterRoleBinding restored", r.stdout + r.stderr)
        self.assertEqual(self.kubectl("get", "nodes", kubeconfig=operator, check=False).returncode, 0)
        self.assertEqual(self.kubectl("get", "clusterrole", "system:kube-scheduler", check=False).returncode, 0)
        logs = "".join(read(p) for p in glob.glob(f"{self.lb.dir}/state/runs/*recover-rbac*/run.log"))
        key = read(f"{self.lb.root('cp1')}/etc/kubernetes/super-admin.conf").split("client-key-data: ")[1].split()[0]
        self.assertNotIn(key, logs + r.stdout + r.stderr)  # the break-glass credentials never reach a log

    def test_4_bad_input_and_the_upgrade_preflight_points_here(self):
        r = self.lb.engine("run", RECOVER, "-e", "components=kube-proxy")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("components: no policy for kube-proxy", r.stdout + r.stderr)
        self.fault("scheduler-rbac-missing")
        self.addCleanup(lambda: self.fault("scheduler-rbac-missing", False))
        up = self.lb.engine("run", os.path.join(ROOT, "runbooks", "k8s-upgrade.lua"), "-e", "version=1.33.5", "-e", "kind=patch",
                            "-e", f"pushgateway={self.lb.state['pushgateway_url']}", "-e", f"prometheus={self.lb.state['prometheus_url']}",
                            "-e", f"snapshot_dir={self.lb.dir}/snapshots", "--dry-run")
        self.assertNotEqual(up.returncode, 0)
        self.assertIn("rbac: ClusterRole system:kube-scheduler: missing (runbooks/recover-rbac.lua restores it)", up.stdout + up.stderr)

    def test_5_the_route_to_the_api_cut_too_goes_through_a_node(self):
        # Seed 002 beside seed 000: kubectl's route (the lab's load balancer) refused, SSH to the
        # nodes up. The review and the repair go through cp1's own API server, with the same
        # credentials; with no control-plane node in the inventory the run says what it needs.
        self.fault("scheduler-rbac-missing")
        self.fault("api-unreachable")
        self.addCleanup(lambda: self.fault("scheduler-rbac-missing", False))
        self.addCleanup(lambda: self.fault("api-unreachable", False))
        self.assertNotEqual(self.kubectl("get", "nodes", check=False).returncode, 0)
        r = self.lb.engine("run", RECOVER)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertIn("The API does not answer through this run's kubeconfig; it does through an SSH tunnel to cp1's "
                      "own API server, with the same credentials: the run uses that.", r.stdout)
        self.assertIn("RBAC restored: every access of the bootstrap policy is allowed.", r.stdout)
        self.fault("api-unreachable", False)
        self.assertEqual(self.kubectl("get", "clusterrole", "system:kube-scheduler", check=False).returncode, 0)
        self.fault("api-unreachable")
        empty = f"{self.lb.dir}/no-nodes.yml"
        with open(empty, "w") as f:
            f.write("all:\n  hosts: {}\n")
        r = self.lb.engine("run", RECOVER, inventory=empty)
        self.assertEqual(r.returncode, 1, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertRegex(r.stderr, r"the API does not answer through this run's kubeconfig \(.+\); with the control-plane "
                                   r"nodes in the inventory \(group k8s-cp\) the run tries each one's own API server over SSH")


if __name__ == "__main__":
    unittest.main()
