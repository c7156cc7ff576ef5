"""--state-dir k8s://NAMESPACE: a run's journal, run.json and report kept in the cluster's API, so
another machine (the next pod of a Job) resumes it. Each "pod" here is its own state directory
($XDG_STATE_HOME) that never sees the other's files; the API is the simulator."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_k8s import ENGINE, K8sTest  # noqa: E402

STEPS = """
return runbook {
  name = "six-steps",
  params = { pause = { type = "number", default = 0.4 } },
  run = function(p)
    for i = 1, 6 do
      step("step " .. i, function() print("RAN " .. i) sleep(p.pause) end, { probe = function() return false end })
    end
  end,
}
"""
STATE = "k8s://engine-runs"

# Ten steps, each making one ConfigMap (a side effect create refuses to make twice) and probed by
# reading it: killed anywhere, resumed on another machine, every effect exactly once.
EFFECTS = """
local k8s = require "engine.k8s"
return runbook {
  name = "ten-effects",
  run = function()
    for i = 1, 10 do
      local name = "effect-" .. i
      step("effect " .. i, function()
        assert(k8s.create({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = name, namespace = "default" } }))
      end, { probe = function() return k8s.get("configmaps", name, { namespace = "default" }) ~= nil end })
    end
  end,
}
"""


# Steps that return more than one ConfigMap holds: ~3 MB (3-byte characters, so a part's end may
# fall inside one), then eight of ~200 KB. The resumed run checks what the journal gave back.
BIG_RESULTS = """
return runbook {
  name = "big-results",
  params = { pause = { type = "number", default = 60 } },
  run = function(p)
    local function text(n, seed)
      local t = {}
      for i = 1, n do t[i] = "日本" .. seed .. ":" .. i end
      return table.concat(t, " ")
    end
    local big, three = step("big", function() print("RAN big") return text(220000, "a"), 3 end)
    local same = {}
    for i = 1, 8 do
      local r = step("mid " .. i, function() print("RAN mid " .. i) return { text = text(14000, "m" .. i) } end)
      same[i] = tostring(r.text == text(14000, "m" .. i))
    end
    -- killed here; on resume its probe says it is done
    step("wait", function() print("RAN wait") print("WAITING") sleep(p.pause) end, { probe = function() return true end })
    print("BIG SAME", big == text(220000, "a"), three)
    print("MID SAME", table.concat(same, " "))
  end,
}
"""


class TestClusterState(K8sTest):
    def setUp(self):
        super().setUp()
        self.runbook = os.path.join(self.tmp, "six.lua")
        with open(self.runbook, "w") as f:
            f.write(STEPS)

    def pod(self, name):
        """A machine of its own: its own state directory, the same cluster."""
        home = os.path.join(self.tmp, name)
        os.makedirs(home, exist_ok=True)
        return dict(os.environ, XDG_STATE_HOME=home, KUBECONFIG=self.cluster.kubeconfig)

    def engine(self, env, *args, timeout=60):
        return subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout, env=env)

    def configmaps(self):
        return {o["metadata"]["name"] for o in self.cluster.get("/api/v1/namespaces/engine-runs/configmaps")["items"]}

    def start_killed_after(self, env, marker, *extra):
        """A run killed (SIGKILL, as an evicted pod's container) once it printed marker."""
        p = subprocess.Popen([ENGINE, "run", self.runbook, "--state-dir", STATE, *extra], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env)
        out = ""
        deadline = time.monotonic() + 30
        while marker not in out and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            out += line
        p.send_signal(signal.SIGKILL)
        p.wait()
        self.assertIn(marker, out)
        return out

    def test_a_run_killed_on_one_machine_resumes_on_another(self):
        first = self.start_killed_after(self.pod("pod-1"), "RAN 3")
        run_id = re.search(r" run=(\d{8}-\S+)", first).group(1)
        names = self.configmaps()
        self.assertIn(f"engine-run-{run_id}", names)
        self.assertIn(f"engine-run-{run_id}-j0", names)
        # Each record in the cluster, acknowledged before its step went on: steps 1 and 2 done,
        # step 3 begun (its INTENT) when the process died.
        chunk = self.cluster.get(f"/api/v1/namespaces/engine-runs/configmaps/engine-run-{run_id}-j0")["data"]
        records = [json.loads(v.split(" ", 1)[1]) for _, v in sorted(chunk.items())]
        self.assertEqual([(r["t"], r["step"]) for r in records][:5],
                         [("INTENT", "step 1"), ("DONE", "step 1"), ("INTENT", "step 2"), ("DONE", "step 2"), ("INTENT", "step 3")])
        # Another machine, which never saw the run: lists it, shows it, resumes it.
        pod2 = self.pod("pod-2")
        runs = self.engine(pod2, "runs", "--state-dir", STATE)
        self.assertEqual(runs.returncode, 0, runs.stderr)
        self.assertRegex(runs.stdout, rf"{run_id}\s+six\s+stopped")
        show = self.engine(pod2, "show", run_id, "--state-dir", STATE)
        self.assertEqual(show.returncode, 0, show.stderr)
        self.assertIn("step 2", show.stdout)
        again = self.engine(pod2, "resume", run_id, "--state-dir", STATE)
        self.assertEqual(again.returncode, 0, again.stdout[-2000:] + again.stderr[-2000:])
        ran = re.findall(r"RAN (\d)", again.stdout)
        self.assertEqual(ran, ["3", "4", "5", "6"])  # 1 and 2 were done; 3 had no record of finishing
        self.assertIn(f"engine-run-{run_id}-report", self.configmaps())
        # A third machine sees it finished.
        runs = self.engine(self.pod("pod-3"), "runs", "--state-dir", STATE)
        self.assertRegex(runs.stdout, rf"{run_id}\s+six\s+finished")

    def test_a_jobs_next_pod_runs_the_same_command_and_goes_on(self):
        # A Job's pods all run one command: with --run-id the second one resumes what the first
        # (evicted) began, and a pod after the run finished does nothing.
        cmd = ["run", self.runbook, "--state-dir", STATE, "--run-id", "k8s-upgrade-v1-34-3"]
        out = self.start_killed_after(self.pod("pod-1"), "RAN 2", "--run-id", "k8s-upgrade-v1-34-3")
        self.assertIn("run=k8s-upgrade-v1-34-3", out)
        second = self.engine(self.pod("pod-2"), *cmd)
        self.assertEqual(second.returncode, 0, second.stdout[-2000:] + second.stderr[-2000:])
        self.assertIn("run resumed", second.stdout)
        self.assertEqual(re.findall(r"RAN (\d)", second.stdout), ["2", "3", "4", "5", "6"])
        third = self.engine(self.pod("pod-3"), *cmd)
        self.assertEqual(third.returncode, 0, third.stderr)
        self.assertIn("run k8s-upgrade-v1-34-3 finished already", third.stdout)
        self.assertNotIn("RAN", third.stdout)
        bad = self.engine(self.pod("pod-3"), "run", self.runbook, "--run-id", "Upgrade_1")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("a run id is lowercase letters, digits", bad.stderr)

    def test_a_journal_longer_than_the_api_clients_burst_is_not_throttled(self):
        # Every record is waited for, as an fsync is: had the journal's client the run's rate limit
        # (50 a second after a burst of 100), each record past the 100th would stall the whole run.
        # 150 steps write 300 records, across two chunks of 256.
        path = os.path.join(self.tmp, "many.lua")
        with open(path, "w") as f:
            f.write('return runbook { name = "many", run = function()\n'
                    '  for i = 1, 150 do step("s" .. i, function() end) end\n'
                    '  print("DONE") end }\n')
        env = dict(self.pod("pod-1"), ENGINE_HTTP_DEBUG="1")
        r = self.engine(env, "run", path, "--state-dir", STATE, "--run-id", "many-steps")
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
        self.assertIn("DONE", r.stdout)
        self.assertNotIn("client-side rate limit", r.stderr)
        chunks = [self.cluster.get(f"/api/v1/namespaces/engine-runs/configmaps/engine-run-many-steps-j{i}")["data"]
                  for i in (0, 1)]
        self.assertEqual([len(c) for c in chunks], [256, 44])

    def thirty_hosts(self):
        """A runbook whose 30 hosts each run one step at once, and their inventory."""
        inv = os.path.join(self.tmp, "hosts.ini")
        with open(inv, "w") as f:
            f.write("[workers]\n" + "".join(f"node{i:02d}\n" for i in range(1, 31)))
        rb = os.path.join(self.tmp, "fleet.lua")
        with open(rb, "w") as f:
            f.write('local fleet = require "engine.fleet"\n'
                    'return runbook { name = "fleet", run = function(p, inv)\n'
                    '  local res = fleet.each(inv:group("workers"), { at_once = 30 }, function(h)\n'
                    '    return step("upgrade", function() return h.name end)\n'
                    '  end)\n'
                    '  print("OK", res.ok)\n'
                    'end }\n')
        return inv, rb

    def run_thirty(self, inv, rb):
        """Runs thirty_hosts(): every host's step once, its 60 records numbered in order."""
        r = self.engine(self.pod("pod-1"), "run", rb, "-i", inv, "--state-dir", STATE, "--run-id", "many-hosts")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-2000:])
        self.assertIn("OK\t30", r.stdout)
        records = self.records()
        self.assertEqual([x["seq"] for x in records], list(range(1, 61)))
        self.assertEqual(sorted(x["step"] for x in records if x["t"] == "DONE"), [f"node{i:02d}/upgrade" for i in range(1, 31)])
        return records

    def test_the_records_of_many_hosts_steps_go_to_a_slow_api_together(self):
        # An API server slow to write (each journal write 0.3 s: etcd under load). One request per
        # record, waited for with the event loop held, made 30 hosts' 60 records cost the run 60
        # round trips, one host at a time; each step now waits for its own record while the others
        # go on, and what they wrote meanwhile goes in the same request.
        inv, rb = self.thirty_hosts()
        self.cluster.control("/_sim/faults", [{"path": "namespaces/engine-runs/configmaps", "method": m, "latency": 0.3,
                                               "count": 1000} for m in ("POST", "PATCH")])
        self.cluster.control("/_sim/stats/reset", {})
        records = self.run_thirty(inv, rb)
        for x in records:  # each host's DONE after its INTENT
            if x["t"] == "DONE":
                self.assertLess(next(y["seq"] for y in records if y["step"] == x["step"]), x["seq"])
        stats = self.cluster.control("/_sim/stats")
        patches = stats.get("PATCH /api/v1/namespaces/engine-runs/configmaps/engine-run-many-hosts-j0", 0)
        self.assertLessEqual(patches, 8, stats)  # 59 with one request per record
        # Resumed on another machine: every step done, none runs again.
        again = self.engine(self.pod("pod-2"), "resume", "many-hosts", "--state-dir", STATE)
        self.assertEqual(again.returncode, 0, again.stdout[-2000:] + again.stderr[-2000:])
        self.assertIn("OK\t30", again.stdout)
        self.assertEqual(len(self.records()), 60)

    def test_a_cancelled_run_leaves_the_cluster_every_record_it_wrote(self):
        # Cancelled (Ctrl-C twice) while the steps' DONE records wait for an API that does not
        # answer (the patch carrying the first of them held 4 s, the rest queued behind it): what no
        # step waits for any more is still written before the engine exits, so the cluster's
        # journal is the local one, record for record.
        inv, rb = self.thirty_hosts()
        self.cluster.control("/_sim/faults", [{"path": "-j0", "method": "PATCH", "latency": 0.01, "count": 1},
                                              {"path": "-j0", "method": "PATCH", "latency": 4, "count": 1}])
        p = subprocess.Popen([ENGINE, "run", rb, "-i", inv, "--state-dir", STATE, "--run-id", "many-hosts"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.pod("pod-1"))
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out = p.communicate(timeout=60)[0]
        self.assertEqual(p.returncode, 130, out[-3000:])
        local = os.path.join(self.tmp, "pod-1", "engine", "cluster", "engine-runs", "runs", "many-hosts", "journal")
        with open(local) as f:
            lines = [json.loads(line.split(" ", 1)[1]) for line in f.read().splitlines()]
        self.assertEqual(len(lines), 60, out[-2000:])  # every step was done when the run was cancelled
        self.assertEqual(self.records(), lines)

    def test_a_batch_whose_reply_is_lost_or_refused_is_settled_record_by_record(self):
        # The first batch of many records taken but its reply lost, the next refused (409) though
        # no one else wrote: each record is found in the chunk or written again; none twice, no gap.
        inv, rb = self.thirty_hosts()
        chunk = "engine-run-many-hosts-j0"
        self.cluster.control("/_sim/stats/reset", {})
        self.cluster.control("/_sim/faults", [{"path": chunk, "method": "PATCH", "drop_after": True, "count": 1},
                                              {"path": chunk, "method": "PATCH", "status": 409, "count": 1},
                                              {"path": chunk, "method": "PATCH", "latency": 0.2, "count": 1000}])
        self.run_thirty(inv, rb)
        stats = self.cluster.control("/_sim/stats")  # both faults settled by reading the chunk back
        self.assertGreaterEqual(stats.get(f"GET /api/v1/namespaces/engine-runs/configmaps/{chunk}", 0), 2, stats)

    def test_two_writers_of_one_run_cannot_interleave(self):
        first = self.start_killed_after(self.pod("pod-1"), "RAN 1")
        run_id = re.search(r" run=(\d{8}-\S+)", first).group(1)
        # Two machines resume the same run at once: one takes the next record, the other is told.
        procs = [subprocess.Popen([ENGINE, "resume", run_id, "--state-dir", STATE], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=self.pod(f"pod-{n}")) for n in (2, 3)]
        outs = [p.communicate(timeout=60) for p in procs]
        codes = sorted(p.returncode for p in procs)
        text = "".join(o + e for o, e in outs)
        self.assertEqual(codes[0], 0, text[-3000:])
        self.assertNotEqual(codes[1], 0, text[-3000:])
        self.assertRegex(text, r"changed under this run: another engine is writing run|holds another record")
        # The journal in the cluster is one writer's: every record numbered in order, none twice.
        records = []
        for name in sorted(n for n in self.configmaps() if re.search(r"-j\d+$", n)):
            chunk = self.cluster.get(f"/api/v1/namespaces/engine-runs/configmaps/{name}")["data"]
            records += [json.loads(v.split(" ", 1)[1]) for _, v in sorted(chunk.items())]
        self.assertEqual([r["seq"] for r in records], list(range(1, len(records) + 1)))
        done = [r["step"] for r in records if r["t"] == "DONE"]
        self.assertEqual(sorted(done), sorted(set(done)))

    def records(self):
        out = []
        for name in sorted((n for n in self.configmaps() if re.search(r"-j\d+$", n)), key=lambda n: int(n.rsplit("j", 1)[1])):
            chunk = self.cluster.get(f"/api/v1/namespaces/engine-runs/configmaps/{name}")["data"]
            out += [json.loads(v.split(" ", 1)[1]) for _, v in sorted(chunk.items())]
        return out

    def test_sigkill_at_random_points_each_next_pod_resumes_every_effect_exactly_once(self):
        # test_resume's journal test, against the cluster: 30 kills, each run after a kill on a
        # machine that never saw the run (the next pod of a Job, one command for all).
        rb = os.path.join(self.tmp, "effects.lua")
        with open(rb, "w") as f:
            f.write(EFFECTS)
        rng = random.Random(20261202)
        cmd = [ENGINE, "run", rb, "--state-dir", STATE, "--run-id", "effects"]
        kills = pods = 0
        while True:
            pods += 1
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.pod(f"pod-{pods}"))
            if kills < 30:
                time.sleep(rng.uniform(0.0, 0.3))
                if p.poll() is None:
                    p.kill()
                    kills += 1
            out, _ = p.communicate(timeout=60)
            if p.returncode == 0 and kills >= 30 or pods > 200:
                break
            if p.returncode == 0:  # finished before a kill landed: start over to keep killing
                # one kubectl each (a kubectl per object took ~3 s a restart, most of the test)
                self.cluster.kubectl("delete", "configmap", "-n", "engine-runs", *sorted(self.configmaps()))
                self.cluster.kubectl("delete", "configmap", *(f"effect-{i}" for i in range(1, 11)), "--ignore-not-found")
                self.assertFalse(self.configmaps())
                left = self.cluster.get("/api/v1/namespaces/default/configmaps")["items"]
                self.assertFalse([o for o in left if o["metadata"]["name"].startswith("effect-")])
        self.assertEqual(p.returncode, 0, out[-3000:])
        self.assertEqual(kills, 30)
        names = {o["metadata"]["name"] for o in self.cluster.get("/api/v1/namespaces/default/configmaps")["items"]}
        self.assertEqual({n for n in names if n.startswith("effect-")}, {f"effect-{i}" for i in range(1, 11)})
        records = self.records()
        self.assertEqual([r["seq"] for r in records], list(range(1, len(records) + 1)))
        done = [r["step"] for r in records if r["t"] == "DONE"]
        self.assertEqual(sorted(done), sorted(f"effect {i}" for i in range(1, 11)))  # each once

    def test_a_lost_reply_and_a_refused_write_are_settled_and_a_missing_record_is_named(self):
        # The API takes a record but the reply is lost; then refuses one (409) though no one else
        # wrote: the first is found in the chunk, the second tried again; nothing twice, no gap.
        self.cluster.control("/_sim/faults", [{"path": "-j0", "method": "PATCH", "drop_after": True, "count": 1},
                                              {"path": "-j0", "method": "PATCH", "status": 409, "count": 1}])
        r = self.engine(self.pod("pod-1"), "run", self.runbook, "--state-dir", STATE, "-e", "pause=0")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-2000:])
        self.assertEqual(re.findall(r"RAN (\d)", r.stdout), ["1", "2", "3", "4", "5", "6"])
        records = self.records()
        self.assertEqual([r["seq"] for r in records], list(range(1, 13)))
        # Record 1 made the chunk (POST); 2 to 12 went as patches, the refused one once more, and the
        # one whose reply was lost perhaps once more too (libcurl resends on a reused connection
        # that died: the version it carries is stale by then, so the API refuses it and the chunk
        # read back shows the record taken). Both faults fired, and each was settled by a read.
        run_id = re.search(r" run=(\d{8}-\S+)", r.stdout).group(1)
        stats = self.cluster.control("/_sim/stats")
        self.assertIn(stats.get(f"PATCH /api/v1/namespaces/engine-runs/configmaps/engine-run-{run_id}-j0"), (12, 13), stats)
        self.assertEqual(stats.get(f"GET /api/v1/namespaces/engine-runs/configmaps/engine-run-{run_id}-j0"), 2, stats)
        # A run killed half way, then one of its records deleted by hand: the next machine refuses
        # to guess, naming the record.
        first = self.start_killed_after(self.pod("pod-2"), "RAN 3")
        run_id = re.search(r" run=(\d{8}-\S+)", first).group(1)
        chunk = f"engine-run-{run_id}-j0"
        k = self.cluster.kubectl("patch", "configmap", "-n", "engine-runs", chunk, "--type=json",
                                 "-p", json.dumps([{"op": "remove", "path": "/data/r00000003"}]))
        self.assertEqual(k.returncode, 0, k.stderr)
        again = self.engine(self.pod("pod-3"), "resume", run_id, "--state-dir", STATE)
        self.assertEqual(again.returncode, 2, again.stdout[-2000:] + again.stderr[-2000:])
        self.assertIn(f"run {run_id}'s journal in the cluster (engine-runs/{chunk}) misses record 3 (r00000003; the next "
                      "there is r00000004): what it recorded cannot be told", again.stderr)
        self.assertNotIn("RAN", again.stdout)
        # A whole chunk gone from the middle (here: -j1 of a run that has a -j2) is named too.
        other = json.loads(self.cluster.kubectl("get", "configmap", "-n", "engine-runs", chunk, "-o", "json").stdout)
        fake = {"apiVersion": "v1", "kind": "ConfigMap", "data": {},
                "metadata": {"name": f"engine-run-{run_id}-j2", "namespace": "engine-runs",
                             "labels": other["metadata"]["labels"], "annotations": other["metadata"]["annotations"]}}
        k = subprocess.run(["kubectl", "--kubeconfig", self.cluster.kubeconfig, "apply", "--validate=false", "-f", "-"],
                           input=json.dumps(fake), capture_output=True, text=True, timeout=60)
        self.assertEqual(k.returncode, 0, k.stderr)
        again = self.engine(self.pod("pod-4"), "resume", run_id, "--state-dir", STATE)
        self.assertEqual(again.returncode, 2, again.stderr[-2000:])
        last = max(int(k[1:]) for k in other["data"])
        self.assertIn(f"run {run_id}'s journal in the cluster misses engine-runs/engine-run-{run_id}-j1 (there is a -j2): "
                      f"records from {last + 1} on are lost, so what they recorded cannot be told", again.stderr)

    def test_step_results_past_the_apis_object_limit_are_kept_and_given_back_on_resume(self):
        # The API refuses a ConfigMap over 1 MiB (the simulator as the real one). A step that returns
        # ~3 MB (a list of a big cluster's objects) is kept in parts; eight of ~200 KB each close
        # chunks by their bytes long before 256 records. Killed, resumed on another machine: the
        # steps done are not run again and give back what they returned, byte for byte.
        rb = os.path.join(self.tmp, "big.lua")
        with open(rb, "w") as f:
            f.write(BIG_RESULTS)
        p = subprocess.Popen([ENGINE, "run", rb, "--state-dir", STATE, "--run-id", "big-results"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.pod("pod-1"))
        out = ""
        deadline = time.monotonic() + 60
        while "WAITING" not in out and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            out += line
        p.kill()
        p.wait()
        p.stdout.close()
        self.assertIn("WAITING", out, out[-3000:])
        self.assertEqual(len(re.findall(r"RAN ", out)), 10, out[-3000:])
        names = self.configmaps()
        chunks = sorted((n for n in names if re.search(r"^engine-run-big-results-j\d+$", n)), key=lambda n: int(n.rsplit("j", 1)[1]))
        parts = sorted(n for n in names if n.startswith("engine-run-big-results-r2-"))
        self.assertGreaterEqual(len(parts), 4, names)  # ~3 MB in parts under 1 MiB
        self.assertGreaterEqual(len(chunks), 3, names)
        for name in chunks + parts:
            data = self.cluster.get(f"/api/v1/namespaces/engine-runs/configmaps/{name}")["data"]
            self.assertLessEqual(sum(len(k.encode()) + len(v.encode()) for k, v in data.items()), 1024 * 1024, name)
        j0 = self.cluster.get("/api/v1/namespaces/engine-runs/configmaps/engine-run-big-results-j0")["data"]
        self.assertRegex(j0["r00000002"], r"^@parts [0-9a-f]{8} \d+ \d+$")
        # The next pod: nothing done runs again, and what the steps returned is what they return now.
        again = self.engine(self.pod("pod-2"), "run", rb, "--state-dir", STATE, "--run-id", "big-results")
        self.assertEqual(again.returncode, 0, again.stdout[-3000:] + again.stderr[-2000:])
        self.assertIn("run resumed", again.stdout)
        self.assertNotIn("RAN", again.stdout)
        self.assertIn("BIG SAME\ttrue\t3", again.stdout)
        self.assertIn("MID SAME\ttrue true true true true true true true", again.stdout)
        # A part gone: the next machine names it and runs nothing.
        k = self.cluster.kubectl("delete", "configmap", "-n", "engine-runs", parts[1])
        self.assertEqual(k.returncode, 0, k.stderr)
        third = self.engine(self.pod("pod-3"), "resume", "big-results", "--state-dir", STATE)
        self.assertEqual(third.returncode, 2, third.stdout[-2000:] + third.stderr[-2000:])
        self.assertIn(f"run big-results's journal record 2 is kept in {len(parts)} parts and engine-runs/{parts[1]} "
                      "cannot be read (not found): what it recorded cannot be told", third.stderr)
        self.assertNotIn("RAN", third.stdout)
        # Forgotten with the run: its parts too.
        time.sleep(2.5)  # ConfigMaps carry whole seconds
        r = self.engine(self.pod("pod-4"), "run", self.runbook, "--state-dir", STATE + "?keep_days=0.00002", "-e", "pause=0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse([n for n in self.configmaps() if "big-results" in n], self.configmaps())
        # What the API refuses, as the real one does.
        big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "too-big", "namespace": "engine-runs"},
               "data": {"x": "y" * (1024 * 1024)}}
        k = subprocess.run(["kubectl", "--kubeconfig", self.cluster.kubeconfig, "create", "--validate=false", "-f", "-"],
                           input=json.dumps(big), capture_output=True, text=True, timeout=60)
        self.assertNotEqual(k.returncode, 0)
        self.assertIn('ConfigMap "too-big" is invalid: []: Too long: must have at most 1048576 bytes', k.stderr)

    def test_engine_ctl_from_another_machine_reaches_the_run(self):
        # The run on pod-1, the operator on pod-2: abort, through the run's ctl ConfigMap.
        p = subprocess.Popen([ENGINE, "run", self.runbook, "--state-dir", STATE, "-e", "pause=1"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=self.pod("pod-1"))
        out = ""
        while "RAN 1" not in out:
            line = p.stdout.readline()
            if not line:
                break
            out += line
        run_id = re.search(r" run=(\d{8}-\S+)", out).group(1)
        sent = self.engine(self.pod("pod-2"), "ctl", run_id, "abort", "--state-dir", STATE)
        self.assertEqual(sent.returncode, 0, sent.stderr)
        self.assertIn(f"sent abort to {run_id} in the cluster (engine-runs)", sent.stdout)
        out += p.communicate(timeout=30)[0]
        self.assertEqual(p.returncode, 130, out[-3000:])
        self.assertIn("aborted by an operator: cancelling everything in flight", out)
        self.assertLess(len(re.findall(r"RAN \d", out)), 6, out)
        # The next attempt does not act on the old abort; a run the cluster does not have is named.
        again = self.engine(self.pod("pod-3"), "resume", run_id, "--state-dir", STATE)
        self.assertEqual(again.returncode, 0, again.stdout[-2000:] + again.stderr[-2000:])
        bad = self.engine(self.pod("pod-2"), "ctl", "20990101-000000-nothing-0000", "pause", "--state-dir", STATE)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("no run '20990101-000000-nothing-0000' in the cluster's namespace engine-runs", bad.stderr)

    def test_finished_runs_are_forgotten_after_keep_days_and_bad_input_is_named(self):
        pod = self.pod("pod-1")
        r = self.engine(pod, "run", self.runbook, "--state-dir", STATE, "-e", "pause=0")
        self.assertEqual(r.returncode, 0, r.stderr)
        old = re.search(r" run=(\d{8}-\S+)", r.stdout).group(1)
        time.sleep(2.5)  # ConfigMaps carry whole seconds
        r = self.engine(pod, "run", self.runbook, "--state-dir", STATE + "?keep_days=0.00002", "-e", "pause=0")
        self.assertEqual(r.returncode, 0, r.stderr)
        new = re.search(r" run=(\d{8}-\S+)", r.stdout).group(1)
        names = self.configmaps()
        self.assertFalse([n for n in names if old in n], names)
        self.assertIn(f"engine-run-{new}", names)
        for bad, why in (("k8s://Engine_Runs", "k8s://NAMESPACE needs a namespace name"),
                         (STATE + "?keep_days=soon", "keep_days must be a positive number of days")):
            r = self.engine(pod, "run", self.runbook, "--state-dir", bad)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(why, r.stderr)
        r = self.engine(self.pod("pod-9"), "resume", "20990101-000000-nothing-0000", "--state-dir", STATE)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no run '20990101-000000-nothing-0000' in the cluster's namespace engine-runs", r.stderr)


if __name__ == "__main__":
    unittest.main()
