"""The lab's parts on their own, without a lab up: the node simulators' blocking wait, the
kubelet's scan of its manifests, and lab down's hold on the namespaces it ends."""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import unittest
import unittest.mock

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab.sshd import poll  # noqa: E402


class WakeTest(unittest.TestCase):
    """The node simulators' blocking wait (lab/node/wake.py): what an idle lab node waits on, so a
    3+100 lab idles without polling. Each wait has a long timeout; what is asserted is why it woke."""

    def setUp(self):
        from lab.node.wake import Wake, exits
        self.Wake, self.exits = Wake, exits
        self.old = signal.getsignal(signal.SIGTERM)
        self.addCleanup(signal.signal, signal.SIGTERM, self.old)
        self.addCleanup(signal.set_wakeup_fd, -1)

    def later(self, fn, delay=0.2):
        t = threading.Timer(delay, fn)
        t.start()
        self.addCleanup(t.cancel)

    def test_a_directory_made_later_is_followed(self):
        top = tempfile.mkdtemp(prefix="engine-wake-")
        sub = f"{top}/manifests"
        wake = self.Wake([top, sub])  # sub does not exist yet: the parent's watch sees it made
        self.later(lambda: os.mkdir(sub))
        wake.wait(60)
        self.assertTrue(wake.changed and os.path.isdir(sub))
        # Written beside, then renamed in: one event (IN_MOVED_TO). Written in place, its open
        # wakes the waiter and its close can come after the wait drained the queue, waking the
        # next wait too (seen under load).
        fd, made = tempfile.mkstemp(prefix="engine-wake-file-")
        os.close(fd)
        self.addCleanup(lambda: os.path.exists(made) and os.unlink(made))
        self.later(lambda: os.rename(made, f"{sub}/etcd.yaml"))
        wake.wait(60)  # now watched itself: a file put in it wakes the waiter
        self.assertTrue(wake.changed and os.path.exists(f"{sub}/etcd.yaml"))
        wake.wait(0.05)
        self.assertFalse(wake.changed, "nothing changed: a timeout")

    def test_a_child_exit_and_a_signal_wake_it(self):
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        wake = self.Wake()
        child = subprocess.Popen(["sleep", "0.2"])
        ends = self.exits(child.pid)
        self.assertEqual(wake.wait(60, [ends]), [ends])
        self.assertEqual(child.wait(5), 0)
        os.close(ends)
        self.later(lambda: os.kill(os.getpid(), signal.SIGTERM))
        wake.wait(60)
        self.assertTrue(wake.changed and stopping)


class KubeletScanTest(unittest.TestCase):
    """The node simulator's kubelet reading its manifests directory while a runbook moves a file out
    of it (etcd-to-systemd takes etcd.yaml away): a crash there restarted the kubelet, and the
    restart's NotReady moment was a Ready flap k8s-upgrade's quiet_hours then refused."""

    def test_a_manifest_moved_away_during_the_scan_is_no_crash(self):
        from lab.node import kubelet
        d = tempfile.mkdtemp(prefix="engine-kubelet-scan-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d, f"{d}.etcd.yaml"]))
        for name in ("etcd", "kube-apiserver"):
            with open(f"{d}/{name}.yaml", "w") as f:
                f.write(f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n"
                        f"spec:\n  containers:\n  - name: {name}\n    image: registry.k8s.io/{name}:v1\n")
        load = kubelet.yamltext.load

        def load_then_move(data):  # the file leaves between its read and anything after it
            if b"name: etcd" in data and os.path.exists(f"{d}/etcd.yaml"):
                os.rename(f"{d}/etcd.yaml", f"{d}.etcd.yaml")  # out of the directory
            return load(data)
        with unittest.mock.patch.object(kubelet, "MANIFESTS", d), \
                unittest.mock.patch.object(kubelet.yamltext, "load", load_then_move):
            found = kubelet.scan()
            self.assertEqual(sorted(found), ["etcd", "kube-apiserver"])  # read whole before it left
            self.assertEqual(sorted(kubelet.scan()), ["kube-apiserver"])  # and gone at the next look


class NamespaceReuseTest(unittest.TestCase):
    """The kernel gives a freed mount namespace's id to the next one made. A lab going down ends its
    nodes by namespace id while another test's lab may be coming up: it must not end that one's."""

    def test_a_lab_going_down_ends_no_process_of_a_namespace_made_meanwhile(self):
        from lab.procs import hold_ns, kill_ns, mnt_ns
        old = subprocess.Popen(["unshare", "-m", "sleep", "60"])
        self.addCleanup(old.kill)
        self.assertTrue(poll(lambda: mnt_ns(old.pid) not in (None, mnt_ns(os.getpid())), 5))
        ns = mnt_ns(old.pid)
        held = hold_ns({ns})
        try:
            old.kill()
            old.wait(timeout=10)
            new = subprocess.Popen(["unshare", "-m", "sleep", "60"])  # a lab's node booting meanwhile
            self.addCleanup(new.wait, 10)
            self.addCleanup(new.kill)
            self.assertTrue(poll(lambda: mnt_ns(new.pid) not in (None, mnt_ns(os.getpid())), 5))
            self.assertNotEqual(mnt_ns(new.pid), ns)  # the held id is not given out again
            kill_ns(ns)  # the old namespace: nothing left in it, nothing else touched
            self.assertIsNone(new.poll())
        finally:
            for fd in held.values():
                os.close(fd)


if __name__ == "__main__":
    unittest.main()
