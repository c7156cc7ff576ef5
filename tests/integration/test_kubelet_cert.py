"""runbooks/kubelet-cert-renew.lua in the lab (seed 001's node): a kubelet whose client certificate
expired cannot start ("part of the existing bootstrap client certificate is expired", no
bootstrap-kubelet.conf), and its node stays NotReady. doctor and cert-check name it and the runbook;
a signer without the CA key is refused; the dry run changes nothing; the run signs new credentials
on a control-plane node, keeps the old ones, and the kubelet starts with them (the lab's kubelet
checks the certificate's dates, name, CA and key, as a real one does); the key is in no log; a
second run has nothing to do."""
import glob
import hashlib
import json
import os
import subprocess
import time
import unittest

from test_etcd_migration import ROOT, Lab, lab

RENEW = os.path.join(ROOT, "runbooks", "kubelet-cert-renew.lua")
DOCTOR = os.path.join(ROOT, "runbooks", "doctor.lua")
NODES = ("cp2", "w1")


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


class KubeletCert(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lb = Lab(workers=1, subnet="127.0.79")

    @classmethod
    def tearDownClass(cls):
        cls.lb.down()

    def ready(self):
        r = subprocess.run(["kubectl", "--kubeconfig", f"{self.lb.dir}/kubeconfig", "get", "nodes", "-o", "json"],
                           capture_output=True, text=True, timeout=60, check=True)
        return {n["metadata"]["name"]: next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready")
                for n in json.loads(r.stdout)["items"]}

    def wait_ready(self, want, deadline=60):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            now = self.ready()
            if all(now[n] == want for n in NODES):
                return now
            time.sleep(0.5)
        self.fail(f"{NODES} not Ready={want} within {deadline}s: {self.ready()}")

    def conf(self, name):
        return f"{self.lb.root(name)}/etc/kubernetes/kubelet.conf"

    def test_expired_found_refused_then_replaced(self):
        lb = self.lb
        for name in NODES:
            lab("fault", name, "kubelet-cert-expired", "--dir", lb.dir)
        self.wait_ready("False")
        for name in NODES:
            self.assertIn("part of the existing bootstrap client certificate is expired",
                          read(f"{lb.root(name)}/var/log/kubelet.log"))
        before = {n: hashlib.sha256(read(self.conf(n), "rb")).hexdigest() for n in NODES}

        r = lb.engine("run", DOCTOR)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertRegex(out, r"w1\s+certificate-expired\s+kubelet\.conf \(/etc/kubernetes/kubelet\.conf\) expired \S+: "
                              r"the kubelet cannot start with it")
        self.assertIn("fix: runbooks/kubelet-cert-renew.lua", out)

        # cert-check says what renews it.
        r = lb.engine("run", os.path.join(ROOT, "runbooks", "cert-check.lua"))
        self.assertEqual(r.returncode, 1, (r.stdout + r.stderr)[-3000:])
        self.assertRegex(r.stderr, r"w1 kubelet\.conf \(/etc/kubernetes/kubelet\.conf, expired \S+\): runbooks/kubelet-cert-renew\.lua")

        # No signer: w1 holds no CA key. Refused, nothing changed.
        r = lb.engine("run", RENEW, "-e", "control_plane=w1")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn("precheck failed, nothing was changed:\n  w1 cannot sign: no /etc/kubernetes/pki/ca.key (an external CA?)", out)
        # A bad amount is refused before anything runs.
        r = lb.engine("run", RENEW, "-e", "at_once=0")
        self.assertEqual(r.returncode, 2, (r.stdout + r.stderr)[-2000:])
        self.assertIn("at_once", r.stderr)

        # The dry run: the plan, nothing written.
        r = lb.engine("run", RENEW, "--dry-run")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertRegex(out, r"w1\s+/etc/kubernetes/kubelet\.conf\s+\S+\s+replace: expired")
        self.assertRegex(out, r"cp1\s+/etc/kubernetes/kubelet\.conf\s+\S+\s+\d+ days left")
        self.assertIn("would sign a certificate for system:node:w1 on cp1 (kubeadm kubeconfig user --org system:nodes)", out)
        self.assertIn("would sign a certificate for system:node:cp2 on cp1", out)
        for n in NODES:
            self.assertEqual(hashlib.sha256(read(self.conf(n), "rb")).hexdigest(), before[n])

        # The run: new credentials signed on cp1, the old ones kept, each kubelet started with them.
        r = lb.engine("run", RENEW)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.wait_ready("True", deadline=5)  # the run waited for it
        for n in NODES:
            self.assertIn("client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem", read(self.conf(n)))
            link = f"{lb.root(n)}/var/lib/kubelet/pki/kubelet-client-current.pem"
            pem = lb.root(n) + os.readlink(link)  # the node's absolute path, as the kubelet's rotation leaves it
            self.assertRegex(os.readlink(link), r"^/var/lib/kubelet/pki/kubelet-client-\d{4}(-\d\d){5}\.pem$")
            self.assertEqual(oct(os.stat(pem).st_mode & 0o777), "0o600")
            x = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "compat", "-checkend", "86400"],
                               input=read(pem, "rb"), capture_output=True)
            self.assertEqual(x.returncode, 0, x.stdout)  # valid for more than a day
            self.assertIn(f"/O=system:nodes/CN=system:node:{n}", x.stdout.decode())
            backups = glob.glob(f"{lb.root(n)}/var/lib/kubelet/engine-backup/credentials-*/kubelet.conf")
            self.assertEqual(len(backups), 1)
            self.assertEqual(hashlib.sha256(read(backups[0], "rb")).hexdigest(), before[n])
            self.assertEqual(oct(os.stat(os.path.dirname(backups[0])).st_mode & 0o777), "0o700")
            # The key passed through the controller: in no log, report or journal.
            key = read(pem).split("-----BEGIN PRIVATE KEY-----", 1)[1].split("-----END", 1)[0].split()
            for f in glob.glob(f"{lb.dir}/state/**/*", recursive=True):
                if os.path.isfile(f):
                    body = read(f, "rb").decode(errors="replace")
                    self.assertFalse(any(line in body for line in key if len(line) > 20), f)
        self.assertIn("new kubelet credentials", out)

        # Nothing due now.
        r = lb.engine("run", RENEW)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn("Nothing to replace: every kubelet client certificate is valid.", out)
        r = lb.engine("run", DOCTOR)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])

        # under_days: a valid certificate replaced ahead of its end, and the running kubelet
        # restarted to load it (it keeps the old one in memory otherwise).
        link = f"{lb.root('w1')}/var/lib/kubelet/pki/kubelet-client-current.pem"
        was = os.readlink(link)
        starts = read(f"{lb.root('w1')}/var/log/kubelet.log").count("part of the existing")
        time.sleep(1.1)  # the new file's name has the second in it
        begun = int(time.time())
        r = lb.engine("run", RENEW, "-e", "nodes=w1", "-e", "under_days=400")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertRegex(out, r"w1\s+/var/lib/kubelet/pki/kubelet-client-current\.pem\s+\S+\s+replace: 36\d days left")
        self.assertNotEqual(os.readlink(link), was)
        self.assertNotIn("kubelet running with them: already so", out)
        restarted = json.loads(subprocess.run(
            ["kubectl", "--kubeconfig", f"{lb.dir}/kubeconfig", "get", "node", "w1", "-o", "json"], capture_output=True,
            text=True, timeout=60, check=True).stdout)["metadata"]["annotations"]["engine.dev/kubelet-restarted"]
        self.assertGreaterEqual(restarted.split()[0], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(begun)))
        self.assertEqual(read(f"{lb.root('w1')}/var/log/kubelet.log").count("part of the existing"), starts)
        self.assertEqual(self.ready()["w1"], "True")


if __name__ == "__main__":
    unittest.main()
