"""runbooks/etcd-to-systemd.lua in the lab (seed 003, flow A): a stacked-etcd cluster moved to
systemd one member at a time, the etcd leader last, every member keeping its ID and the data; kubeadm
pointed at the external etcd with every ClusterConfiguration field kept (IR-1) and then upgraded
with it; the rollback of a node whose systemd etcd fails, the old etcd still holding the data
directory, SIGKILL and resume, and the bad inputs the precheck refuses with nothing changed."""
import base64
import glob
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

from labtest import ENGINE, ROOT, lab  # noqa: E402
MIGRATE = os.path.join(ROOT, "runbooks", "etcd-to-systemd.lua")
UPGRADE = os.path.join(ROOT, "runbooks", "k8s-upgrade.lua")
DOCTOR = os.path.join(ROOT, "runbooks", "doctor.lua")
RENEW = os.path.join(ROOT, "runbooks", "cert-renew.lua")
SUBNET = "127.0.70"


def read(path):
    with open(path) as f:
        return f.read()


class Lab:
    """One lab, as the tests see it: the engine run against it, a node's shell, its etcd."""

    def __init__(self, workers=1, subnet=SUBNET, empty=False, control_planes=3):
        self.dir = tempfile.mkdtemp(prefix="engine-etcdmig-")
        # Static pods start in half the default time: the same steps, less waiting. (The kubelet's
        # NotReady moment stays: a Ready posted in the second of the restart does not count as after it.)
        lab("up", "--dir", self.dir, "--subnet", subnet, "--control-planes", str(control_planes), "--workers", str(workers),
            "--pod-start-delay", "0.5",
            *(["--empty"] if empty else []))
        with open(f"{self.dir}/lab.json") as f:
            self.state = json.load(f)
        self.cps = [n for n in self.state["nodes"] if n["role"] == "control-plane"]

    def down(self):
        lab("down", "--dir", self.dir)

    def engine(self, *args, inventory=None, timeout=600):
        where = [] if args[0] == "resume" else ["-i", inventory or f"{self.dir}/inventory.yml"]
        return subprocess.run([ENGINE, *args, *where, "--kubeconfig", f"{self.dir}/kubeconfig", "--state-dir", f"{self.dir}/state"],
                              capture_output=True, text=True, timeout=timeout)

    def migrate(self, *extra, inventory=None):
        return self.engine("run", MIGRATE, "-e", f"snapshot_dir={self.dir}/snapshots", *extra, inventory=inventory)

    def root(self, name):
        return f"{self.dir}/nodes/{name}/root"

    def ssh(self, name, cmd, check=True):
        n = next(x for x in self.state["nodes"] if x["name"] == name)
        r = subprocess.run(["ssh", "-i", f"{self.dir}/ssh/id_ed25519", "-o", f"UserKnownHostsFile={self.dir}/known_hosts",
                            "-o", "BatchMode=yes", "-p", str(self.state["ssh_port"]), f"enginetest@{n['ip']}", cmd],
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"{name}: {cmd}: {r.stdout}{r.stderr}")
        return r

    def etcd(self, name, path, body=None):
        """etcd's JSON gateway on a member, with cp1's healthcheck client certificate."""
        pki = f"{self.root('cp1')}/etc/kubernetes/pki/etcd"
        ctx = ssl.create_default_context(cafile=f"{pki}/ca.crt")
        ctx.load_cert_chain(f"{pki}/healthcheck-client.crt", f"{pki}/healthcheck-client.key")
        ip = next(x["ip"] for x in self.cps if x["name"] == name)
        conn = http.client.HTTPSConnection(ip, 2379, context=ctx, timeout=10)
        conn.request("POST", path, json.dumps(body or {}), {"Content-Type": "application/json"})
        data = json.loads(conn.getresponse().read())
        conn.close()
        return data

    def members(self):
        return {m["name"]: m["ID"] for m in self.etcd("cp1", "/v3/cluster/member/list")["members"]}

    def leader(self):
        lead = self.etcd("cp1", "/v3/maintenance/status")["leader"]
        return next(n for n, i in self.members().items() if i == lead)

    def put(self, key, value):
        b = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
        self.etcd("cp1", "/v3/kv/put", {"key": b(key), "value": b(value)})

    def get(self, name, key, serializable=False):
        """key's value on the member (serializable: its own copy, no leader asked)."""
        kvs = self.etcd(name, "/v3/kv/range", {"key": base64.b64encode(key.encode()).decode(),
                                               **({"serializable": True} if serializable else {})}).get("kvs", [])
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None

    def unit(self, name):
        active = self.ssh(name, "sudo systemctl is-active etcd", check=False).stdout.strip()
        enabled = self.ssh(name, "sudo systemctl is-enabled etcd", check=False).stdout.strip()
        return active, enabled

    def manifest(self, name):
        return os.path.exists(f"{self.root(name)}/etc/kubernetes/manifests/etcd.yaml")

    def etcd_starts(self, name):
        """How many times etcd.service's etcd started on the node (its log, as journalctl shows it)."""
        try:
            with open(f"{self.root(name)}/var/log/etcd.log", errors="replace") as f:
                return f.read().count("etcdmain: etcd Version")
        except OSError:
            return 0

    def run_logs(self, runbook="etcd-to-systemd"):
        out = []
        for path in sorted(glob.glob(f"{self.dir}/state/runs/*{runbook}*/run.log")):
            with open(path) as f:
                out += [json.loads(line) for line in f if line.strip()]
        return out

    def run_killed_when(self, runbook, reached, *extra, timeout=240):
        """engine run RUNBOOK (a path) on the lab with extra's arguments, SIGKILLed with its whole
        process group as soon as reached(the run's log entries so far) holds. → the run's id, or
        None when the run ended first or did not get there in time (then it is killed all the same)."""
        name = os.path.basename(runbook)[:-len(".lua")]
        # This run's directory is the one that was not there before: a run started in the same
        # second as the one before it (a dry run) sorts by its random suffix, either way.
        earlier = set(glob.glob(f"{self.dir}/state/runs/*{name}*/run.log"))
        p = subprocess.Popen([ENGINE, "run", runbook, *extra, "-i", f"{self.dir}/inventory.yml", "--kubeconfig",
                              f"{self.dir}/kubeconfig", "--state-dir", f"{self.dir}/state"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        deadline, killed = time.monotonic() + timeout, False
        while time.monotonic() < deadline and p.poll() is None:
            if reached(self.run_logs(name)):
                killed = True
                break
            time.sleep(0.05)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        if not killed:
            return None
        ours = sorted(set(glob.glob(f"{self.dir}/state/runs/*{name}*/run.log")) - earlier)
        return os.path.basename(os.path.dirname(ours[-1]))

    def cluster_configuration(self):
        out = subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", "-n", "kube-system", "get", "configmap",
                              "kubeadm-config", "-o", "json"], capture_output=True, text=True, timeout=60, check=True)
        return yaml.safe_load(json.loads(out.stdout)["data"]["ClusterConfiguration"])


def order_of_migration(lab_):
    """Who the runbook migrates in which order: the non-leaders by name, the etcd leader last."""
    leader = lab_.leader()
    return sorted(n["name"] for n in lab_.cps if n["name"] != leader) + [leader]


class Migration(unittest.TestCase):
    def test_1_the_whole_migration_then_a_kubeadm_upgrade_on_external_etcd(self):
        lb = Lab()
        self.addCleanup(lb.down)
        before = lb.members()
        leader = lb.leader()
        order = order_of_migration(lb)
        lb.put("/engine-test/marker", "written before the migration")
        cc_before = lb.cluster_configuration()
        t0 = time.monotonic()
        r = lb.migrate()
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-4000:])
        print(f"\n  etcd-to-systemd in the lab: {took:.1f}s", file=sys.stderr)
        self.assertIn("Every etcd member runs under systemd", r.stdout)
        # One at a time, the etcd leader last; every member the same member, every key still there.
        moved = [e["host"] for e in lb.run_logs() if e["msg"] == "etcd runs under systemd"]
        self.assertEqual(moved, order, r.stdout[-2000:])
        self.assertEqual(moved[-1], leader)
        self.assertEqual(lb.members(), before)
        for n in lb.cps:
            name = n["name"]
            self.assertEqual(lb.unit(name), ("active", "enabled"), name)
            self.assertFalse(lb.manifest(name), f"{name} still has etcd.yaml in manifests/")
            self.assertTrue(os.path.exists(f"{lb.root(name)}/etc/kubernetes/engine-backup/etcd.yaml"))
            self.assertEqual(lb.get(name, "/engine-test/marker"), "written before the migration")
            self.assertEqual(lb.etcd_starts(name), 1, name)
            st = os.stat(f"{lb.root(name)}/var/lib/etcd/member")
            self.assertEqual(st.st_uid, int(subprocess.check_output(["id", "-u", "etcd"])))
            env = read(f"{lb.root(name)}/etc/etcd/etcd.env")
            self.assertIn(f"ETCD_NAME={name}\n", env)
            self.assertIn("ETCD_INITIAL_CLUSTER_STATE=existing\n", env)
            self.assertIn(f"ETCD_LISTEN_CLIENT_URLS=https://{n['ip']}:2379\n", env)
            unit = read(f"{lb.root(name)}/etc/systemd/system/etcd.service")
            for line in ("User=etcd", "EnvironmentFile=/etc/etcd/etcd.env", "Restart=always", "LimitNOFILE=65536"):
                self.assertIn(line + "\n", unit)
            # The API servers use the external etcd, and kept their other flags (IR-1).
            api = read(f"{lb.root(name)}/etc/kubernetes/manifests/kube-apiserver.yaml")
            self.assertIn("--etcd-servers=" + ",".join(f"https://{c['ip']}:2379" for c in lb.cps), api)
            self.assertIn("--profiling=false", api)
            self.assertIn("--audit-log-maxage=30", api)
            self.assertIn(f"--advertise-address={n['ip']}", api)
        # kubeadm-config: external etcd, every other field as it was (IR-1).
        cc = lb.cluster_configuration()
        self.assertEqual(cc["etcd"]["external"]["endpoints"], [f"https://{c['ip']}:2379" for c in lb.cps])
        self.assertEqual(cc["etcd"]["external"]["certFile"], "/etc/kubernetes/pki/apiserver-etcd-client.crt")
        self.assertNotIn("local", cc["etcd"])
        for field in ("kubernetesVersion", "imageRepository", "certificatesDir", "networking", "dns", "apiServer",
                      "controlPlaneEndpoint", "clusterName"):
            self.assertEqual(cc[field], cc_before[field], field)

        # systemd keeps it running: a killed etcd comes back (Restart=always).
        name = order[0]
        with open(f"{lb.root(name)}/var/lib/engine-lab/units/etcd.service.main") as f:
            os.kill(int(f.read()), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and lb.etcd_starts(name) < 2:
            time.sleep(0.5)
        self.assertEqual(lb.etcd_starts(name), 2)
        while time.monotonic() < deadline and lb.unit(name)[0] != "active":
            time.sleep(0.5)
        self.assertEqual(lb.unit(name)[0], "active")

        # Run again: every operation already holds; nothing moves or restarts.
        again = lb.migrate()
        self.assertEqual(again.returncode, 0, again.stdout[-3000:] + again.stderr[-3000:])
        self.assertIn("etcd under systemd: already so", again.stdout)
        self.assertIn("kubeadm-config names external etcd: already so", again.stdout)
        self.assertEqual(lb.etcd_starts(name), 2)

        # Certificates renewed under systemd's etcd: kubeadm keeps the key files, so etcd (user etcd)
        # still reads its keys, and serves the renewed certificates without a restart.
        renew = lb.engine("run", RENEW)
        self.assertEqual(renew.returncode, 0, renew.stdout[-4000:] + renew.stderr[-4000:])
        for n in lb.cps:
            for key in ("server.key", "peer.key"):
                st = os.stat(f"{lb.root(n['name'])}/etc/kubernetes/pki/etcd/{key}")
                self.assertEqual((oct(st.st_mode & 0o777), st.st_gid), ("0o640", int(subprocess.check_output(["id", "-g", "etcd"]))),
                                 f"{n['name']} {key}")
        self.assertEqual(lb.members(), before)
        self.assertEqual(lb.etcd_starts(name), 2)

        # The cluster upgrades with its external etcd: kubeadm leaves etcd alone. With the lab's
        # inventory alone (its Prometheus and Pushgateway), and no quiet_hours override: the
        # migration flapped no node (the runs' own kubelet restarts do not count).
        up = lb.engine("run", UPGRADE, "-e", "version=1.33.5", "-e", "kind=patch", "-e", f"snapshot_dir={lb.dir}/snapshots")
        self.assertEqual(up.returncode, 0, up.stdout[-4000:] + up.stderr[-4000:])
        self.assertIn("The cluster runs v1.33.5", up.stdout)
        # The lab's etcd 3.4 under systemd is kubeadm's no more: the upgrade says it is behind.
        self.assertIn("etcd 3.4.23 under systemd is behind the 3.5 kubeadm ships for v1.33", up.stdout)
        for n in lb.cps:
            self.assertFalse(lb.manifest(n["name"]), "kubeadm upgrade brought an etcd manifest back")
            api = read(f"{lb.root(n['name'])}/etc/kubernetes/manifests/kube-apiserver.yaml")
            self.assertIn("kube-apiserver:v1.33.5", api)
            self.assertIn("--etcd-servers=" + ",".join(f"https://{c['ip']}:2379" for c in lb.cps), api)
        self.assertEqual(lb.members(), before)
        self.assertEqual(lb.cluster_configuration()["etcd"]["external"]["endpoints"], cc["etcd"]["external"]["endpoints"])

    def test_2_the_old_etcd_holding_the_data_directory_then_a_failing_unit_each_roll_back_and_stop_the_run(self):
        # Two faults in one lab, each met by the run in turn and resumed past once fixed.
        lb = Lab(workers=0)
        self.addCleanup(lb.down)
        before = lb.members()
        first, second, third = order_of_migration(lb)
        lab("fault", first, "etcd-old-holds-datadir", "--dir", lb.dir)
        lab("fault", second, "etcd-unit-fails", "--dir", lb.dir)
        # 1. The first node's static-pod etcd does not let go of the data directory: no second
        # etcd is started on it, the node is rolled back, the run stops before the others.
        r = lb.migrate("-e", "stop_timeout=6s", "-e", "health_timeout=20s")
        self.assertEqual(r.returncode, 1, r.stdout[-3000:] + r.stderr[-3000:])
        out = r.stdout + r.stderr
        self.assertIn(f"{first}: the static Pod's etcd still holds /var/lib/etcd after 6s", out)
        self.assertIn("not starting a second etcd on it", out)
        self.assertIn("Rolled back", out)
        self.assertEqual(len(re.findall(r"INFO  etcd snapshot", out)), 1, out)  # said once, where it was taken
        self.assertEqual(lb.etcd_starts(first), 0)  # etcd.service never ran
        self.assertTrue(lb.manifest(first))
        self.assertEqual(lb.members(), before)
        self.assertEqual(str(lb.etcd(first, "/v3/maintenance/status")["header"]["member_id"]), before[first])
        for n in (second, third):
            self.assertTrue(lb.manifest(n))
            self.assertEqual(lb.etcd_starts(n), 0)
        run_id = re.search(r"engine resume (\S+)", out).group(1)
        # 2. Resumed once the old etcd lets go: the first migrates; the second's etcd.service fails
        # to start, and that node is rolled back to its static Pod.
        lab("clear", first, "etcd-old-holds-datadir", "--dir", lb.dir)
        r = lb.engine("resume", run_id)
        self.assertEqual(r.returncode, 1, r.stdout[-3000:] + r.stderr[-3000:])
        out = r.stdout + r.stderr
        self.assertIn("etcd snapshot taken before the resume", out)  # not taken again; which one it holds
        self.assertIn(f"{second}: systemctl start etcd exited 1", out)
        self.assertIn("permission denied", out)  # the unit's own journal, for the operator
        self.assertIn("Rolled back: etcd.service is stopped and disabled, the static Pod manifest is back", out)
        self.assertIn(f"engine resume {run_id}", out)
        # The first stays migrated and healthy, the second is its static Pod again, the third untouched.
        self.assertEqual(lb.unit(first), ("active", "enabled"))
        self.assertFalse(lb.manifest(first))
        self.assertTrue(lb.manifest(second))
        self.assertIn(lb.unit(second)[0], ("inactive", "failed"))
        self.assertEqual(lb.unit(second)[1], "disabled")
        self.assertTrue(lb.manifest(third))
        self.assertEqual(lb.etcd_starts(third), 0)
        self.assertEqual(lb.members(), before)
        health = lb.etcd(second, "/v3/maintenance/status")
        self.assertEqual(str(health["header"]["member_id"]), before[second])
        self.assertEqual(lb.cluster_configuration()["etcd"], {"local": {"dataDir": "/var/lib/etcd"}})
        # The cluster half migrated: doctor says so, and an upgrade (whose kubeadm would upgrade
        # static-Pod etcds that are not all there) refuses before it changes anything.
        split = (f"etcd runs under systemd on {first} while kubeadm-config says etcd.local (a static Pod on "
                 f"{', '.join(sorted([second, third]))}): an etcd-to-systemd.lua migration stopped midway")
        doc = lb.engine("run", DOCTOR)
        self.assertEqual(doc.returncode, 1, doc.stdout[-3000:] + doc.stderr[-3000:])
        self.assertIn("etcd-split", doc.stdout)
        self.assertIn(split, doc.stdout)
        up = lb.engine("run", UPGRADE, "-e", "version=1.34.3", "-e", "kind=minor", "--dry-run")
        self.assertEqual(up.returncode, 1, up.stdout[-3000:] + up.stderr[-3000:])
        self.assertIn("preflight failed; nothing was changed", up.stdout)
        self.assertIn(f"  - {split}", up.stdout)
        # 3. Fixed, resumed again: the rest is migrated, the first node not again.
        lab("clear", second, "etcd-unit-fails", "--dir", lb.dir)
        res = lb.engine("resume", run_id)
        self.assertEqual(res.returncode, 0, res.stdout[-4000:] + res.stderr[-4000:])
        for name in (first, second, third):
            self.assertEqual(lb.unit(name), ("active", "enabled"), name)
            self.assertFalse(lb.manifest(name))
        self.assertEqual(lb.etcd_starts(first), 1)
        self.assertEqual(lb.members(), before)
        moved = [e["host"] for e in lb.run_logs() if e["msg"] == "etcd manifest moved out of the kubelet's directory"]
        self.assertEqual(sorted(moved), sorted([first, first, second, second, third]))
        # 4. Later the unit fails on its next start (its key unreadable to the etcd user): doctor
        # names the node's etcd.service, in the words of its journal, beside the cluster's view.
        lab("fault", third, "etcd-unit-fails", "--dir", lb.dir)
        lb.ssh(third, "sudo systemctl restart etcd", check=False)
        doc = lb.engine("run", DOCTOR)
        self.assertEqual(doc.returncode, 1, doc.stdout[-3000:] + doc.stderr[-3000:])
        self.assertRegex(doc.stdout, rf"{third}\s+etcd-down\s+etcd.service is \w+ \(enabled\), and no etcd static Pod runs "
                                     r"here; its journal ends: .*server.key: permission denied")
        self.assertIn("see: systemctl status etcd; journalctl -u etcd -n 50", doc.stdout)

    def test_4_sigkill_mid_migration_then_resume_migrates_each_node_exactly_once(self):
        lb = Lab(workers=0)
        self.addCleanup(lb.down)
        before = lb.members()
        order = order_of_migration(lb)
        # Inside the second node's step, between the move and its gate.
        run_id = lb.run_killed_when(MIGRATE, lambda log: order[1] in [
            e["host"] for e in log if e["msg"] == "etcd manifest moved out of the kubelet's directory"])
        self.assertIsNotNone(run_id, "the run never reached the second node")
        res = lb.engine("resume", run_id)
        self.assertEqual(res.returncode, 0, res.stdout[-4000:] + res.stderr[-4000:])
        for name in order:
            self.assertEqual(lb.unit(name), ("active", "enabled"), name)
            self.assertEqual(lb.etcd_starts(name), 1, f"{name}: etcd.service started more than once")
        moved = [e["host"] for e in lb.run_logs() if e["msg"] == "etcd manifest moved out of the kubelet's directory"]
        self.assertEqual(sorted(moved), sorted(order))
        self.assertEqual(lb.members(), before)


class BadInput(unittest.TestCase):
    """The precheck refuses, names what is wrong, and nothing changes."""

    @classmethod
    def setUpClass(cls):
        cls.lab = Lab(workers=1)

    @classmethod
    def tearDownClass(cls):
        cls.lab.down()

    def assertUntouched(self):
        for n in self.lab.cps:
            self.assertTrue(self.lab.manifest(n["name"]))
            self.assertFalse(os.path.exists(f"{self.lab.root(n['name'])}/etc/etcd/etcd.env"))
            self.assertFalse(os.path.exists(f"{self.lab.root(n['name'])}/usr/local/bin/etcd"))
            self.assertEqual(self.lab.unit(n["name"])[0], "inactive")

    def inventory(self, edit):
        with open(f"{self.lab.dir}/inventory.yml") as f:
            inv = yaml.safe_load(f)
        edit(inv)
        path = f"{self.lab.dir}/inventory-edited.yml"
        with open(path, "w") as f:
            yaml.safe_dump(inv, f)
        return path

    def test_a_member_name_not_in_the_inventory(self):
        def rename(inv):
            cp = inv["all"]["children"]["k8s-cp"]["hosts"]
            cp["cp3-renamed"] = cp.pop("cp3")
        r = self.lab.migrate(inventory=self.inventory(rename))
        self.assertEqual(r.returncode, 1)
        out = r.stdout + r.stderr
        self.assertIn("precheck failed, nothing was changed", out)
        self.assertIn("no member named cp3-renamed", out)
        self.assertIn("member cp3", out)
        self.assertIn("etcd_member_name", out)
        self.assertUntouched()

    def test_a_kubernetes_upgrade_stopped_midway(self):
        # kubeadm upgrade apply on the first node moves kubeadm-config's kubernetesVersion on; the
        # others still run the old API server, which the migration's kubeadm would regenerate at it.
        cm = ["kubectl", "--kubeconfig", f"{self.lab.dir}/kubeconfig", "-n", "kube-system"]
        cc = self.lab.cluster_configuration()
        def put(version):
            c = dict(cc, kubernetesVersion=version)
            subprocess.run(cm + ["patch", "configmap", "kubeadm-config", "--type", "merge", "-p",
                                 json.dumps({"data": {"ClusterConfiguration": yaml.safe_dump(c)}})], check=True, capture_output=True, timeout=60)
        put("v1.33.5")
        self.addCleanup(put, cc["kubernetesVersion"])
        r = self.lab.migrate()
        self.assertEqual(r.returncode, 1)
        out = r.stdout + r.stderr
        self.assertIn("precheck failed, nothing was changed", out)
        for n in self.lab.cps:
            self.assertIn(f"{n['name']}: its kube-apiserver runs v1.33.1, and kube-system/kubeadm-config says kubernetesVersion "
                          "v1.33.5: kubeadm would regenerate it at v1.33.5. A Kubernetes upgrade stopped midway?", out)
            self.assertIn("kube-apiserver:v1.33.1", read(f"{self.lab.root(n['name'])}/etc/kubernetes/manifests/kube-apiserver.yaml"))
        self.assertUntouched()

    def test_a_node_whose_etcd_is_not_stacked(self):
        def add_worker(inv):
            inv["all"]["children"]["k8s-cp"]["hosts"]["w1"] = inv["all"]["children"]["k8s-worker"]["hosts"]["w1"]
        r = self.lab.migrate(inventory=self.inventory(add_worker))
        self.assertEqual(r.returncode, 1)
        out = r.stdout + r.stderr
        self.assertIn("w1: no etcd static Pod manifest", out)
        self.assertIn("is etcd stacked on this node?", out)
        self.assertUntouched()

    def test_a_version_other_than_the_running_one(self):
        r = self.lab.migrate("-e", "version=3.5.16")
        self.assertEqual(r.returncode, 1)
        self.assertIn("etcd runs 3.4.23 and version=3.5.16 was asked: this runbook migrates without upgrading", r.stdout + r.stderr)
        self.assertUntouched()

    def test_a_tarball_whose_checksum_does_not_match(self):
        r = self.lab.migrate("-e", "sha256=" + "0" * 64)
        self.assertEqual(r.returncode, 1)
        out = r.stdout + r.stderr
        self.assertIn("checksum mismatch: the download has sha256", out)
        self.assertIn("want " + "0" * 64, out)
        self.assertUntouched()
        for n in self.lab.cps:
            self.assertEqual(glob.glob(f"{self.lab.root(n['name'])}/var/cache/engine/etcd/*.tar.gz*"), [])

    def test_a_dry_run_shows_every_change_and_makes_none(self):
        # With an inventory that has no k8s-cp-leader group: the first control-plane host leads.
        r = self.lab.migrate("--dry-run", inventory=self.inventory(lambda inv: inv["all"]["children"].pop("k8s-cp-leader")))
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertIn("would move /etc/kubernetes/manifests/etcd.yaml to /etc/kubernetes/engine-backup/etcd.yaml", r.stdout)
        self.assertIn("would write /etc/etcd/etcd.env", r.stdout)
        self.assertIn("ETCD_INITIAL_CLUSTER_STATE=existing", r.stdout)
        self.assertIn("-     dataDir: /var/lib/etcd", r.stdout)  # the ClusterConfiguration's diff
        self.assertIn("+     endpoints:", r.stdout)
        self.assertIn("run kubeadm init phase control-plane apiserver --config /etc/kubernetes/engine-external-etcd-cp1.yaml",
                      r.stdout)
        self.assertUntouched()

    def test_maintenance_timers_need_etcd_under_systemd(self):
        r = self.lab.engine("run", os.path.join(ROOT, "runbooks", "etcd-maintenance.lua"))
        self.assertEqual(r.returncode, 1)
        out = r.stdout + r.stderr
        self.assertIn("precheck failed, nothing was changed", out)
        self.assertIn("cp1: no /usr/local/bin/etcd and etcdctl: move etcd to systemd first (etcd-to-systemd.lua)", out)
        for n in self.lab.cps:
            self.assertFalse(os.path.exists(f"{self.lab.root(n['name'])}/etc/systemd/system/etcd-defrag.timer"))

    def test_z_an_unhealthy_member_before_the_start(self):
        pods = f"{self.lab.root('cp2')}/var/lib/kubelet/pods.json"
        with open(pods) as f:
            pid = json.load(f)["etcd"]["pid"]
        os.kill(pid, signal.SIGKILL)
        try:
            r = self.lab.migrate("-e", "health_timeout=10s")
            self.assertEqual(r.returncode, 1)
            out = r.stdout + r.stderr
            self.assertIn("precheck failed, nothing was changed", out)
            self.assertIn("etcd: cp2 unhealthy", out)
            self.assertUntouched()
        finally:  # a restarted kubelet starts the static pod's etcd again
            self.lab.ssh("cp2", "sudo systemctl restart kubelet")


if __name__ == "__main__":
    unittest.main()
