"""The cluster lease stops a holder that can no longer prove it holds it: cut off from the API
server by a partition, frozen past its TTL with SIGSTOP, or killed. Two engines on one simulator;
each prints a line per action (a journaled step); the test checks that no holder starts an action
once another could have taken the lease, and that the takeover waited out the TTL."""
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab.k8sim import fixture as fx  # noqa: E402
from lab.netfaults import BlackholeProxy as Proxy  # noqa: E402
from labtest import kill_all  # noqa: E402
from test_k8s import TEMPLATE, K8sTest  # noqa: E402

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(HERE, "../../build/bin/engine"))
TTL = 3
LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/upgrade"

# Takes the lease (waiting up to p.wait seconds for it), then acts p.acts times, 0.1 s apart. An
# action's time is taken before its step starts, so a holder frozen between the check and the
# print still shows when it decided to act.
RUNBOOK = """
local k8s = require "engine.k8s"
local time = require "engine.time"
return runbook {
  name = "lease-test",
  params = { kc = { type = "string" }, who = { type = "string" }, acts = { type = "integer", default = 100 },
             wait = { type = "number", default = 0 }, handle = { type = "boolean", default = false } },
  run = function(p)
    k8s.configure { kubeconfig = p.kc }
    local opts = { ttl = %d }
    if p.handle then
      opts.on_lost = function(why) print("ON_LOST " .. why) end
    end
    local lease, err, msg
    local t0 = time.monotonic()
    repeat
      lease, err, msg = k8s.lease("upgrade", opts)
      if not lease then sleep(0.2) end
    until lease or time.monotonic() - t0 > p.wait
    assert(lease, msg or err)
    print(string.format("TOOK %%s %%.3f", p.who, time.now()))
    for i = 1, p.acts do
      local t = time.now()
      local ok, e = pcall(step, "act", function() print(string.format("ACT %%s %%.3f", p.who, t)) end)
      if not ok then
        print("REFUSED " .. tostring(e))
        return
      end
      sleep(0.1)
    end
    lease:release()
  end,
}
""" % TTL


def parse_time(s):
    return datetime.datetime.strptime(s.rstrip("Z")[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class LeaseWatcher:
    """Polls the Lease in the simulator and keeps, per holder, the last renewTime it showed."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.renewed = {}
        self.holders = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self):
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                spec = self.cluster.get(LEASE)["spec"]
            except Exception:  # not created yet
                spec = {}
            holder = spec.get("holderIdentity")
            if holder and spec.get("renewTime"):
                self.renewed[holder] = parse_time(spec["renewTime"])
                if not self.holders or self.holders[-1] != holder:
                    self.holders.append(holder)
            time.sleep(0.05)

    def wait_holders(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while len(self.holders) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.holders) >= n

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)


class TestLeaseStopsItsHolder(unittest.TestCase):
    def setUp(self):
        self.cluster = fx.Cluster([fx.namespace("default"), fx.namespace("kube-system")])
        self.tmp = tempfile.mkdtemp(prefix="engine-lease-")
        self.rb = os.path.join(self.tmp, "lease.lua")
        with open(self.rb, "w") as f:
            f.write(RUNBOOK)
        self.watch = LeaseWatcher(self.cluster)
        self.procs = []

    def tearDown(self):
        kill_all(self.procs)
        self.watch.close()
        self.cluster.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, who, kubeconfig=None, acts=100, wait=0, handle=False):
        p = subprocess.Popen([ENGINE, "run", self.rb, "-e", f"kc={kubeconfig or self.cluster.kubeconfig}",
                              "-e", f"who={who}", "-e", f"acts={acts}", "-e", f"wait={wait}",
                              "-e", f"handle={'true' if handle else 'false'}",
                              "--state-dir", os.path.join(self.tmp, "state-" + who)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def finish(self, p, timeout=60):
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err

    @staticmethod
    def times(out, tag, who):
        return [float(t) for t in re.findall(rf"\b{tag} {who} ([\d.]+)$", out, re.M)]

    def assert_one_holder_at_a_time(self, out_a, out_b):
        acts_a, took_b = self.times(out_a, "ACT", "A"), self.times(out_b, "TOOK", "B")
        self.assertGreater(len(acts_a), 3, "A never acted:\n" + out_a)
        self.assertEqual(len(took_b), 1, "B never took the lease:\n" + out_b)
        late = [t for t in acts_a if t >= took_b[0]]
        self.assertEqual(late, [], f"A acted after B took the lease at {took_b[0]:.3f}")
        # B took it over only once A's last renewal was older than the TTL.
        holder_a = self.watch.holders[0]
        self.assertGreaterEqual(took_b[0], self.watch.renewed[holder_a] + TTL - 0.05)
        return acts_a, took_b[0]

    def test_a_holder_cut_off_from_the_api_stops_acting_before_another_can_take_over(self):
        proxy = Proxy(self.cluster.port)
        try:
            kc = self.cluster.write_kubeconfig("kc-proxy", server=f"https://127.0.0.1:{proxy.port}")
            a = self.start("A", kubeconfig=kc, acts=300)
            self.assertTrue(self.watch.wait_holders(1), "A never took the lease")
            time.sleep(1.5)
            cut_at = time.time()
            proxy.cut()
            b = self.start("B", acts=20, wait=30)
            code_b, out_b, err_b = self.finish(b)
            self.assertEqual(code_b, 0, out_b + err_b)
            code_a, out_a, err_a = self.finish(a)
        finally:
            proxy.close()
        self.assertEqual(code_a, 1, out_a + err_a)
        self.assertIn("lease lost", out_a + err_a)
        self.assertRegex(err_a, r"the cluster lease kube-system/upgrade was lost \(no renewal succeeded")
        acts_a, took_b = self.assert_one_holder_at_a_time(out_a, out_b)
        # A stopped within the renew deadline (2/3 of the TTL) of its last renewal, well before B.
        self.assertLess(max(acts_a), cut_at + TTL * 2 / 3 + 0.5)

    def test_a_holder_frozen_past_its_ttl_does_not_act_again_when_thawed(self):
        a = self.start("A", acts=300)
        self.assertTrue(self.watch.wait_holders(1), "A never took the lease")
        time.sleep(1)
        os.kill(a.pid, signal.SIGSTOP)
        stopped_at = time.time()
        b = self.start("B", acts=40, wait=30)
        try:
            self.assertTrue(self.watch.wait_holders(2), "B never took the lease")
            time.sleep(1)  # B is acting: A wakes up in the middle of it
        finally:
            os.kill(a.pid, signal.SIGCONT)
        code_a, out_a, err_a = self.finish(a)
        code_b, out_b, err_b = self.finish(b)
        self.assertEqual(code_b, 0, out_b + err_b)
        self.assertEqual(code_a, 1, out_a + err_a)
        self.assertIn("lease lost", out_a + err_a)
        acts_a, _ = self.assert_one_holder_at_a_time(out_a, out_b)
        self.assertLess(max(acts_a), stopped_at + 0.05, "A started an action after it was thawed")

    def test_a_killed_holder_is_taken_over_only_after_its_ttl(self):
        a = self.start("A", acts=300)
        self.assertTrue(self.watch.wait_holders(1), "A never took the lease")
        time.sleep(1)
        a.kill()
        code_a, out_a, _ = self.finish(a)
        b = self.start("B", acts=5, wait=30)
        code_b, out_b, err_b = self.finish(b)
        self.assertEqual(code_b, 0, out_b + err_b)
        self.assert_one_holder_at_a_time(out_a, out_b)

    def test_a_runbook_that_handles_the_loss_is_told_and_refused_but_not_cancelled(self):
        proxy = Proxy(self.cluster.port)
        try:
            kc = self.cluster.write_kubeconfig("kc-proxy", server=f"https://127.0.0.1:{proxy.port}")
            a = self.start("A", kubeconfig=kc, acts=300, handle=True)
            self.assertTrue(self.watch.wait_holders(1), "A never took the lease")
            time.sleep(1)
            proxy.cut()
            code_a, out_a, err_a = self.finish(a)
        finally:
            proxy.close()
        # on_lost ran; the next step was refused with an error the runbook caught; it ended as it chose.
        self.assertEqual(code_a, 0, out_a + err_a)
        self.assertRegex(out_a, r"ON_LOST no renewal succeeded")
        self.assertRegex(out_a, r"REFUSED .*step act: refused, the lease kube-system/upgrade is lost")


class TestLease(K8sTest):
    HOLD = """
    local lock <close> = assert(k8s.lease("upgrade", { ttl = 3 }))
    print("HOLDING " .. lock.holder)
    sleep(tonumber(p.arg))
    print("still held", lock.held)
"""

    def start(self, seconds):
        path = os.path.join(self.tmp, f"hold{time.monotonic_ns()}.lua")
        with open(path, "w") as f:
            f.write(TEMPLATE % self.HOLD)
        p = subprocess.Popen([ENGINE, "run", path, "-e", f"kc={self.cluster.kubeconfig}", "-e", f"arg={seconds}",
                              "--state-dir", os.path.join(self.tmp, "state")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if "HOLDING" in line or not line:
                return p
        return p

    def test_a_second_engine_is_refused_while_the_holder_renews(self):
        holder = self.start(7)  # longer than the 3 s TTL: only renewals keep it
        time.sleep(4)
        out = self.ok(self.run_lua("""
    local l, err, msg = k8s.lease("upgrade", { ttl = 3 })
    assert(l == nil and err == "held", tostring(err))
    print(msg)
"""))
        self.assertRegex(out, r"lease kube-system/upgrade is held by \S+-k8s-test-\w+ \(renewed [\d.]+s ago, duration 3s\)")
        out, err = holder.communicate(timeout=60)
        self.assertEqual(holder.returncode, 0, err)
        self.assertIn("still held\ttrue", out)
        # Released at the end of its <close> scope: the next run takes it at once.
        self.ok(self.run_lua('assert(k8s.lease("upgrade", { ttl = 3 }))'))

    def test_renewals_are_not_queued_behind_the_runbooks_own_calls(self):
        # qps 2: twelve calls at once keep the client-side rate limit's queue 5.5 s long, past the
        # 2 s a renewal of a 3 s lease has. Queued behind them, a renewal would lose the lease of
        # a run that is alive and well; it goes past the queue instead.
        r = self.run_lua("""
    k8s.configure { kubeconfig = p.kc, qps = 2, burst = 1 }
    local lock <close> = assert(k8s.lease("upgrade", { ttl = 3 }))
    local calls = {}
    for i = 1, 12 do calls[i] = i end
    require("engine.fleet").each(calls, { at_once = 12 }, function() assert(k8s.server_version()) end)
    print("still held", lock.held)
""", env=dict(os.environ, ENGINE_HTTP_DEBUG="1"))
        out = self.ok(r)
        self.assertIn("still held\ttrue", out)
        self.assertNotIn("lease lost", out)
        self.assertRegex(r.stderr, r"client-side rate limit \(qps 2, burst 1\): \d+ waiting")  # the queue was there

    def test_a_lease_whose_holder_died_is_taken_over_after_its_ttl(self):
        holder = self.start(60)
        holder.kill()  # SIGKILL: no release, no renewals
        holder.wait()
        out = self.ok(self.run_lua("""
    local l, err = k8s.lease("upgrade", { ttl = 3 })
    assert(l == nil and err == "held", "taken too early: " .. tostring(err))
    local t0 = time.monotonic()
    repeat
      sleep(0.5)
      l, err = k8s.lease("upgrade", { ttl = 3 })
    until l or time.monotonic() - t0 > 10
    assert(l, tostring(err))
    print("taken over")
"""))
        self.assertIn("taken over", out)
        lease = self.cluster.get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/upgrade")
        self.assertEqual(lease["spec"]["leaseTransitions"], 1)


if __name__ == "__main__":
    unittest.main()
