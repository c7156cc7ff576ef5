"""The Kubernetes API against the simulator (lab/k8sim), and the simulator's fidelity checked
with the real kubectl."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab.k8sim import fixture as fx  # noqa: E402

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(HERE, "../../build/bin/engine"))
HAVE_KUBECTL = shutil.which("kubectl") is not None

TEMPLATE = """
local k8s = require "engine.k8s"
local time = require "engine.time"
return runbook {
  name = "k8s-test",
  params = { kc = { type = "string" }, arg = { type = "string", default = "" } },
  run = function(p, inv)
    k8s.configure { kubeconfig = p.kc }
%s
  end,
}
"""


def base_objects():
    return [fx.namespace("default"), fx.namespace("kube-system"),
            fx.node("cp1", roles=["control-plane"]), fx.node("w1"), fx.node("w2"), fx.node("w3"),
            fx.daemonset("kube-proxy"),
            fx.pod("kube-proxy-w1", "w1", ns="kube-system", labels={"app": "kube-proxy"}, owner=("DaemonSet", "kube-proxy")),
            fx.pod("etcd-cp1", "cp1", ns="kube-system", mirror=True)]


class K8sTest(unittest.TestCase):
    objects = []

    def setUp(self):
        self.cluster = fx.Cluster(base_objects() + list(self.objects), ready_delay=0.3)
        self.tmp = tempfile.mkdtemp(prefix="engine-k8s-")

    def tearDown(self):
        self.cluster.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_lua(self, body, *extra, kubeconfig=None, timeout=120, env=None):
        path = os.path.join(self.tmp, f"t{time.monotonic_ns()}.lua")
        with open(path, "w") as f:
            f.write(TEMPLATE % body)
        return subprocess.run([ENGINE, "run", path, "-e", f"kc={kubeconfig or self.cluster.kubeconfig}",
                               "--state-dir", os.path.join(self.tmp, "state"), *extra],
                              capture_output=True, text=True, timeout=timeout, env=env)

    def ok(self, r):
        self.assertEqual(r.returncode, 0, f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
        return r.stdout


class TestGenericApi(K8sTest):
    def test_get_list_create_update_conflict_patch_delete(self):
        out = self.ok(self.run_lua("""
    local cm = assert(k8s.create({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c1", namespace = "default" },
      data = { a = "1" } }))
    local again, err = k8s.create({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c1" } })
    assert(again == nil and err == "conflict", tostring(err))
    local got = assert(k8s.get("configmaps", "c1"))
    got.data.b = "2"
    local updated = assert(k8s.update(got))
    got.data.c = "stale"
    local stale, err2 = k8s.update(got)  -- got carries the old resourceVersion
    assert(stale == nil and err2 == "conflict", tostring(err2))
    assert(k8s.patch("configmaps", "c1", { data = { m = "merge" } }))
    assert(k8s.patch("cm", "c1", { data = { s = "strategic" } }, { type = "strategic" }))
    assert(k8s.patch("ConfigMap", "c1", { { op = "add", path = "/data/j", value = "json" } }, { type = "json" }))
    assert(k8s.patch("configmaps", "c2", { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c2" },
      data = { x = "applied" } }, { type = "apply", field_manager = "test" }))
    local c1 = assert(k8s.get("configmaps", "c1"))
    assert(c1.data.a == "1" and c1.data.b == "2" and c1.data.m == "merge" and c1.data.s == "strategic" and c1.data.j == "json")
    assert(k8s.get("configmaps", "c2").data.x == "applied")
    assert(k8s.delete("configmaps", "c1"))
    local gone, err3 = k8s.get("configmaps", "c1")
    assert(gone == nil and err3 == "not found")
    local unknown, err4, msg4 = k8s.get("widgets", "x")
    assert(unknown == nil and err4 == "unknown kind", tostring(err4))
    print(msg4)
    print("crud ok")
"""))
        self.assertIn("crud ok", out)
        self.assertIn("the server has no resource 'widgets'", out)

    def test_a_read_only_runbook_reads_and_asks_but_writes_nothing(self):
        path = os.path.join(self.tmp, "ro.lua")
        with open(path, "w") as f:
            f.write(TEMPLATE.replace('name = "k8s-test",', 'name = "k8s-test", read_only = true,') % """
    assert(#assert(k8s.list("nodes")) == 4)
    assert(k8s.can({ verb = "list", resource = "pods" }) ~= nil)  -- a review is created to ask: allowed
    k8s.create({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "ro", namespace = "default" } })""")
        for dry in ([], ["--dry-run"]):  # a dry run shows writes without making them: refused there too
            r = subprocess.run([ENGINE, "run", path, "-e", f"kc={self.cluster.kubeconfig}", "--state-dir",
                                os.path.join(self.tmp, "state"), *dry], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("ro.lua:12: k8s POST /api/v1/namespaces/default/configmaps: refused, the runbook k8s-test is "
                          "declared read_only (it changes nothing)", r.stderr)
            self.assertIn("k8s-test changes nothing: fix the runbook, then run it again", r.stderr)
        self.assertNotIn("ro", [c["metadata"]["name"] for c in self.cluster.get("/api/v1/namespaces/default/configmaps")["items"]])

    def test_lists_are_paginated_and_whole(self):
        self.cluster.control("/_sim/objects", [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm{i:04d}", "namespace": "default",
                                                                  "labels": {"batch": "a" if i % 2 else "b"}}}
            for i in range(1200)])
        self.cluster.control("/_sim/stats/reset", {})
        self.ok(self.run_lua("""
    local items = assert(k8s.list("configmaps", { namespace = "default", limit = 500 }))
    assert(#items == 1200, #items)
    local a = assert(k8s.list("configmaps", { namespace = "default", label_selector = "batch=a" }))
    assert(#a == 600, #a)
"""))
        stats = self.cluster.control("/_sim/stats")
        self.assertEqual(stats.get("GET /api/v1/namespaces/default/configmaps"), 3 + 2)

    def test_64_bit_integers_survive_the_round_trip(self):
        self.ok(self.run_lua("""
    local big = 9007199254740993  -- 2^53 + 1: a double would round it
    assert(k8s.create({ apiVersion = "batch/v1", kind = "Job", metadata = { name = "j" }, spec = { activeDeadlineSeconds = big } }))
    local j = assert(k8s.get("jobs", "j"))
    assert(math.type(j.spec.activeDeadlineSeconds) == "integer" and j.spec.activeDeadlineSeconds == big)
"""))
        self.assertEqual(self.cluster.get("/apis/batch/v1/namespaces/default/jobs/j")["spec"]["activeDeadlineSeconds"],
                         9007199254740993)

    def test_retry_after_is_honoured(self):
        self.cluster.control("/_sim/faults", [{"path": "/version", "status": 429, "retry_after": 1, "count": 2}])
        out = self.ok(self.run_lua("""
    local t0 = time.monotonic()
    local v = assert(k8s.server_version())
    print(string.format("waited %.1f", time.monotonic() - t0), v.git_version)
"""))
        self.assertIn("v1.33.1", out)
        self.assertEqual(self.cluster.control("/_sim/stats")["GET /version"], 3)
        waited = float(out.split("waited ")[1].split()[0])
        self.assertGreaterEqual(waited, 1.9)  # two Retry-After: 1 were waited out, not hammered

    def test_server_errors_are_retried_and_then_reported(self):
        self.cluster.control("/_sim/faults", [{"path": "/api/v1/nodes/w1", "status": 503, "count": 20}])
        self.ok(self.run_lua("""
    local n, err = k8s.get("nodes", "w1")
    assert(n == nil and err == "server error", tostring(err))
"""))
        self.assertEqual(self.cluster.control("/_sim/stats")["GET /api/v1/nodes/w1"], 6)  # 1 + 5 retries

    def test_ready_asks_once_when_told_not_to_retry(self):
        # A probe of one route among several (kubeadm.api_through): a down API server said at once.
        self.cluster.control("/_sim/faults", [{"path": "/readyz", "status": 503, "count": 20}])
        out = self.ok(self.run_lua("""
    print("once:", k8s.ready { retry = false })
    print("retried:", k8s.ready())
    print("misuse:", pcall(k8s.ready, { retry = "no" }))
"""))
        self.assertIn("once:\tnil\tserver error", out)
        self.assertIn("retried:\tnil\tserver error", out)
        self.assertIn("misuse:\tfalse\tk8s.ready: retry must be a boolean", out)
        self.assertEqual(self.cluster.control("/_sim/stats")["GET /readyz"], 1 + 6)  # once, then 1 + 5 retries

    def test_a_watch_sees_changes_and_relists_after_410(self):
        self.ok(self.run_lua("""
    local items, rv = assert(k8s.list("nodes"))
    local w = assert(k8s.watch("nodes", { resource_version = rv }))
    assert(k8s.patch("nodes", "w2", { metadata = { labels = { zone = "b" } } }))
    local typ, obj = w:next(10)
    assert(typ == "MODIFIED" and obj.metadata.name == "w2" and obj.metadata.labels.zone == "b", tostring(typ))
    w:close()
"""))
        # A resourceVersion older than the server keeps: the watch ends "gone", and k8s.wait relists.
        # While the wait watches w3, other nodes change and the server compacts its history, so
        # that watch is told 410; then w3 gets the label the wait is for.
        self.cluster.control("/_sim/compact", {})
        kc, ca, server = self.cluster.kubeconfig, f"{self.cluster.dir}/ca.crt", self.cluster.server
        p = subprocess.Popen(["sh", "-c", f"sleep 1.5; kubectl --kubeconfig {kc} label node w2 a=1; "
                              f"kubectl --kubeconfig {kc} label node w1 b=1; "
                              f"curl -s --cacert {ca} -X POST -d '{{}}' {server}/_sim/compact; sleep 1.5; "
                              f"kubectl --kubeconfig {kc} label node w3 ready-for=upgrade"]
                             if HAVE_KUBECTL else ["true"])
        self.cluster.control("/_sim/stats/reset", {})
        out = self.ok(self.run_lua("""
    local old = assert(k8s.watch("nodes", { resource_version = "1" }))
    local typ, err = old:next(5)
    assert(typ == nil and err == "gone", tostring(err))
    print("gone ok")
""" + ("""
    local n = assert(k8s.wait("nodes", "w3", function(o) return (o.metadata.labels or {})["ready-for"] == "upgrade" end,
      { timeout = 30 }))
    print("waited for label")
""" if HAVE_KUBECTL else "")))
        p.wait()
        self.assertIn("gone ok", out)
        if HAVE_KUBECTL:
            self.assertIn("waited for label", out)
            # The first GET, and at least one relist after the 410.
            self.assertGreaterEqual(self.cluster.control("/_sim/stats").get("GET /api/v1/nodes/w3", 0), 2)


class TestNodes(K8sTest):
    objects = [fx.replicaset("web"),
               fx.pod("web-1", "w1", labels={"app": "web"}, owner=("ReplicaSet", "web")),
               fx.pod("web-2", "w2", labels={"app": "web"}, owner=("ReplicaSet", "web")),
               fx.pod("web-3", "w1", labels={"app": "web"}, owner=("ReplicaSet", "web")),
               fx.pdb("web", "web", min_available=2),
               fx.replicaset("solo"),
               fx.pod("solo-1", "w3", labels={"app": "solo"}, owner=("ReplicaSet", "solo")),
               fx.pdb("solo", "solo", min_available=1)]

    def test_nodes_and_server_version(self):
        out = self.ok(self.run_lua("""
    local v = assert(k8s.server_version())
    assert(v.git_version == "v1.33.1" and v.minor == "33")
    for _, n in ipairs(assert(k8s.nodes())) do
      print(n.name, n.ready, n.kubelet_version, n.memory_pressure, n.disk_pressure)
    end
"""))
        self.assertIn("w2\ttrue\tv1.33.1\tfalse\tfalse", out)

    def test_drain_waits_for_a_pdb_blocked_pod_until_its_replacement_is_ready(self):
        out = self.ok(self.run_lua("""
    local plan = assert(k8s.drain_plan("w1", { ignore_daemonsets = true }))
    assert(#plan.evict == 2 and #plan.skip == 1 and #plan.refuse == 0, #plan.evict)
    local r = assert(k8s.drain("w1", { ignore_daemonsets = true, timeout = 60, retry_interval = 0.5 }))
    assert(r.evicted == 2)
    for _, p in ipairs(assert(k8s.list("pods", { namespace = "default", label_selector = "app=web" }))) do
      assert(p.spec.nodeName ~= "w1", p.metadata.name .. " still on w1")
    end
    assert(k8s.uncordon("w1"))
"""))
        self.assertIn("eviction refused by a PodDisruptionBudget, retrying", out)
        node = self.cluster.get("/api/v1/nodes/w1")
        self.assertFalse(node["spec"].get("unschedulable"))
        # The evicted pods are the drain's detail: on the timeline as one drain, not in the recap.
        self.assertNotIn("RECAP", out)
        run = re.search(r" run=(\S+)", out).group(1)
        rep = json.load(open(os.path.join(self.tmp, "state", "runs", run, "report.json")))
        self.assertEqual(rep["hosts"], {})
        self.assertEqual([(s["kind"], s["name"], s["outcome"]) for s in rep["spans"] if s["kind"] == "drain"], [("drain", "w1", "ok")])

    def test_a_refused_eviction_is_retried_when_its_pdb_allows_not_after_retry_interval(self):
        # retry_interval longer than the drain's timeout: a drain that slept it out after the first
        # refusal (kubectl's way) would time out; the watch on the PDB retries once the
        # replacement pod is ready (the lab starts it in about a second).
        out = self.ok(self.run_lua("""
    local r, err, msg = k8s.drain("w1", { ignore_daemonsets = true, timeout = 20, retry_interval = 60 })
    assert(r, tostring(err) .. ": " .. tostring(msg))
    print("EVICTED", r.evicted)
    assert(k8s.uncordon("w1"))
"""))
        self.assertIn("eviction refused by a PodDisruptionBudget, retrying", out)
        self.assertIn("EVICTED\t2", out)

    def test_drain_timeout_leaves_the_node_cordoned_and_names_the_pod_and_pdb(self):
        out = self.ok(self.run_lua("""
    local r, err, msg, info = k8s.drain("w3", { ignore_daemonsets = true, timeout = 3, retry_interval = 0.5 })
    assert(r == nil and err == "timeout", tostring(err))
    print(msg)
    assert(info.pods[1] == "default/solo-1" and info.pdbs[1].pdb == "default/solo")
"""))
        self.assertIn("pods still there: default/solo-1; held by: default/solo (0 disruptions allowed)", out)
        self.assertTrue(self.cluster.get("/api/v1/nodes/w3")["spec"].get("unschedulable"))
        self.assertEqual(self.cluster.get("/api/v1/namespaces/default/pods/solo-1")["metadata"]["name"], "solo-1")

    def test_drain_timeout_names_a_pod_stuck_terminating(self):
        # Evicted at once, but its 600 s grace period keeps it Terminating past the drain's timeout.
        self.cluster.control("/_sim/objects", [fx.pod("stuck", "w1", grace=600, owner=("ReplicaSet", "web"),
                                                      labels={"app": "stuck"})])
        out = self.ok(self.run_lua("""
    local r, err, msg, info = k8s.drain("w1", { ignore_daemonsets = true, timeout = 2, retry_interval = 0.5 })
    assert(r == nil and err == "timeout", tostring(err))
    print(msg)
"""))
        self.assertRegex(out, r"pods still there: [^;]*default/stuck \(terminating since \d{4}-\d\d-\d\dT[\d:]+Z\)")
        self.assertNotIn("pods still there: none", out)

    def test_drain_refuses_what_kubectl_refuses(self):
        self.cluster.control("/_sim/objects", [fx.pod("bare", "w2"), fx.pod("scratch", "w2", emptydir=True,
                                                                           owner=("ReplicaSet", "web"), labels={"app": "x"})])
        out = self.ok(self.run_lua("""
    local r, err, msg = k8s.drain("w2", { timeout = 5 })
    assert(r == nil and err == "refused", tostring(err))
    print(msg)
"""))
        self.assertIn("default/bare (not managed by a controller: set force to delete it)", out)
        self.assertIn("default/scratch (uses emptyDir (its data is lost): set delete_emptydir)", out)
        # Nothing was evicted before refusing.
        self.assertEqual(self.cluster.get("/api/v1/namespaces/default/pods/bare")["metadata"]["name"], "bare")

    def test_a_pod_under_two_pdbs_fails_the_drain(self):
        self.cluster.control("/_sim/objects", [fx.pdb("web-too", "web", max_unavailable=1)])
        out = self.ok(self.run_lua("""
    local r, err, msg = k8s.drain("w2", { ignore_daemonsets = true, timeout = 20, retry_interval = 0.5 })
    assert(r == nil and err == "failed", tostring(err))
    print(msg)
"""))
        self.assertIn("more than one PodDisruptionBudget", out)
        self.assertTrue(self.cluster.get("/api/v1/nodes/w2")["spec"].get("unschedulable"))

    def test_uncordon_refuses_a_node_an_operator_cordoned(self):
        self.ok(self.run_lua("""
    assert(k8s.patch("nodes", "w2", { spec = { unschedulable = true } }))  -- the operator, by hand
    assert(k8s.cordon("w2"))               -- already cordoned: left as the operator's
    local ok, err, msg = k8s.uncordon("w2")
    assert(ok == nil and err == "not ours", tostring(err))
    assert(k8s.cordon("w1"))
    assert(k8s.uncordon("w1"))             -- ours
    assert(k8s.uncordon("w2", { force = true }))
"""))
        self.assertFalse(self.cluster.get("/api/v1/nodes/w2")["spec"].get("unschedulable"))

    def test_taints_are_owned_by_the_run_and_steer_evicted_pods_away(self):
        # an operator's taint, put with the real kubectl, stays whatever the engine does
        r = self.cluster.kubectl("taint", "nodes", "w2", "dedicated=db:NoSchedule")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = self.ok(self.run_lua("""
    assert(k8s.taint("w2", "engine.dev/upgrade-next"))        -- PreferNoSchedule by default
    assert(k8s.taint("w2", "engine.dev/upgrade-next"))        -- again: already ours
    local ok, err, msg = k8s.taint("w2", "dedicated", "NoSchedule")
    assert(ok == nil and err == "held", tostring(err))
    print(msg)
    ok, err, msg = k8s.untaint("w2", "dedicated", "NoSchedule")
    assert(ok == nil and err == "not ours", tostring(err))
    assert(k8s.drain("w1", { ignore_daemonsets = true, delete_emptydir = true, timeout = 30, retry_interval = 0.2 }))
    -- four tasks at once: one puts it, the others' writes conflict and their retries find it put
    require("engine.fleet").each({ { name = "a" }, { name = "b" }, { name = "c" }, { name = "d" } }, { at_once = 4 }, function()
      assert(k8s.taint("w3", "engine.dev/upgrade-next"))
    end)
    print("W3 TAINTS " .. #k8s.get("nodes", "w3").spec.taints)
    assert(k8s.untaint("w3", "engine.dev/upgrade-next"))
"""))
        self.assertIn('node w2 already has the taint dedicated:NoSchedule (value "db"), not this run\'s', out)
        self.assertEqual(out.count("tainted node=w2"), 1)  # the second call found it there
        self.assertEqual(len(re.findall(r"(?<!un)tainted node=w3", out)), 1, out)  # said by the one that put it
        self.assertIn("W3 TAINTS 1", out)
        # the drain's own fleet.each (its evictions) is its detail: only the runbook's is counted
        self.assertEqual(out.count("fleet.each finished"), 1, out)
        taints = self.cluster.get("/api/v1/nodes/w2")["spec"]["taints"]
        self.assertEqual(sorted((t["key"], t["effect"]) for t in taints),
                         [("dedicated", "NoSchedule"), ("engine.dev/upgrade-next", "PreferNoSchedule")])
        # the drained pods' replacements went to the node not tainted PreferNoSchedule
        pods = self.cluster.get("/api/v1/pods")["items"]
        moved = [p["spec"]["nodeName"] for p in pods if p["metadata"]["name"].startswith("web-") and
                 p["metadata"]["name"] not in ("web-1", "web-2", "web-3")]
        self.assertTrue(moved, [p["metadata"]["name"] for p in pods])
        self.assertNotIn("w2", moved)
        # another run (another identity) leaves it, unless forced
        self.ok(self.run_lua("""
    local ok, err = k8s.untaint("w2", "engine.dev/upgrade-next")
    assert(ok == nil and err == "not ours", tostring(err))
    assert(k8s.untaint("w2", "engine.dev/upgrade-next", nil, { force = true }))
    assert(k8s.untaint("w2", "engine.dev/upgrade-next"))      -- none left: success
    assert(k8s.uncordon("w1", { force = true }))
"""))
        taints = self.cluster.get("/api/v1/nodes/w2")["spec"]["taints"]
        self.assertEqual([(t["key"], t["effect"]) for t in taints], [("dedicated", "NoSchedule")])
        self.assertIn("dedicated=db:NoSchedule", self.cluster.kubectl("describe", "node", "w2").stdout)

    def test_a_long_runbook_name_still_makes_a_valid_taint_value(self):
        # A taint value is a label value (63 characters at most): the API refuses a longer one, and
        # a run id holds the runbook's name.
        path = os.path.join(self.tmp, "long.lua")
        with open(path, "w") as f:
            f.write(TEMPLATE.replace('name = "k8s-test"', 'name = "upgrade-the-production-cluster-in-frankfurt-zone-b"') % """
    local ok, err, msg = k8s.patch("nodes", "w3", { spec = { taints = { { key = "x", value = string.rep("a", 70),
      effect = "NoSchedule" } } } })
    assert(ok == nil and err == "invalid", tostring(err))
    assert(k8s.taint("w3", "engine.dev/upgrade-next"))
    assert(k8s.taint("w3", "engine.dev/upgrade-next"))   -- found as this run's own
    print("TAINT " .. k8s.get("nodes", "w3").spec.taints[1].value)
    assert(k8s.untaint("w3", "engine.dev/upgrade-next"))
    assert(#(k8s.get("nodes", "w3").spec.taints or {}) == 0)
""")
        r = subprocess.run([ENGINE, "run", path, "-e", f"kc={self.cluster.kubeconfig}", "--state-dir",
                            os.path.join(self.tmp, "state")], capture_output=True, text=True, timeout=120)
        out = self.ok(r)
        value = re.search(r"TAINT (\S+)", out).group(1)
        self.assertLessEqual(len(value), 63)
        self.assertRegex(value, r"^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$")
        self.assertTrue(value.startswith("20"), value)  # the run id's head ...
        run_id = re.search(r" run=(\S+)", out).group(1)
        self.assertTrue(run_id.endswith(value[-22:]), (run_id, value))  # ... and its tail

    def test_workloads_ready_gate_reads_each_kind_as_kubectl_rollout_status_does(self):
        out = self.ok(self.run_lua("""
    local gates = require "std.gates"
    -- created, then their status written through the status subresource, as their controllers do
    local function make(kind, name, ns, labels, spec, st)
      assert(k8s.create({ apiVersion = "apps/v1", kind = kind, metadata = { name = name, namespace = ns, labels = labels },
        spec = spec }))
      assert(k8s.patch(kind, name, { status = st }, { namespace = ns, subresource = "status" }))
    end
    make("Deployment", "web", "default", { tier = "front" }, { replicas = 3 },
      { observedGeneration = 1, replicas = 3, updatedReplicas = 3, availableReplicas = 2 })
    make("Deployment", "api", "default", { tier = "front" }, { replicas = 2 },
      { observedGeneration = 1, replicas = 2, updatedReplicas = 2, availableReplicas = 2 })
    make("StatefulSet", "db", "default", nil, { replicas = 2 }, { observedGeneration = 1, readyReplicas = 2 })
    make("DaemonSet", "agent", "kube-system", { app = "agent" }, {},
      { observedGeneration = 1, desiredNumberScheduled = 4, updatedNumberScheduled = 4, numberReady = 3 })
    local ok, word, msg = gates.workloads_ready { "default/deployment/web", "default/sts/db", "*/daemonset?app=agent" }
    assert(ok == nil and word == "not ready", tostring(word))
    print(msg)
    assert(gates.workloads_ready { "default/deployment/api", "default/statefulset/db", "default/deployments?tier=front,app!=x" } == nil)
    assert(k8s.patch("deployments.apps", "web", { status = { availableReplicas = 3 } }, { namespace = "default", subresource = "status" }))
    assert(k8s.patch("daemonsets.apps", "agent", { status = { numberReady = 4 } }, { namespace = "kube-system", subresource = "status" }))
    assert(gates.workloads_ready { "default/deployment/web", "default/sts/db", "*/ds?app=agent", "default/deploy?tier=front" })
    ok, word, msg = gates.workloads_ready { "default/deployment/gone" }
    assert(ok == nil and word == "not found", tostring(word))
    print(msg)
    ok, msg = pcall(gates.workloads_ready, { "web" })
    assert(not ok)
    print(msg)
"""))
        self.assertIn("workloads not ready: default/deployment/web: 2 of 3 replicas available; "
                      "kube-system/daemonset/agent: 3 of 4 pods ready", out)
        self.assertIn("default/deployment/gone: not found", out)
        self.assertIn('"web" is not NAMESPACE/KIND/NAME or NAMESPACE/KIND?SELECTOR', out)

    def test_removed_apis_lists_objects_served_only_through_what_the_target_removes(self):
        out = self.ok(self.run_lua("""
    local api = require "engine.k8s.api"
    local removed = require "std.removed_apis"
    for _, n in ipairs({ "restricted", "privileged" }) do
      assert(api.call("POST", "/apis/policy/v1beta1/podsecuritypolicies",
        { apiVersion = "policy/v1beta1", kind = "PodSecurityPolicy", metadata = { name = n }, spec = {} }))
    end
    local found = assert(removed.check("1.24.17", "1.25.0"))
    assert(#found == 1, #found)
    local x = found[1]
    assert(x.kind == "PodSecurityPolicy" and x.removed_in == "1.25" and x.use == "" and x.count == 2)
    print(removed.describe(x))
    -- PDBs: policy/v1beta1 does not serve them here and policy/v1 does: nothing to say
    assert(#assert(removed.check("v1.25.3", "1.26.0")) == 0)
    assert(#assert(removed.check("1.33.1", "1.34.3")) == 0)
    local ok, err = pcall(removed.check, "1.24", "1.25.0")
    assert(not ok and tostring(err):find("must be versions"), tostring(err))
"""))
        self.assertIn("2 PodSecurityPolicy (policy/v1beta1 podsecuritypolicies) served only through policy/v1beta1, "
                      "which 1.25 removes with no successor: privileged, restricted", out)
        # the real kubectl still finds its way through the simulator's discovery (several versions now)
        r = self.cluster.kubectl("get", "psp")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("restricted", r.stdout)

    def test_max_per_by_a_node_label(self):
        self.ok(self.run_lua("""
    assert(k8s.patch("nodes", "w1", { metadata = { labels = { ["topology.kubernetes.io/zone"] = "a" } } }))
    assert(k8s.patch("nodes", "w2", { metadata = { labels = { ["topology.kubernetes.io/zone"] = "a" } } }))
    assert(k8s.patch("nodes", "w3", { metadata = { labels = { ["topology.kubernetes.io/zone"] = "b" } } }))
    local hosts = { { name = "w1" }, { name = "w2" }, { name = "w3" } }
    assert(k8s.label_hosts(hosts, { zone = "topology.kubernetes.io/zone" }))
    assert(hosts[1].vars.zone == "a" and hosts[3].vars.zone == "b")
    local live, peak = {}, {}
    require("engine.fleet").each(hosts, { at_once = 3, max_per = { zone = 1 } }, function(h)
      live[h.vars.zone] = (live[h.vars.zone] or 0) + 1
      peak[h.vars.zone] = math.max(peak[h.vars.zone] or 0, live[h.vars.zone])
      sleep(0.05)
      live[h.vars.zone] = live[h.vars.zone] - 1
    end)
    assert(peak.a == 1 and peak.b == 1)
"""))

    def test_wait_node_for_a_version(self):
        p = subprocess.Popen([sys.executable, "-c", f"""
import sys, time; sys.path.insert(0, {os.path.join(HERE, '..', '..')!r})
import json, ssl, urllib.request
from lab.k8sim import fixture
time.sleep(1)
n = {json.dumps(fx.node('w2', version='v1.34.3'))}
ctx = ssl.create_default_context(cafile={self.cluster.dir + '/ca.crt'!r})
ctx.load_cert_chain({self.cluster.dir + '/admin.crt'!r}, {self.cluster.dir + '/admin.key'!r})
cur = json.load(urllib.request.urlopen({self.cluster.server + '/api/v1/nodes/w2'!r}, context=ctx))
n['metadata'] = cur['metadata']
req = urllib.request.Request({self.cluster.server + '/api/v1/nodes/w2'!r}, data=json.dumps(n).encode(), method='PUT',
                             headers={{'Content-Type': 'application/json'}})
urllib.request.urlopen(req, context=ctx)
"""])
        out = self.ok(self.run_lua("""
    local n = assert(k8s.wait_node("w2", { ready = true, version = "1.34.3", timeout = 30 }))
    print("at", n.kubelet_version)
    local late, err = k8s.wait_node("w3", { version = "1.99.0", timeout = 1 })
    assert(late == nil and err == "timeout")
"""))
        p.wait()
        self.assertIn("at\tv1.34.3", out)

    def test_wait_node_heartbeat_after_ignores_the_status_a_restarted_kubelet_left(self):
        # The Node says Ready, but with a heartbeat from before the restart: not yet the new kubelet.
        out = self.ok(self.run_lua("""
    local time = require "engine.time"
    local function ready(hb)
      return { status = { conditions = { { type = "Ready", status = "True", lastHeartbeatTime = hb,
        lastTransitionTime = "2026-01-01T00:00:00Z" } } } }
    end
    local restarted = math.floor(time.now())
    assert(k8s.patch("nodes", "w3", ready(os.date("!%Y-%m-%dT%H:%M:%SZ", restarted))))
    local stale, err = k8s.wait_node("w3", { ready = true, heartbeat_after = restarted, timeout = 1 })
    assert(stale == nil and err == "timeout", tostring(err))
    assert(k8s.patch("nodes", "w3", ready(os.date("!%Y-%m-%dT%H:%M:%SZ", restarted + 1))))
    local n = assert(k8s.wait_node("w3", { ready = true, heartbeat_after = restarted, timeout = 5 }))
    print("fresh", n.heartbeat == os.date("!%Y-%m-%dT%H:%M:%SZ", restarted + 1))
    assert(k8s.wait_node("w3", { ready = true, timeout = 1 }))  -- without heartbeat_after: any Ready
"""))
        self.assertIn("fresh\ttrue", out)

    def test_a_ready_flap_after_an_engine_kubelet_restart_is_known_as_that_runs(self):
        # std.kubeadm.restart_kubelet marks the Node; node_info's flapped_by names the run when the
        # last Ready transition came within 10 minutes after the mark (here across a month's end).
        out = self.ok(self.run_lua("""
    local function flap(mark, transition)
      assert(k8s.patch("nodes", "w3", { metadata = { annotations = { [k8s.KUBELET_RESTARTED] = mark } },
        status = { conditions = { { type = "Ready", status = "True", lastTransitionTime = transition,
          lastHeartbeatTime = transition } } } }))
      for _, n in ipairs(assert(k8s.nodes())) do if n.name == "w3" then return tostring(n.flapped_by) end end
    end
    print("after", flap("2026-02-28T23:59:30Z run-a", "2026-03-01T00:04:00Z"))
    print("late", flap("2026-02-28T23:59:30Z run-a", "2026-03-01T00:09:31Z"))
    print("before", flap("2026-02-28T23:59:30Z run-a", "2026-02-28T23:59:29Z"))
    print("garbled", flap("yesterday", "2026-03-01T00:04:00Z"))
"""))
        self.assertIn("after\trun-a", out)
        self.assertIn("late\tnil", out)
        self.assertIn("before\tnil", out)
        self.assertIn("garbled\tnil", out)

    def test_dry_run_cordons_and_evicts_nothing(self):
        out = self.ok(self.run_lua("""
    assert(k8s.drain("w1", { ignore_daemonsets = true, timeout = 10 }))
""", "--dry-run"))
        self.assertIn("dry-run: would PATCH", out)
        self.assertIn("dry-run: would evict", out)
        self.assertFalse(self.cluster.get("/api/v1/nodes/w1")["spec"].get("unschedulable"))
        self.assertEqual(len(self.cluster.get("/api/v1/namespaces/default/pods")["items"]), 4)


@unittest.skipUnless(HAVE_KUBECTL, "kubectl is not installed")
class TestKubectlFidelity(K8sTest):
    objects = [fx.replicaset("web"),
               fx.pod("web-1", "w1", labels={"app": "web"}, owner=("ReplicaSet", "web")),
               fx.pod("cache-1", "w1", labels={"app": "cache"}, owner=("ReplicaSet", "web"), emptydir=True),
               fx.pod("web-2", "w2", labels={"app": "web"}, owner=("ReplicaSet", "web")),
               fx.pdb("web", "web", min_available=1)]

    def test_get_nodes_and_pods(self):
        r = self.cluster.kubectl("get", "nodes")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "STATUS", "ROLES", "AGE", "VERSION"])
        self.assertIn(["cp1", "Ready", "control-plane"], [l.split()[:3] for l in lines])
        self.assertEqual(len(lines), 5)
        r = self.cluster.kubectl("get", "pods", "-A")
        self.assertEqual(r.returncode, 0, r.stderr)
        names = [l.split()[1] for l in r.stdout.splitlines()[1:]]
        self.assertEqual(sorted(names), ["cache-1", "etcd-cp1", "kube-proxy-w1", "web-1", "web-2"])

    def test_cordon_uncordon(self):
        self.assertEqual(self.cluster.kubectl("cordon", "w2").stdout.strip(), "node/w2 cordoned")
        self.assertTrue(self.cluster.get("/api/v1/nodes/w2")["spec"]["unschedulable"])
        self.assertIn("Ready,SchedulingDisabled", self.cluster.kubectl("get", "node", "w2").stdout)
        self.assertEqual(self.cluster.kubectl("uncordon", "w2").stdout.strip(), "node/w2 uncordoned")
        self.assertFalse(self.cluster.get("/api/v1/nodes/w2")["spec"].get("unschedulable"))

    def test_drain(self):
        r = self.cluster.kubectl("drain", "w1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s", timeout=90)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("node/w1 drained", r.stdout)
        self.assertIn("Warning: ignoring DaemonSet-managed Pods: kube-system/kube-proxy-w1", r.stderr)
        pods = self.cluster.get("/api/v1/pods")["items"]
        on_w1 = sorted(p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == "w1")
        self.assertEqual(on_w1, ["kube-proxy-w1"])
        self.assertTrue(self.cluster.get("/api/v1/nodes/w1")["spec"]["unschedulable"])


if __name__ == "__main__":
    unittest.main()
