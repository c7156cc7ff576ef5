"""k8s-upgrade's worker rollout in the lab, each test on a fresh lab: a worker still being prepared
ahead when its turn comes, a worker in flight that does not hold the gate for the next, and the
PreferNoSchedule taints that steer evicted pods onto the workers already done."""
import json
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab.sshd import poll  # noqa: E402

from upgrade_lab import FROM, TO, FreshLab  # noqa: E402


class RolloutCase(FreshLab, unittest.TestCase):
    SUBNET = "127.0.31"  # test_upgrade has 127.0.30, and runs beside this module

    def test_a_worker_still_being_prepared_when_its_turn_comes_waits_for_it(self):
        # w3's mirror stalls from the start (the lab's fault: each fetch waits until it clears), so
        # its preparation ahead hangs at its kubeadm package through the control plane's upgrade
        # and w1's and w2's turns. Its own turn then waits for that preparation instead of running
        # apt beside it, and w3 stays in service meanwhile; cleared, the preparation ends and the
        # turn finds its steps done.
        self.lab("fault", "w3", "apt-fetch-stall")
        p = self.start_upgrade("-e", "workers_at_once=1", "-e", "canary=0")
        killer = threading.Timer(300, p.kill)  # a run that never gets there ends the wait below
        killer.start()
        self.addCleanup(killer.cancel)
        seen = []
        try:
            for line in p.stdout:
                seen.append(line)
                if "waiting for its preparation ahead to end" in line:
                    break
            self.assertRegex(seen[-1], r"\[w3\].*waiting for its preparation ahead to end before its turn")
            nodes = self.nodes()
            self.assertEqual((nodes["w1"]["version"], nodes["w2"]["version"]), (TO, TO))
            self.assertEqual(nodes["w3"], {"version": FROM, "cordoned": False})
        finally:
            self.lab("clear", "w3", "apt-fetch-stall")
        out = "".join(seen) + p.communicate(timeout=300)[0]
        self.assertEqual(p.returncode, 0, out[-3000:])
        self.assert_upgraded()
        rep = self.report(out)
        def spans(what, kind="exec"):
            return [s for s in rep["spans"] if s["kind"] == kind and s.get("host") == "w3" and what in s["name"]]
        drain = spans("w3", "drain")[0]
        for what in ("kubeadm=", "kubeadm upgrade node", "--download-only"):
            done = spans(what)
            self.assertEqual(len(done), 1, (what, done))  # prepared once, not again in its turn
            self.assertLess(done[0]["end"], drain["start"], what)
        with open(f"{self.dir}/nodes/w3/root/var/log/apt/engine-lab-fetch.log") as f:
            self.assertEqual(sorted(line.split()[1] for line in f), ["kubeadm", "kubectl", "kubelet"])

    def test_a_worker_in_flight_does_not_hold_the_gate_for_the_next(self):
        # Two workers at once: w1 and w2 go, w1 stays NotReady (the lab's fault, set once the run
        # has cordoned it) while w2 finishes. w3 is admitted with w1 still in flight: its NotReady
        # is the disruption workers_at_once allows. Only then does the fault clear and w1 finish.
        p = self.start_upgrade("-e", "workers_at_once=2", "-e", "canary=0")
        self.assertTrue(poll(lambda: self.nodes()["w1"]["cordoned"], 300), "w1 was never cordoned")
        self.lab("fault", "w1", "node-notready")
        try:
            admitted = poll(lambda: self.nodes()["w3"]["cordoned"] or self.nodes()["w3"]["version"] == TO, 45)
            w1 = self.nodes()["w1"]
        finally:
            self.lab("clear", "w1", "node-notready")
        self.assertTrue(admitted, "w3 waited for w1, which was still being upgraded")
        self.assertTrue(w1["cordoned"], w1)  # w1 was still in flight when w3 went
        out, _ = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, out[-3000:])
        self.assert_upgraded()
        hosts = self.report(out)["hosts"]
        self.assertLess(hosts["w3"]["start"], hosts["w1"]["start"] + hosts["w1"]["seconds"])


class TaintCase(FreshLab, unittest.TestCase):
    SUBNET = "127.0.31"  # test_upgrade has 127.0.30, and runs beside this module

    WORKERS = 5

    def test_once_a_window_is_done_every_worker_left_is_tainted_and_pods_move_once(self):
        # One worker at a time. In w1's turn nothing is done yet: only the next worker (w2) is
        # tainted, so w1's pods are not all steered onto one node. From w2's turn on (w1 done) every
        # worker left is, and the pods w2, w3 and w4 evict prefer the workers done: none lands on a
        # node drained later, so w3's, w4's and w5's drains move only what was there when w2 began.
        p = self.start_upgrade("-e", "workers_at_once=1", "-e", "canary=0")
        seen, there = {}, None  # the taints seen in w1's and w2's turns; the pods on w3..w5 then

        def look():
            nonlocal there
            items = json.loads(self.kubectl("get", "nodes", "-o", "json").stdout)["items"]
            cordoned = [n["metadata"]["name"] for n in items if n["spec"].get("unschedulable")]
            tainted = sorted(n["metadata"]["name"] for n in items if any(
                t["key"] == "engine.dev/upgrade-next" and t["effect"] == "PreferNoSchedule"
                for t in n["spec"].get("taints") or []))
            if cordoned in (["w1"], ["w2"]):
                seen.setdefault(cordoned[0], tainted)
            if cordoned == ["w2"]:
                pods = json.loads(self.kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
                there = [x["metadata"]["name"] for x in pods if x["spec"].get("nodeName") in ("w3", "w4", "w5")
                         and all(o["kind"] != "DaemonSet" for o in x["metadata"].get("ownerReferences") or [])]
            return there is not None or p.poll() is not None
        self.assertTrue(poll(look, 300), "w2's turn was never seen")
        self.assertEqual(seen.get("w1"), ["w2"], seen)
        self.assertEqual(seen["w2"], ["w2", "w3", "w4", "w5"], seen)
        out, _ = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, out[-3000:])
        self.assert_upgraded()  # every taint gone
        evicted = {s["step"].split("/")[0]: s["results"][0] for s in self.report(out)["steps"]
                   if s["step"].endswith("/drain")}
        self.assertEqual(evicted["w2"], 2, evicted)  # the lab starts two of its pods there
        self.assertEqual(evicted["w3"] + evicted["w4"] + evicted["w5"], len(there), (evicted, there))

if __name__ == "__main__":
    unittest.main()
