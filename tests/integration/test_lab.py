"""The lab (scripts/lab): up, what each node and the cluster look like, each fault seen the way an
SRE would see it and cleared again, a kubeadm upgrade on a node, and down leaving nothing behind."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab.sshd import poll  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "scripts", "lab")
ENGINE = os.environ.get("ENGINE_BIN", os.path.join(ROOT, "build", "bin", "engine"))
SUBNET = "127.0.20"


def lab(*args, check=True, timeout=180):
    r = subprocess.run([LAB, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"scripts/lab {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


class LabTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="engine-lab-test-")
        # The engine's image from this tree (scripts/image), for the lab's pods of it.
        cls.image = cls.dir + ".image.tar"
        b = subprocess.run([os.path.join(ROOT, "scripts", "image"), "--out", cls.image], capture_output=True, text=True, timeout=300)
        assert b.returncode == 0, b.stderr
        t0 = time.monotonic()
        r = lab("up", "--dir", cls.dir, "--subnet", SUBNET, "--kubeadm-timeout", "10", "--engine-image", cls.image)
        cls.up_seconds = time.monotonic() - t0
        print(f"\nlab up took {cls.up_seconds:.1f}s", file=sys.stderr)
        cls.up_output = r.stdout
        with open(f"{cls.dir}/lab.json") as f:
            cls.state = json.load(f)

    @classmethod
    def tearDownClass(cls):
        with open("/proc/uptime") as f:
            down_at = float(f.read().split()[0])
        lab("down", "--dir", cls.dir)
        os.remove(cls.image)
        # Nothing left: no process in any node's namespace, no lab process, nothing on the lab's ports.
        # A namespace's id is reused once it is gone: a process that started after the down began (a
        # lab another test module brings up meanwhile) is in a new namespace, not one of ours.
        ticks = os.sysconf("SC_CLK_TCK")
        left = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                ns = os.readlink(f"/proc/{d}/ns/mnt")
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode()
                with open(f"/proc/{d}/environ", "rb") as f:  # an engine pod's HOME is in the lab's directory
                    env = f.read().decode(errors="replace")
                with open(f"/proc/{d}/stat") as f:
                    started = int(f.read().rsplit(")", 1)[1].split()[19]) / ticks
            except OSError:
                continue
            ours = ns in [n["mnt_ns"] for n in cls.state["nodes"]] and started < down_at
            if ours or cls.dir in cmd or f"{SUBNET}." in cmd or cls.dir in env:
                left.append(f"{d} {cmd}")
        ports = subprocess.run(["ss", "-Htln"], capture_output=True, text=True).stdout
        with open("/proc/self/mountinfo") as f:
            mounts = f.read()
        assert not left, f"processes left by lab down: {left}"
        assert f"{SUBNET}." not in ports, f"ports left by lab down:\n{ports}"
        assert cls.dir not in mounts, "mounts left by lab down"
        assert not os.path.exists(cls.dir), "lab down left its directory"

    # --- helpers --------------------------------------------------------------------------------
    def node(self, name):
        return [n for n in self.state["nodes"] if n["name"] == name][0]

    def ssh(self, name, cmd, check=True):
        n = self.node(name)
        r = subprocess.run(["ssh", "-i", f"{self.dir}/ssh/id_ed25519", "-o", f"UserKnownHostsFile={self.dir}/known_hosts",
                            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-p", str(self.state["ssh_port"]),
                            f"enginetest@{n['ip']}", cmd], capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"ssh {name} {cmd!r} failed ({r.returncode}): {r.stdout}{r.stderr}")
        return r

    def kubectl(self, *args, check=True):
        r = subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", *args], capture_output=True, text=True,
                           timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {r.stderr}")
        return r

    def nodes(self):
        return {n["metadata"]["name"]: n for n in json.loads(self.kubectl("get", "nodes", "-o", "json").stdout)["items"]}

    def ready(self, name):
        n = self.nodes()[name]
        return [c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"] == ["True"]

    # --- the lab as it comes up -----------------------------------------------------------------
    def test_up_prints_how_to_use_it_and_is_idempotent(self):
        self.assertIn(f"{self.dir}/inventory.yml", self.up_output)
        self.assertIn("engine run runbooks/k8s-upgrade.lua", self.up_output)
        # The printed upgrade command, as an operator pastes it, has every param it needs (it once
        # lacked kind=; Prometheus and the Pushgateway come from the inventory).
        joined = self.up_output.replace("\\\n", " ")  # the command's continuation lines
        printed = next(line for line in joined.splitlines() if "engine run runbooks/k8s-upgrade.lua" in line)
        printed = printed.split("engine run ", 1)[1].split()
        r = subprocess.run([ENGINE, "check", *printed], capture_output=True, text=True, timeout=60, cwd=ROOT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = lab("up", "--dir", self.dir, "--subnet", SUBNET)
        self.assertIn("already up", r.stdout)
        with open(f"{self.dir}/lab.json") as f:
            self.assertEqual(json.load(f)["nodes"][0]["anchor"], self.state["nodes"][0]["anchor"])

    def test_every_node_answers_with_its_own_name_through_the_engine(self):
        rb = os.path.join(self.dir, "names.lua")
        with open(rb, "w") as f:
            f.write("""local fleet = require "engine.fleet"
return runbook { name = "names", run = function(p, inv)
  fleet.each(inv:hosts("all"), { at_once = 10 }, function(h)
    local r = assert(h:exec("uname -n; test -d /etc/kubernetes/pki && echo pki"))
    print("NAME " .. h.name .. " " .. r.stdout:gsub("\\n", " "))
  end)
end }
""")
        r = subprocess.run([ENGINE, "run", rb, "-i", f"{self.dir}/inventory.yml", "--state-dir", f"{self.dir}/state"],
                           capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        for n in self.state["nodes"]:
            self.assertIn(f"NAME {n['name']} {n['name']} pki", r.stdout)

    def test_inventory_groups(self):
        import yaml
        with open(f"{self.dir}/inventory.yml") as f:
            inv = yaml.safe_load(f)["all"]["children"]
        self.assertEqual(sorted(inv["k8s-cp"]["hosts"]), ["cp1", "cp2", "cp3"])
        self.assertEqual(list(inv["k8s-cp-leader"]["hosts"]), ["cp1"])
        self.assertEqual(sorted(inv["k8s-worker"]["hosts"]), ["w1", "w2", "w3"])
        self.assertEqual(sorted(inv["etcd"]["hosts"]), ["cp1", "cp2", "cp3"])

    def test_etcd_members_form_a_healthy_cluster_with_the_labs_certificates(self):
        pki = f"{self.dir}/nodes/cp1/root/etc/kubernetes/pki"
        eps = ",".join(f"https://{SUBNET}.{i}:2379" for i in (1, 2, 3))
        base = ["etcdctl", f"--endpoints={eps}", f"--cacert={pki}/etcd/ca.crt", f"--cert={pki}/apiserver-etcd-client.crt",
                f"--key={pki}/apiserver-etcd-client.key"]
        env = dict(os.environ, ETCDCTL_API="3")
        r = subprocess.run(base + ["endpoint", "health"], capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual((r.stdout + r.stderr).count("is healthy"), 3)
        r = subprocess.run(base + ["member", "list"], capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual(sorted(line.split(", ")[2] for line in r.stdout.splitlines()), ["cp1", "cp2", "cp3"])
        # and the same from a node, with the node's own certificates at their real paths
        r = self.ssh("cp2", "sudo sh -c 'ETCDCTL_API=3 etcdctl --endpoints=https://127.0.20.2:2379 "
                            "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
                            "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key endpoint health'", check=False)
        self.assertIn("is healthy", r.stdout + r.stderr)

    def test_kubectl_sees_every_node_ready_at_the_labs_version(self):
        out = self.kubectl("get", "nodes").stdout
        for n in self.state["nodes"]:
            self.assertRegex(out, rf"{n['name']}\s+Ready\s+\S+\s+\S+\s+v1\.33\.1")
        pods = self.kubectl("get", "pods", "-n", "kube-system").stdout
        for cp in ("cp1", "cp2", "cp3"):
            for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
                self.assertRegex(pods, rf"{c}-{cp}\s+1/1\s+Running")
        self.assertIn("v1.33.1", self.kubectl("version").stdout)

    def test_node_simulators_answer_like_the_real_commands(self):
        out = self.ssh("w1", "df -h /; sudo apt-mark showhold; apt-cache madison kubelet; systemctl is-active kubelet; "
                             "kubelet --version; ls /etc/kubernetes/manifests | wc -l").stdout
        self.assertRegex(out, r"/dev/vda1\s+50G\s+\S+\s+\S+\s+\d+% /")
        self.assertIn("kubeadm\nkubectl\nkubelet\n", out)
        self.assertIn("kubelet | 1.33.5-1.1 | https://pkgs.k8s.io/core:/stable:/v1.33/deb", out)
        self.assertIn("active\nKubernetes v1.33.1", out)
        self.assertEqual(out.split("Kubernetes v1.33.1\n")[1], "0\n")  # a worker runs no static pods
        r = self.ssh("w1", "sudo apt-get install -y kubelet=1.34.3-1.1", check=False)
        self.assertEqual(r.returncode, 100)
        self.assertIn("E: Version '1.34.3-1.1' for 'kubelet' was not found", r.stderr)
        r = self.ssh("w1", "sudo apt-get install -y kubelet=1.33.5-1.1", check=False)
        self.assertEqual(r.returncode, 100)
        self.assertIn("E: Held packages were changed and -y was used.", r.stderr)
        r = self.ssh("cp3", "sudo kubeadm certs check-expiration")
        self.assertRegex(r.stdout, r"apiserver\s+\w{3} \d\d, \d{4} \d\d:\d\d UTC\s+36\dd\s+ca\s+no")

    def test_crictl_journalctl_and_the_disk(self):
        used = lambda: int(re.search(r"/dev/vda1\s+\d+\s+(\d+)", self.ssh("cp2", "df -B1 /").stdout).group(1))  # noqa: E731
        before = used()
        self.ssh("cp2", "sudo kubeadm config images pull --kubernetes-version v1.34.3")
        self.assertGreater(used(), before)
        images = self.ssh("cp2", "sudo crictl images").stdout
        self.assertRegex(images, r"registry.k8s.io/kube-apiserver\s+v1.34.3")
        r = self.ssh("cp2", "sudo crictl rmi --prune")
        self.assertIn("Deleted: registry.k8s.io/kube-apiserver:v1.34.3", r.stdout)
        self.assertEqual(used(), before)
        self.assertIn("Vacuuming done, freed", self.ssh("cp2", "sudo journalctl --vacuum-time=2d").stdout)
        self.assertLess(used(), before)
        ps = self.ssh("cp2", "sudo crictl ps").stdout
        for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            self.assertRegex(ps, rf"Running\s+{c}\s")

    def test_systemctl_stop_start_and_reboot(self):
        r = self.ssh("w2", "systemctl is-enabled kubelet; sudo systemctl stop kubelet; systemctl is-active kubelet; "
                           "echo rc=$?")
        self.assertEqual(r.stdout, "enabled\ninactive\nrc=3\n")
        self.assertTrue(poll(lambda: not self.ready("w2"), 10), "a stopped kubelet left w2 Ready")
        self.ssh("w2", "sudo systemctl start kubelet")
        self.assertTrue(poll(lambda: self.ready("w2"), 20))
        r = self.ssh("w2", "sudo systemctl restart nosuch", check=False)
        self.assertEqual(r.returncode, 5)
        self.assertIn("Unit nosuch.service not found.", r.stderr)
        self.ssh("w2", "sudo reboot")
        self.assertTrue(poll(lambda: not self.ready("w2"), 15), "w2 never went down")
        self.assertTrue(poll(lambda: self.ready("w2"), 30), "w2 never came back")
        self.assertEqual(self.ssh("w2", "systemctl is-active kubelet").stdout, "active\n")

    def test_restarting_the_kubelet_makes_the_node_not_ready_for_a_moment(self):
        self.ssh("w3", "sudo systemctl restart kubelet")
        self.assertTrue(poll(lambda: not self.ready("w3"), 10), "w3 never went NotReady")
        self.assertTrue(poll(lambda: self.ready("w3"), 20), "w3 never came back Ready")

    # --- faults ---------------------------------------------------------------------------------
    def test_fault_stale_manifest_bak_keeps_the_old_apiserver_running(self):
        lab("fault", "cp2", "stale-manifest-bak", "--dir", self.dir)
        self.assertIn("kube-apiserver.yaml.bak", self.ssh("cp2", "sudo ls /etc/kubernetes/manifests").stdout)
        # A new manifest for the same pod name: the kubelet keeps the older definition running (seed 000).
        self.ssh("cp2", "sudo kubeadm init phase control-plane apiserver --kubernetes-version v1.34.3")
        self.assertIn("image: registry.k8s.io/kube-apiserver:v1.34.3",
                      self.ssh("cp2", "sudo grep -h image: /etc/kubernetes/manifests/kube-apiserver.yaml").stdout)
        time.sleep(2)
        image = lambda: self.kubectl("get", "pod", "-n", "kube-system", "kube-apiserver-cp2", "-o",  # noqa: E731
                                     "jsonpath={.spec.containers[0].image}").stdout
        self.assertEqual(image(), "registry.k8s.io/kube-apiserver:v1.33.1")
        # What k8s-upgrade.lua checks after kubeadm on each control-plane node: it names the mismatch.
        rb = os.path.join(self.dir, "match.lua")
        with open(rb, "w") as f:
            f.write("""local kubeadm = require "std.kubeadm"
return runbook { name = "match", run = function(p, inv)
  for _, c in ipairs({ { "cp2", "1.34.3" }, { "cp1", "1.33.1" } }) do
    local ok, _, why = kubeadm.static_pods_match(inv:host(c[1]), c[2])
    print("MATCH " .. c[1] .. " " .. tostring(ok) .. " " .. tostring(why))
  end
end }
""")
        r = subprocess.run([ENGINE, "run", rb, "-i", f"{self.dir}/inventory.yml", "--kubeconfig", f"{self.dir}/kubeconfig",
                            "--state-dir", f"{self.dir}/state"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("MATCH cp2 nil kube-apiserver: the manifest names registry.k8s.io/kube-apiserver:v1.34.3 but the "
                      "pod runs registry.k8s.io/kube-apiserver:v1.33.1", r.stdout)
        self.assertIn("MATCH cp1 true nil", r.stdout)
        lab("clear", "cp2", "stale-manifest-bak", "--dir", self.dir)
        self.assertNotIn(".bak", self.ssh("cp2", "sudo ls /etc/kubernetes/manifests").stdout)
        self.assertTrue(poll(lambda: image().endswith(":v1.34.3"), 15), image())
        self.ssh("cp2", "sudo kubeadm init phase control-plane apiserver --kubernetes-version v1.33.1")
        self.assertTrue(poll(lambda: image().endswith(":v1.33.1"), 15), image())
        self.assertTrue(poll(lambda: re.search(r"kube-apiserver-cp2\s+1/1", self.kubectl("get", "pods", "-n", "kube-system").stdout), 15))

    def test_fault_scheduler_rbac_missing(self):
        can = lambda: self.kubectl("auth", "can-i", "list", "pods", "--as", "system:kube-scheduler",  # noqa: E731
                                   check=False).stdout.strip()
        self.assertEqual(can(), "yes")
        lab("fault", "cp1", "scheduler-rbac-missing", "--dir", self.dir)
        self.assertEqual(can(), "no")
        # Set twice: the lab says its record may be older than the node's state, and how to set it again.
        self.assertIn("already set on cp1 (if a runbook has repaired it since, `lab clear cp1 scheduler-rbac-missing`",
                      lab("fault", "cp1", "scheduler-rbac-missing", "--dir", self.dir).stdout)
        lab("clear", "cp1", "scheduler-rbac-missing", "--dir", self.dir)
        self.assertEqual(can(), "yes")

    def test_fault_pdb_blocks(self):
        lab("fault", "w2", "pdb-blocks", "--dir", self.dir)
        self.assertRegex(self.kubectl("get", "pdb", "-n", "shop").stdout, r"guarded-w2\s+1\s+N/A\s+0")
        r = self.kubectl("drain", "w2", "--ignore-daemonsets", "--timeout=3s", "--pod-selector=app=guarded-w2", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Cannot evict pod as it would violate the pod's disruption budget", r.stderr)
        lab("clear", "w2", "pdb-blocks", "--dir", self.dir)
        self.assertNotIn("guarded-w2", self.kubectl("get", "pdb", "-n", "shop").stdout)
        self.kubectl("uncordon", "w2")

    def test_fault_certs_expired(self):
        end = lambda: self.ssh("cp3", "sudo openssl x509 -enddate -noout -in /etc/kubernetes/pki/apiserver.crt").stdout  # noqa: E731
        lab("fault", "cp3", "certs-expired", "--dir", self.dir)
        year = int(re.search(r"(\d{4}) GMT", end()).group(1))
        stamp = time.mktime(time.strptime(end().strip().split("=", 1)[1], "%b %d %H:%M:%S %Y GMT"))
        self.assertLess(stamp, time.time() - 3600 * 12, end())
        self.assertRegex(self.ssh("cp3", "sudo kubeadm certs check-expiration").stdout, r"apiserver\s+.*<invalid>")
        r = self.ssh("cp3", "sudo kubeadm certs renew all")
        self.assertIn("Done renewing certificates.", r.stdout)
        self.assertNotIn("<invalid>", self.ssh("cp3", "sudo kubeadm certs check-expiration").stdout)
        lab("clear", "cp3", "certs-expired", "--dir", self.dir)
        self.assertGreater(int(re.search(r"(\d{4}) GMT", end()).group(1)), year - 1)
        self.assertNotIn("<invalid>", self.ssh("cp3", "sudo kubeadm certs check-expiration").stdout)

    def test_fault_disk_full(self):
        lab("fault", "cp1", "disk-full", "--dir", self.dir)
        self.assertRegex(self.ssh("cp1", "df -h /").stdout, r"/dev/vda1\s+50G\s+50G\s+0\s+100% /")
        self.assertTrue(poll(lambda: [c["status"] for c in self.nodes()["cp1"]["status"]["conditions"]
                                      if c["type"] == "DiskPressure"] == ["True"], 10))
        r = self.ssh("cp1", "sudo kubeadm config images pull --kubernetes-version v1.34.3", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no space left on device", r.stderr)
        lab("clear", "cp1", "disk-full", "--dir", self.dir)
        self.assertNotRegex(self.ssh("cp1", "df -h /").stdout, r"100% /")

    def test_fault_node_notready(self):
        lab("fault", "w1", "node-notready", "--dir", self.dir)
        self.assertTrue(poll(lambda: re.search(r"w1\s+NotReady", self.kubectl("get", "nodes").stdout), 10))
        self.assertIn("node-notready", lab("status", "--dir", self.dir, check=False).stdout)
        lab("clear", "w1", "node-notready", "--dir", self.dir)
        self.assertTrue(poll(lambda: self.ready("w1"), 10))

    def test_fault_ssh_down(self):
        lab("fault", "w3", "ssh-down", "--dir", self.dir)
        r = self.ssh("w3", "true", check=False)
        self.assertEqual(r.returncode, 255)
        self.assertIn("Connection refused", r.stderr)
        self.assertTrue(self.ready("w3"))  # the node itself runs on
        lab("clear", "w3", "ssh-down", "--dir", self.dir)
        self.assertEqual(self.ssh("w3", "uname -n").stdout.strip(), "w3")

    def test_fault_alert_firing(self):
        def firing():
            with urllib.request.urlopen(self.state["prometheus_url"] + "/api/v1/alerts", timeout=5) as r:
                return [a["labels"]["alertname"] for a in json.load(r)["data"]["alerts"] if a["state"] == "firing"]
        lab("fault", "w2", "alert-firing", "--dir", self.dir)
        self.assertTrue(poll(lambda: "LabFaultAlert" in firing(), 30), firing())
        lab("clear", "w2", "alert-firing", "--dir", self.dir)
        self.assertTrue(poll(lambda: "LabFaultAlert" not in firing(), 30), firing())

    def test_fault_on_the_wrong_node_is_refused(self):
        r = lab("fault", "w1", "stale-manifest-bak", "--dir", self.dir, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("stale-manifest-bak needs a control-plane node; w1 is a worker", r.stderr)
        r = lab("fault", "nope", "disk-full", "--dir", self.dir, check=False)
        self.assertIn("no node 'nope' in the lab (nodes: cp1, cp2, cp3, w1, w2, w3)", r.stderr)

    # --- last: an upgrade of the leader (it changes the cluster) --------------------------------
    def test_jobs_of_the_engine_image_run_as_pods_evicted_replaced_judged_by_their_policy(self):
        # lab/k8sim/jobs.py and pods.py: what the engine as a Job needs of a cluster.
        def apply(obj):
            r = subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", "apply", "--validate=false", "-f", "-"],
                               input=json.dumps(obj), capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)

        def job(name, args, volumes=(), pod_sc=None, container_sc=None, home=False, **spec):
            mounts = [{"name": v, "mountPath": f"/etc/engine/{v}"} for v in volumes]
            vols = [{"name": v, "configMap": {"name": v}} for v in volumes]
            if home:  # an emptyDir over the image's state directory
                mounts.append({"name": "home", "mountPath": "/var/lib/engine"})
                vols.append({"name": "home", "emptyDir": {}})
            apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
                   "spec": dict({"backoffLimit": 2, "podFailurePolicy": {"rules": [
                       {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                       {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 2]}}]},
                       "template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
                                             "securityContext": pod_sc or {}, "containers": [{
                           "name": "engine", "image": "engine:latest", "args": args,
                           "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                                   {"name": "ENGINE_TERM_GRACE", "value": "1"}],
                           "securityContext": container_sc or {}, "volumeMounts": mounts}],
                           "volumes": vols}}}, **spec)})

        def status(name):
            return json.loads(self.kubectl("get", "job", name, "-o", "json").stdout).get("status") or {}

        def pods(name):
            return json.loads(self.kubectl("get", "pods", "-l", f"job-name={name}", "-o", "json").stdout)["items"]

        def finished(name):
            return poll(lambda: any(c["type"] in ("Complete", "Failed") for c in status(name).get("conditions", [])), 60)

        # A bad command (exit 2) matches FailJob: one pod, the Job failed at once, the reason said.
        job("bad-args", ["run", "/no/such/runbook.lua"])
        self.assertTrue(finished("bad-args"))
        st = status("bad-args")
        self.assertEqual([(c["type"], c["reason"]) for c in st["conditions"]], [("Failed", "PodFailurePolicy")])
        self.assertIn("exited with code 2, matching the FailJob rule at index 1", st["conditions"][0]["message"])
        self.assertEqual(len(pods("bad-args")), 1)
        self.assertIn("no such runbook file", self.kubectl("logs", pods("bad-args")[0]["metadata"]["name"]).stdout)
        self.assertRegex(self.kubectl("get", "jobs").stdout, r"bad-args\s+Failed\s+0/1")

        # A runbook from a ConfigMap that is not there yet: the pod waits, as a kubelet's would.
        job("wait", ["run", "/etc/engine/runbook/wait.lua"], volumes=("runbook",))
        self.assertTrue(poll(lambda: "ContainerCreating" in self.kubectl("get", "pods", "-l", "job-name=wait").stdout, 20))
        apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "runbook", "namespace": "default"},
               "data": {"wait.lua": 'return runbook { name = "wait", run = function()\n'
                                    '  log.info("on", { node = os.getenv("NODE_NAME") })\n'
                                    '  if os.getenv("NODE_NAME") == "w1" then sleep(300) end\nend }\n'}})
        self.assertTrue(poll(lambda: "on node=w1" in self.kubectl("logs", pods("wait")[0]["metadata"]["name"], check=False).stdout, 30))
        first = pods("wait")[0]["metadata"]["name"]
        # Its node drained: the eviction sends SIGTERM; the pod is no failure (DisruptionTarget,
        # Ignore); the next pod starts once the first has ended, elsewhere, and finishes.
        d = self.kubectl("drain", "w1", "--pod-selector=job-name=wait", "--timeout=60s", check=False)
        try:
            self.assertEqual(d.returncode, 0, d.stderr)
            self.assertTrue(finished("wait"))
        finally:  # after the Job ended: the next pod had only w2 and w3 to go to
            self.kubectl("uncordon", "w1")
        st = status("wait")
        self.assertEqual([c["type"] for c in st["conditions"]], ["SuccessCriteriaMet", "Complete"])
        self.assertEqual((st["succeeded"], st["failed"]), (1, 0))
        events = json.loads(self.kubectl("get", "events", "-o", "json").stdout)["items"]
        made = [e["message"] for e in sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))
                if e["involvedObject"]["name"] == "wait"]
        self.assertEqual(len(made), 2, made)
        self.assertEqual(made[0], f"Created pod: {first}")
        second = pods("wait")[0]
        self.assertNotEqual(second["spec"]["nodeName"], "w1")
        with open(f"{self.dir}/pods/default/{first}/log") as f:
            log1 = f.read()
        self.assertIn("terminated: no new hosts start", log1)
        self.assertIn("run finished exit=130", log1)
        ended = re.search(r"^(\S+) ERROR run finished", log1, re.M).group(1)
        started = re.search(r"^(\S+) INFO  run started", self.kubectl("logs", second["metadata"]["name"]).stdout, re.M).group(1)
        self.assertLessEqual(ended, started, "the next pod started before the last one ended")
        self.assertFalse(os.path.exists("/etc/engine"), "a pod's volume was made on the host")
        # They ran the image (scripts/image): its root, its state directory.
        self.assertTrue(os.path.exists(f"{self.dir}/pods/default/{first}/rootfs/usr/bin/engine"))
        self.assertIn("run started dir=/var/lib/engine/runs/", log1)

        # The pod's securityContext, held as a kubelet holds it (deploy/'s Jobs run with one): the
        # run's state was written by the image's user, not root; runAsNonRoot refuses root; a
        # read-only root takes no state directory, an emptyDir over it does.
        self.assertEqual(os.stat(f"{self.dir}/pods/default/{first}/rootfs/var/lib/engine/runs").st_uid, 65532)
        apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "quick", "namespace": "default"},
               "data": {"quick.lua": 'return runbook { name = "quick", run = function() log.info("quick done") end }\n'}})

        def secured(name, pod_sc, container_sc, home=False):
            job(name, ["run", "/etc/engine/quick/quick.lua", "--state-dir", "/var/lib/engine"], volumes=("quick",),
                pod_sc=pod_sc, container_sc=container_sc, home=home)

        secured("as-root", {"runAsNonRoot": True, "runAsUser": 0}, {})
        self.assertTrue(poll(lambda: "container has runAsNonRoot and image will run as root"
                             in self.kubectl("get", "pods", "-l", "job-name=as-root", "-o", "json").stdout, 20))
        self.kubectl("delete", "job", "as-root")
        secured("read-only", {"runAsNonRoot": True, "fsGroup": 65532}, {"readOnlyRootFilesystem": True})
        self.assertTrue(finished("read-only"))
        ro = self.kubectl("logs", pods("read-only")[0]["metadata"]["name"]).stdout
        self.assertIn("error: state directory /var/lib/engine/runs: Read-only file system", ro)
        secured("read-only-home", {"runAsNonRoot": True, "fsGroup": 65532}, {"readOnlyRootFilesystem": True}, home=True)
        self.assertTrue(finished("read-only-home"))
        self.assertEqual([c["type"] for c in status("read-only-home")["conditions"]], ["SuccessCriteriaMet", "Complete"])
        self.assertIn("quick done", self.kubectl("logs", pods("read-only-home")[0]["metadata"]["name"]).stdout)

    def test_zz_kubeadm_upgrade_apply_times_out_under_the_fault_then_changes_the_server_version(self):
        self.ssh("cp1", "sudo sed -i s/v1.33/v1.34/ /etc/apt/sources.list.d/kubernetes.list && "
                        "sudo apt-get install -y --allow-change-held-packages kubeadm=1.34.3-1.1")
        lab("fault", "cp1", "apiserver-phase-timeout", "--dir", self.dir)
        r = self.ssh("cp1", "sudo kubeadm upgrade apply v1.34.3 -y", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("static Pod hash for component kube-apiserver on Node cp1 did not change after 0m10s", r.stderr)
        # kubeadm's own timeout from an UpgradeConfiguration (v1beta4 timeouts), not the fixed default.
        self.ssh("cp1", "printf 'apiVersion: kubeadm.k8s.io/v1beta4\\nkind: UpgradeConfiguration\\ntimeouts:\\n"
                        "  upgradeManifests: 2s\\n' | sudo tee /etc/kubernetes/tmp/upgrade.yaml")
        # etcd is held back here: its real process restarts first, and on a loaded machine that alone
        # can take more than 2 s, which would time out on etcd, not on the apiserver the fault holds.
        r = self.ssh("cp1", "sudo kubeadm upgrade apply v1.34.3 --config /etc/kubernetes/tmp/upgrade.yaml "
                            "--etcd-upgrade=false -y", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("static Pod hash for component kube-apiserver on Node cp1 did not change after 0m2s", r.stderr)
        self.assertIn("image: registry.k8s.io/kube-apiserver:v1.33.1",
                      self.ssh("cp1", "sudo cat /etc/kubernetes/manifests/kube-apiserver.yaml").stdout)  # rolled back
        self.assertIn("v1.33.1", self.kubectl("version").stdout.splitlines()[-1])
        lab("clear", "cp1", "apiserver-phase-timeout", "--dir", self.dir)
        r = self.ssh("cp1", "sudo kubeadm upgrade apply v1.34.3 -y")
        self.assertIn('SUCCESS! A control plane node of your cluster was upgraded to "v1.34.3"', r.stdout)
        self.assertEqual(self.kubectl("version").stdout.splitlines()[-1], "Server Version: v1.34.3")
        cm = json.loads(self.kubectl("get", "cm", "-n", "kube-system", "kubeadm-config", "-o", "json").stdout)
        self.assertIn("kubernetesVersion: v1.34.3", cm["data"]["ClusterConfiguration"])


class SideBySideTest(unittest.TestCase):
    """Two labs on one machine: the first one down leaves the second running. The first made the
    host's mount points (/etc/kubernetes, ...); removing them while the second's nodes bound them
    detached those mounts, and its etcd lost its certificates."""

    def up(self, subnet):
        d = tempfile.mkdtemp(prefix="engine-lab-side-")
        self.addCleanup(lambda: os.path.exists(d) and lab("down", "--dir", d, check=False))
        lab("up", "--dir", d, "--subnet", subnet, "--control-planes", "1", "--workers", "0")
        with open(f"{d}/lab.json") as f:
            return d, json.load(f)

    def test_the_first_lab_down_leaves_the_second_one_whole(self):
        first, _ = self.up("127.0.23")
        second, st = self.up("127.0.24")
        lab("down", "--dir", first)
        n = st["nodes"][0]
        r = subprocess.run(["ssh", "-i", f"{second}/ssh/id_ed25519", "-o", f"UserKnownHostsFile={second}/known_hosts",
                            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-p", str(st["ssh_port"]),
                            f"enginetest@{n['ip']}", "sudo -n cat /etc/kubernetes/pki/etcd/server.crt /var/lib/engine-lab/node.json"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("BEGIN CERTIFICATE", r.stdout)
        lab("down", "--dir", second)
        # The last one down removes what labs made, unless a lab of another test still binds it.
        from lab.cli import MADE_BY_LAB, MOUNT_POINTS
        from lab.procs import mounted_anywhere
        left = [p for p in MOUNT_POINTS if os.path.exists(os.path.join(p, MADE_BY_LAB))]
        self.assertEqual(set(left), mounted_anywhere(set(left)))


if __name__ == "__main__":
    unittest.main()
