"""runbooks/k8s-upgrade.lua end to end in the lab (3 control-plane + 3 worker nodes at 1.33.1 to
1.34.3), against the seeds' own faults; and runbooks/recover-static-pods.lua."""
import glob
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab.sshd import poll  # noqa: E402

from upgrade_lab import FROM, RECOVER, ROOT, TO, FreshLab  # noqa: E402


class UpgradeCase(FreshLab, unittest.TestCase):
    """A fresh lab for every test: an upgrade changes it for good."""

    # --- the tests ----------------------------------------------------------------------------
    def test_upgrade_1_33_1_to_1_34_3(self):
        # As the engine's own service account in the cluster, with deploy/rbac.yaml's least
        # privilege and nothing else: the whole upgrade needs no more (and may not delete pods).
        k = self.kubectl("apply", "--validate=false", "-f", os.path.join(ROOT, "deploy", "rbac.yaml"))
        self.assertEqual(k.returncode, 0, k.stderr)
        sa = "system:serviceaccount:engine:engine"
        self.lab("kubeconfig", sa, "--group", "system:serviceaccounts", "--out", f"{self.dir}/engine-sa.kubeconfig")
        can = self.kubectl("auth", "can-i", "delete", "pods", "-n", "shop", f"--as={sa}")
        self.assertEqual(can.stdout.strip(), "no", can.stderr)
        # Snapshots an earlier run left, and what is not one of them: with snapshot_keep=2, the new
        # snapshot and the newest old one stay, the two older go; nothing else is touched.
        snapdir = f"{self.dir}/snapshots"
        os.makedirs(snapdir)
        old = [f"etcd-2026010{i}T000000Z-cp1.db" for i in (1, 2, 3)]
        for i, name in enumerate(old):
            with open(f"{snapdir}/{name}", "wb") as f:
                f.write(b"old")
            os.utime(f"{snapdir}/{name}", (1_767_225_600 + i * 86400,) * 2)
        others = ["notes.txt", "etcd-20251201T000000Z-cp1.db.part", "etcd-link.db"]
        for name in others[:2]:
            with open(f"{snapdir}/{name}", "w") as f:
                f.write("keep me")
        os.symlink("notes.txt", f"{snapdir}/etcd-link.db")
        # The canary w1 alone, then 2 of the 3 workers at once; between workers the gate also waits
        # for shop/web's Deployment to have every replica ready again (its pods move as nodes drain).
        # A webhook that refuses: said, and the run goes on to the same end.
        r = self.upgrade("-e", "workers_at_once=67%", "-e", "wait_workloads=shop/deployment/web", "-e", "snapshot_keep=2",
                         "-e", "notify_url=http://127.0.0.1:9/hook", kubeconfig=f"{self.dir}/engine-sa.kubeconfig")
        self.assertNotIn("forbidden", r.stdout + r.stderr)
        self.assertIn("notification not sent (the run goes on)", r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assert_upgraded()
        rep = self.report(r.stdout)
        hosts = rep["hosts"]
        # One apt-cache policy per package check tells both what is installed and what the source
        # offers (its version table): no apt-cache madison before installing.
        execs = [s["name"] for s in rep["spans"] if s["kind"] == "exec" and s.get("host") == "w2"]
        self.assertIn("apt-cache policy 'kubeadm'", execs)
        self.assertFalse([e for e in execs if "madison" in e], execs)
        # The change is checked from its own command's output (the install ends with apt-cache
        # policy): one policy exec of its own per package step, the check before; no unhold. (The
        # kubelet and kubectl have two steps: downloaded ahead, installed in the turn.)
        self.assertEqual(execs.count("apt-cache policy 'kubeadm'"), 1, execs)
        self.assertEqual(execs.count("apt-cache policy 'kubelet' 'kubectl'"), 2, execs)
        self.assertEqual(execs.count("cat /etc/apt/sources.list.d/kubernetes.list"), 1, execs)
        self.assertFalse([e for e in execs if "unhold" in e], execs)
        # Every worker was prepared ahead (prepare_ahead), while cp2 and cp3 were upgraded: its apt
        # source, kubeadm and `kubeadm upgrade node` done before its turn began, not again in it.
        # cp2's and cp3's kubeadm too, once the node before had its own kubeadm upgrade done.
        def spans(host, what, kind="exec"):
            return [s for s in rep["spans"] if s["kind"] == kind and s.get("host") == host and what in s["name"]]
        for w, what in ((w, what) for w in ("w1", "w2", "w3") for what in ("kubeadm=", "kubeadm upgrade node")):
            done = spans(w, what)
            self.assertEqual(len(done), 1, done)
            self.assertLess(done[0]["end"], hosts[w]["start"], f"{w}'s {what} was not done ahead")
            self.assertGreater(done[0]["start"], hosts["cp1"]["start"] + hosts["cp1"]["seconds"])
        # The leader's own apt source and kubeadm, prepared beside the etcd snapshot once every
        # control-plane node's images are pulled (a pull that fails stops the run before any node
        # changes: test_y_...), and found done by its turn. (Whether they overlap the snapshot is the
        # lab's timing: here the snapshot takes about what the three pulls take.)
        source, done = spans("cp1", "/core:/stable:"), spans("cp1", "kubeadm=")
        self.assertEqual((len(source), len(done)), (1, 1), source + done)
        pulls = [s for s in rep["spans"] if s["kind"] == "exec" and "images pull" in s["name"]]
        self.assertEqual(len(pulls), 3, pulls)
        self.assertGreater(source[0]["start"], max(s["end"] for s in pulls))
        self.assertLess(done[0]["end"], spans("cp1", "cp1", "drain")[0]["start"])
        for cp, before in (("cp2", spans("cp1", "kubeadm upgrade apply")), ("cp3", spans("cp2", "kubeadm upgrade node"))):
            done = spans(cp, "kubeadm=")
            self.assertEqual(len(done), 1, done)
            self.assertLess(done[0]["end"], spans(cp, cp, "drain")[0]["start"], f"{cp}'s kubeadm was not done ahead")
            self.assertGreater(done[0]["start"], before[0]["end"])
        # Every node's kubelet and kubectl downloaded ahead (not installed), before its drain (the
        # leader's beside its own kubeadm upgrade apply): each node fetched each package once (the
        # lab logs each fetch), so its turn's install fetched none.
        for n in ("cp1", "cp2", "cp3", "w1", "w2", "w3"):
            with open(f"{self.dir}/nodes/{n}/root/var/log/apt/engine-lab-fetch.log") as f:
                self.assertEqual(sorted(line.split()[1] for line in f), ["kubeadm", "kubectl", "kubelet"], n)
            down = spans(n, "--download-only")
            self.assertEqual(len(down), 1, down)
            if n != "cp1":
                self.assertLess(down[0]["end"], spans(n, n, "drain")[0]["start"], f"{n}'s packages were not downloaded ahead")
        apply = spans("cp1", "kubeadm upgrade apply")[0]
        install = [s for s in spans("cp1", "kubelet=") if "--download-only" not in s["name"]][0]
        down = spans("cp1", "--download-only")[0]
        self.assertLess(apply["start"], down["start"])
        self.assertLess(down["start"], apply["end"], "the leader's download did not run beside its kubeadm upgrade apply")
        self.assertLess(down["end"], install["start"])
        canary_end = hosts["w1"]["start"] + hosts["w1"]["seconds"]
        for w in ("w2", "w3"):
            self.assertGreaterEqual(hosts[w]["start"], canary_end, f"{w} started before the canary w1 was done")
        self.assertIn("tainted node=w2 taint=engine.dev/upgrade-next:PreferNoSchedule", r.stdout)
        self.assertIn(f"The cluster runs {TO}:", r.stdout + r.stderr)
        snaps = sorted(set(os.listdir(snapdir)) - set(old) - set(others))
        self.assertEqual(len(snaps), 1, snaps)
        self.assertEqual(sorted(set(os.listdir(snapdir)) - set(snaps)), sorted([old[2]] + others))
        for gone in old[:2]:
            self.assertIn(f"old etcd snapshot removed keep=2 path={snapdir}/{gone}", r.stdout)
        path = f"{snapdir}/{snaps[0]}"
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        self.assertIn(f"sha256={sha}", r.stdout + r.stderr)  # the hash the run recorded is the file's
        st = subprocess.run(["etcdctl", "snapshot", "status", path, "-w", "json"], capture_output=True, text=True,
                            env=dict(os.environ, ETCDCTL_API="3"), timeout=30)
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertGreater(json.loads(st.stdout)["totalKey"], 0)
        cm = json.loads(self.kubectl("get", "cm", "-n", "kube-system", "kubeadm-config", "-o", "json").stdout)
        self.assertIn(f"kubernetesVersion: {TO}", cm["data"]["ClusterConfiguration"])
        # The run's report.html, opened in headless Chromium: a lane per node with its steps, the
        # drains and the commands on the timeline.
        run_id = re.search(r" run=(\S+)", r.stdout).group(1)
        html = f"{self.dir}/state/runs/{run_id}/report.html"
        browser = shutil.which("chromium")
        if browser:
            dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "file://" + html],
                                 capture_output=True, text=True, timeout=120).stdout
            for n in ("cp1", "cp2", "cp3", "w1", "w2", "w3"):
                self.assertIn(f'class="lane" data-host="{n}"', dom)
            self.assertGreaterEqual(dom.count('class="bar drain"'), 3)  # the workers at least
            self.assertGreater(dom.count('class="bar exec"'), 6)
            self.assertGreater(dom.count('class="bar step done"'), 6)
            self.assertNotIn('class="bar step failed"', dom)

    def test_stale_manifest_bak_refused_and_recovered_then_unreachable_workers_skipped_and_resumed(self):
        # Two stories on one lab and run (each costs ~40 s): seed 000's stale manifest, then the workers SSH cannot reach.
        self.lab("fault", "cp2", "stale-manifest-bak")
        r = self.upgrade()
        self.assertEqual(r.returncode, 1)
        self.assertIn("preflight failed; nothing was changed", r.stderr)
        self.assertIn("cp2: /etc/kubernetes/manifests/kube-apiserver.yaml.bak is not an expected manifest", r.stderr)
        self.assertIn("(runbooks/recover-static-pods.lua)", r.stderr)
        self.assert_untouched()
        rec = self.engine("run", RECOVER, "-i", f"{self.dir}/inventory.yml", "--kubeconfig", f"{self.dir}/kubeconfig",
                          "--state-dir", f"{self.dir}/state")
        self.assertEqual(rec.returncode, 0, rec.stderr[-3000:])
        self.assertIn("moved out of the manifests directory files=kube-apiserver.yaml.bak", rec.stdout + rec.stderr)
        self.assertEqual(os.listdir(f"{self.dir}/nodes/cp2/root/etc/kubernetes/manifests").count("kube-apiserver.yaml.bak"), 0)
        backups = f"{self.dir}/nodes/cp2/root/etc/kubernetes/manifests.backups"
        self.assertEqual([os.listdir(f"{backups}/{d}") for d in os.listdir(backups)], [["kube-apiserver.yaml.bak"]])
        # Recovery restarted cp2's kubelet, marking the Node first: that Ready flap is an engine run's
        # own and quiet_hours does not count it. w2 flapping by itself (the kubelet NotReady, then
        # back) does count: preflight names it, when, and how to override.
        self.assertEqual(self.kubectl("get", "node", "cp2", "-o",
                                      "jsonpath={.metadata.annotations.engine\\.dev/kubelet-restarted}").stdout.split()[1],
                         re.search(r" run=(\S+)", rec.stdout).group(1))
        self.lab("fault", "w2", "node-notready")
        self.assertTrue(poll(lambda: "NotReady" in self.kubectl("get", "node", "w2").stdout, 30))
        self.lab("clear", "w2", "node-notready")
        self.assertTrue(poll(lambda: " Ready " in self.kubectl("get", "node", "w2").stdout, 30))
        r = self.upgrade()
        self.assertEqual(r.returncode, 1, r.stderr[-3000:])
        self.assertRegex(r.stderr, r"node w2 changed Ready state at \S+, within quiet_hours \(24 h\), not after an "
                                   r"engine run's kubelet restart; if that flap is understood, run again with -e quiet_hours=0")
        self.assertNotIn("node cp2 changed Ready state", r.stderr)
        self.assertRegex(r.stdout, r"not counted for quiet_hours .*node=cp2")
        # That flap understood (quiet_hours=0), the run goes on, with two workers unreachable:
        # skipped and listed, every other node upgraded; resumed, only they are upgraded.
        self.unreachable_workers_are_skipped_then_resume_upgrades_only_them("-e", "quiet_hours=0")

    def test_apiserver_phase_timeout_then_a_pdb_stop_the_run_where_they_are_and_each_resume_goes_on(self):
        # Two faults in one run, each stopping it where it meets them (one lab for both: an
        # upgrade changes it for good, and a lab costs its start and a control plane's upgrade).
        self.lab("fault", "cp1", "apiserver-phase-timeout")
        self.lab("fault", "w2", "pdb-blocks")
        # component_timeout reaches kubeadm itself (an UpgradeConfiguration's timeouts): it gives up
        # after those 7 seconds (etcd, restarted first, has them too), not its fixed default (the lab's 10).
        r = self.upgrade("-e", "component_timeout=7s", "-e", "drain_timeout=6s")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("static Pod hash for component kube-apiserver on Node cp1 did not change after 0m7s", out)
        self.assertIn("kubeadm upgrade apply v1.34.3 --config '/etc/kubernetes/tmp/engine-upgrade-configuration.yaml' --yes", out)
        # Where every node stands: the leader cordoned by this run, the rest not touched.
        self.assertRegex(out, r"cp1\s+Ready\s+v1\.33\.1\s+cordoned by this run")
        for n in ("cp2", "cp3", "w1", "w2", "w3"):
            self.assertRegex(out, rf"{n}\s+Ready\s+v1\.33\.1\s+not upgraded")
        self.assertEqual(self.kubectl("version").stdout.splitlines()[-1], f"Server Version: {FROM}")
        self.assertEqual(self.gauges()["k8s_upgrade_in_flight"], 1)  # the alert rules see a run in flight
        for n in ("cp2", "cp3", "w1", "w2", "w3"):  # not prepared ahead: that starts only after the leader's apply
            self.assertEqual(self.apt_history(n), "", n)
        run_id = self.run_id(out)
        self.lab("clear", "cp1", "apiserver-phase-timeout")
        # Resumed, the run finishes the control plane and the canary w1, then w2's budget of 0
        # holds its drain: the run stops there, with the run's own params (drain_timeout) kept.
        r = self.resume(run_id)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("drain of w2 timed out after 6s; the node stays cordoned; pods still there: shop/guarded-w2-0; "
                      "held by: shop/guarded-w2 (0 disruptions allowed)", out)
        nodes = self.nodes()
        self.assertEqual(nodes["w2"], {"version": FROM, "cordoned": True})
        self.assertEqual(nodes["w3"], {"version": FROM, "cordoned": False})  # the budget of 0 stopped the rollout
        self.assertEqual(nodes["w1"], {"version": TO, "cordoned": False})
        self.assertEqual({nodes[n]["version"] for n in ("cp1", "cp2", "cp3")}, {TO})
        self.assertIn("guarded-w2-0", self.kubectl("get", "pods", "-n", "shop").stdout)  # never deleted
        self.assertEqual(self.run_id(out), run_id)
        self.lab("clear", "w2", "pdb-blocks")
        r = self.resume(run_id)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assert_upgraded()  # every package on every node exactly once over the three runs

    def unreachable_workers_are_skipped_then_resume_upgrades_only_them(self, *extra):
        self.lab("fault", "w2", "node-notready")
        self.lab("fault", "w3", "ssh-down")
        self.assertTrue(poll(lambda: "NotReady" in self.kubectl("get", "node", "w2").stdout, 60))
        r = self.upgrade("-e", "skip_unreachable=true", *extra)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("2 worker(s) skipped, every other node upgraded: w2 (NotReady before the upgrade touched it), "
                      "w3 (ssh refused", out)
        nodes = self.nodes()
        self.assertEqual(nodes["w1"], {"version": TO, "cordoned": False})
        for w in ("w2", "w3"):
            self.assertEqual(nodes[w], {"version": FROM, "cordoned": False})
            self.assertEqual(self.apt_history(w), "")
        status = {n: (h["status"], h.get("error", "")) for n, h in self.report(out)["hosts"].items()}
        self.assertEqual(status["w2"], ("skipped", "skipped: NotReady before the upgrade touched it"))
        self.assertEqual(status["w3"][0], "skipped")
        self.assertEqual(self.upgrade_taints(), {})  # nothing left behind
        self.lab("clear", "w2", "node-notready")
        self.lab("clear", "w3", "ssh-down")
        # (resumed while w2 still reports NotReady, it would be skipped again: wait for its kubelet)
        self.assertTrue(poll(lambda: " Ready " in self.kubectl("get", "node", "w2").stdout, 60))
        r = self.resume(self.run_id(out))
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assert_upgraded()  # w1 and the control plane once: the resume upgraded only w2 and w3

    def receiver(self):
        """A local webhook receiver: the JSON bodies POSTed to it, in order."""
        got = []

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.shutdown)
        return f"http://127.0.0.1:{srv.server_address[1]}/hook", got

    def test_an_alert_between_workers_holds_the_rollout_until_it_clears(self):
        url, got = self.receiver()
        # w3 is an operator's, cordoned for its own maintenance: the run leaves it out with --limit.
        # The preflight lets its cordon be and says it stays at its version; so does the postflight,
        # which does not fail on it.
        self.assertEqual(self.kubectl("cordon", "w3").returncode, 0)
        p = self.start_upgrade("-e", f"notify_url={url}", "-e", "notify_format=json", "--limit", "!w3")
        # Fired while the control plane is upgraded: the first worker still goes (the gate is between
        # workers), the second waits for it.
        self.assertTrue(poll(lambda: self.nodes()["cp3"]["cordoned"], 240), "cp3 was never cordoned")
        self.lab("fault", "w1", "alert-firing")
        self.assertTrue(poll(lambda: self.nodes()["w1"]["version"] == TO and not self.nodes()["w1"]["cordoned"], 240))
        held_since = time.monotonic()
        while time.monotonic() - held_since < 8:  # the gate holds: w2 is not admitted
            self.assertEqual(self.nodes()["w2"], {"version": FROM, "cordoned": False})
            # tainted PreferNoSchedule since w1 started, so w1's evicted pods did not land on it
            self.assertEqual(self.taints()["w2"], ["engine.dev/upgrade-next:PreferNoSchedule"])
            time.sleep(0.5)
        self.assertIsNone(p.poll())
        self.lab("clear", "w1", "alert-firing")
        out, _ = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, out[-3000:])
        self.assertIn("gate holds admission", out)
        self.assertIn("LabFaultAlert (firing)", out)
        self.assert_upgraded(left_out=("w3",))
        self.assertIn("worker is not a host of this run (not in the inventory's k8s-worker group, or --limit left it out): "
                      "it stays at kubelet v1.33.1 node=w3", out)
        self.assertIn("worker left out of this run: it runs kubelet v1.33.1, not v1.34.3 node=w3", out)
        self.assertTrue(self.nodes()["w3"]["cordoned"])  # the operator's cordon, as it was
        # The webhook heard the start, the gate held (once, naming the alert and the next worker),
        # and the success, each with the run's id.
        self.assertEqual([g["event"] for g in got], ["start", "gate held", "success"], got)
        held = got[1]
        self.assertEqual(held["node"], "w2")
        self.assertIn("LabFaultAlert", held["message"])
        run_id = re.search(r" run=(\S+)", out).group(1)
        self.assertTrue(all(g["run"] == run_id and g["runbook"] == "k8s-upgrade to v1.34.3" for g in got), got)

    # --- the engine as a pod of a Job (issue 22, seed 004) ----------------------------------
    def apply(self, obj):
        k = subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", "apply", "--validate=false", "-f", "-"],
                           input=json.dumps(obj), capture_output=True, text=True, timeout=60)
        self.assertEqual(k.returncode, 0, k.stderr)

    def test_as_a_job_on_a_worker_it_is_evicted_by_its_own_drain_and_the_next_pod_finishes(self):
        # Installed as docs/in-cluster.md says: deploy/rbac.yaml and snapshots.yaml, the inventory as the pod sees its
        # files, the SSH key as a Secret, deploy/upgrade-job.yaml with the lab's gate settings. The
        # lab's Job controller and runtime (lab/k8sim/jobs.py, pods.py) do the rest, as a cluster would.
        import base64
        import yaml
        for manifest in ("rbac.yaml", "snapshots.yaml"):
            k = self.kubectl("apply", "--validate=false", "-f", os.path.join(ROOT, "deploy", manifest))
            self.assertEqual(k.returncode, 0, k.stderr)
        with open(f"{self.dir}/inventory.yml") as f:
            inv = yaml.safe_load(f)
        inv["all"]["vars"].update(ansible_ssh_private_key_file="/etc/engine/ssh/id_ed25519",
                                  ansible_ssh_common_args="-o UserKnownHostsFile=/etc/engine/ssh/known_hosts")
        self.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "engine-inventory", "namespace": "engine"},
                    "data": {"inventory.yml": yaml.safe_dump(inv)}})
        files = {}
        for name, path in (("id_ed25519", f"{self.dir}/ssh/id_ed25519"), ("known_hosts", f"{self.dir}/known_hosts")):
            with open(path, "rb") as f:
                files[name] = base64.b64encode(f.read()).decode()
        self.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "engine-ssh", "namespace": "engine"},
                    "type": "Opaque", "data": files})
        with open(os.path.join(ROOT, "deploy", "upgrade-job.yaml")) as f:
            job = yaml.safe_load(f)
        pod = job["spec"]["template"]["spec"]
        pod["terminationGracePeriodSeconds"] = 2
        c = pod["containers"][0]
        c["env"].append({"name": "ENGINE_TERM_GRACE", "value": "1"})
        a = self.args()
        # The lab's settings (gates, monitoring); version and kind are the Job's, and the snapshot
        # goes where the Job keeps it (the claim at snapshot_dir's default).
        for i in range(len(a) - 1):
            if a[i] == "-e" and not a[i + 1].startswith(("version=", "kind=", "snapshot_dir=")):
                c["args"] += ["-e", a[i + 1]]
        self.apply(job)
        name = job["metadata"]["name"]

        def job_status():
            got = json.loads(self.kubectl("get", "job", "-n", "engine", name, "-o", "json").stdout)
            return got.get("status") or {}
        self.assertTrue(poll(lambda: any(x["type"] in ("Complete", "Failed") for x in job_status().get("conditions", [])), 900),
                        "the Job did not finish")
        status = job_status()
        events = json.loads(self.kubectl("get", "events", "-n", "engine", "-o", "json").stdout)["items"]
        created = [e["message"].split(": ", 1)[1] for e in sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))
                   if e["involvedObject"]["name"] == name and e["reason"] == "SuccessfulCreate"]
        logs = []
        for p in created:
            with open(f"{self.dir}/pods/engine/{p}/log") as f:
                logs.append(f.read())
        self.assertEqual(len(created), 2, "\n\n".join(x[-3000:] for x in logs))
        self.assertEqual([x["type"] for x in status["conditions"]], ["SuccessCriteriaMet", "Complete"], status)
        self.assertEqual((status["succeeded"], status["failed"]), (1, 0))  # the eviction is no failure
        self.assertRegex(self.kubectl("get", "jobs", "-n", "engine").stdout, rf"{name}\s+Complete\s+1/1")
        first, second = logs
        # The first pod, on w1: w1 goes last, its own drain evicts it, it stops where the journal says.
        self.assertIn("this engine runs on this node: it is upgraded last among its kind node=w1", first)
        self.assertIn("[w1] cordoned", first)
        self.assertIn("terminated: no new hosts start", first)
        self.assertIn("exit=130", first)
        # The second, on another node: the same run resumed, the control plane not done again.
        self.assertIn("run resumed", second)
        self.assertNotIn("this engine runs on this node: it is upgraded last among its kind node=w1", second)
        self.assertNotIn("[cp1] [upgrade/staticpods]", second)
        self.assertIn("exit=0", second)
        self.assert_upgraded()  # every package on every node exactly once, w1 included; none cordoned
        names = self.kubectl("get", "configmaps", "-n", "engine", "-o", "name").stdout
        self.assertIn(f"configmap/engine-run-{name}-report", names)
        self.assertFalse(os.path.exists("/etc/engine") or os.path.exists("/usr/share/engine"),
                         "the pod's files are in its own mount namespace, not the host's")
        # The first pod's etcd snapshot outlived it, in the claim (deploy/snapshots.yaml), written
        # by the image's user (not root: the Job's securityContext, its root file system read-only).
        self.assertEqual(self.kubectl("get", "pvc", "-n", "engine", "engine-etcd-snapshots", "-o",
                                      "jsonpath={.status.phase}").stdout, "Bound")
        snaps = glob.glob(f"{self.dir}/pods/.claims/engine/engine-etcd-snapshots/etcd-*-cp1.db")
        self.assertEqual(len(snaps), 1, first[-2000:])
        self.assertEqual(os.stat(snaps[0]).st_uid, 65532)
        # Both pods ran the image: its engine, its runbooks, its state directory.
        for p, text in zip(created, logs):
            self.assertTrue(os.path.exists(f"{self.dir}/pods/engine/{p}/rootfs/usr/bin/engine"))
            self.assertRegex(text, r"run (started|resumed) dir=/var/lib/engine/\S*runs/")


# The read-only tests (one lab of their own) live beside this module; imported, they run with it
# (ctest runs `unittest test_upgrade`).
import test_upgrade_readonly  # noqa: E402
ReadOnly = test_upgrade_readonly.ReadOnly


if __name__ == "__main__":
    unittest.main()
