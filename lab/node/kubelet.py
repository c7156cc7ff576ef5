"""The simulated kubelet: runs every valid manifest in /etc/kubernetes/manifests as kubelet does,
reports the node and its static pods (as mirror pods) to the API simulator.

Two manifests for one pod name: the definition already running keeps running, and between new ones
the oldest file wins, so a stale kube-apiserver.yaml.bak keeps the old image running after kubeadm
rewrote kube-apiserver.yaml (seed 000). etcd runs as a real process from its manifest's command."""
import calendar
import os
import signal
import sys
import time

from lab import yamltext
from lab.node.common import (LAB, MANIFESTS, PODS, alive, api, disk, disk_full, disk_used, fault, file_hash, node,
                         pkg_version, read_json, terminate, write_json)
from lab.node.manifests import version_of_image
from lab.node.wake import Wake

# A kubelet posts its node's status when it changes and otherwise every nodeStatusReportFrequency
# (5 minutes with leases); the lab's is shorter so a heartbeat is seen within a test, yet rare
# enough that 100 idle nodes cost the API simulator nothing.
HEARTBEAT = 40.0
RETRY = 1.0   # after a failed report
IDLE = 30.0   # the longest block without an event: a net under anything inotify does not see
RESTART_NOT_READY = 1.5  # seconds a restarted kubelet reports NotReady (bench/upgrade's floor counts it)


def scan():
    """pod name -> [(mtime, file, hash, pod)] for every valid manifest (dot files are ignored)."""
    found = {}
    try:
        names = sorted(os.listdir(MANIFESTS))
    except OSError:
        return found
    for f in names:
        path = os.path.join(MANIFESTS, f)
        if f.startswith(".") or not os.path.isfile(path):
            continue
        try:
            # The open file's own mtime: a manifest moved away after the listing (an etcd migration
            # takes etcd.yaml out) is skipped, never a crash and a restart (a Ready flap).
            with open(path, "rb") as fh:
                data, mtime = fh.read(), os.fstat(fh.fileno()).st_mtime
            pod = yamltext.load(data)
            name = pod["metadata"]["name"]
            pod["spec"]["containers"][0]["image"]
        except Exception:  # kubelet logs an invalid manifest and goes on
            continue
        found.setdefault(name, []).append((mtime, path, file_hash(data), pod))
    return found


def start_process(name, pod):
    c = pod["spec"]["containers"][0]
    cmd = list(c.get("command") or []) + list(c.get("args") or [])
    if name != "etcd" or not cmd:
        return None
    import subprocess  # here: only a control-plane node's etcd is a process; a worker's kubelet starts without it
    os.makedirs("/var/log/pods", exist_ok=True)
    log = open(f"/var/log/pods/{name}.log", "ab")
    return subprocess.Popen(["/usr/bin/etcd"] + cmd[1:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True).pid


def credentials_problem(name):
    """What a real kubelet says at start when kubelet.conf's client certificate (embedded, or the
    file it points at: kubelet-client-current.pem) cannot be used: expired (seed 001's node: "part of
    the existing bootstrap client certificate is expired", and with no bootstrap-kubelet.conf it
    exits), not signed by the cluster CA, not system:node:NAME, or not the key's: a list of lines.
    When usable: its NotAfter (epoch seconds)."""
    import base64
    import subprocess
    try:
        with open("/etc/kubernetes/kubelet.conf") as f:
            user = yamltext.load(f)["users"][0]["user"]
        if user.get("client-certificate-data"):
            cert, key = base64.b64decode(user["client-certificate-data"]), base64.b64decode(user.get("client-key-data") or "")
        else:
            with open(user["client-certificate"], "rb") as f:
                cert = f.read()
            with open(user.get("client-key") or user["client-certificate"], "rb") as f:
                key = f.read()
    except (OSError, KeyError, IndexError, TypeError, ValueError, yamltext.YAMLError) as e:
        return [f"failed to run Kubelet: invalid kubeconfig: {e}"]
    x = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-subject", "-pubkey", "-checkend", "0",
                        "-nameopt", "compat"], input=cert, capture_output=True)
    out = x.stdout.decode(errors="replace")
    if "notAfter=" not in out:
        return ["failed to run Kubelet: unable to load client CA file: data does not contain any valid RSA or ECDSA certificates"]
    if x.returncode != 0:  # -checkend 0: it has expired
        end = out.split("notAfter=", 1)[1].splitlines()[0]
        return [f"part of the existing bootstrap client certificate is expired: {end}",
                "failed to run Kubelet: unable to load bootstrap kubeconfig: stat /etc/kubernetes/bootstrap-kubelet.conf: "
                "no such file or directory"]
    if f"CN=system:node:{name}" not in out or "O=system:nodes" not in out:
        return [f"failed to run Kubelet: the client certificate is not system:node:{name} in system:nodes: "
                f"{out.split('subject=', 1)[1].splitlines()[0]}"]
    v = subprocess.run(["openssl", "verify", "-CAfile", "/etc/kubernetes/pki/ca.crt"], input=cert, capture_output=True)
    if v.returncode != 0:
        return ["failed to run Kubelet: x509: certificate signed by unknown authority"]
    k = subprocess.run(["openssl", "pkey", "-pubout"], input=key, capture_output=True)
    if k.returncode != 0 or k.stdout.strip() not in x.stdout:
        return ["failed to run Kubelet: tls: private key does not match public key"]
    end = out.split("notAfter=", 1)[1].splitlines()[0]
    return calendar.timegm(time.strptime(end.replace("  ", " "), "%b %d %H:%M:%S %Y GMT"))


# The credentials last found usable: (kubelet.conf's and its certificate file's stat) and NotAfter.
# A kubelet restarted with the same files (every upgrade restarts it) checks only the date, without
# three openssl processes on its way to Ready (bench/upgrade's floor counts that path).
CHECKED = f"{LAB}/kubelet-credentials.json"


def credentials_stamp(root=""):
    """root: the node's root as the host sees it (lab up), "" on the node."""
    stamp = []
    for path in ("/etc/kubernetes/kubelet.conf", "/var/lib/kubelet/pki/kubelet-client-current.pem"):
        try:
            st = os.stat(root + path)
            stamp.append([st.st_ino, st.st_mtime_ns, st.st_size])
        except OSError:
            stamp.append(None)
    return stamp


def remember_credentials(name, not_after, root=""):
    """Said usable until not_after (lab up says so for the certificate it has just made)."""
    write_json(root + CHECKED, {"stamp": credentials_stamp(root), "name": name, "not_after": not_after})


def credentials_checked(name):
    """credentials_problem, with the last usable answer kept while the files are the same."""
    last = read_json(CHECKED, {})
    if last.get("stamp") == credentials_stamp() and last.get("name") == name and time.time() < last.get("not_after", 0):
        return None
    why = credentials_problem(name)
    if isinstance(why, list):
        return why
    remember_credentials(name, why)
    return None


class Kubelet:
    def __init__(self):
        self.node = node()
        self.version = "v" + (pkg_version("kubelet") or "0.0.0")
        booting = os.path.exists(f"{LAB}/booting")
        if booting:
            os.unlink(f"{LAB}/booting")
        # A restarted kubelet reports NotReady for a moment, as a real one does until its PLEG settles.
        self.not_ready_until = 0 if booting else time.monotonic() + RESTART_NOT_READY
        self.pods = read_json(PODS, {})
        for name, p in list(self.pods.items()):  # adopt what a previous kubelet left running
            if p.get("pid") and not alive(p["pid"]):
                p["pid"] = start_process(name, self.pod_of(p))
        self.last_report = 0
        self.reported = None  # the status the API has (None: not yet, or the last report failed)
        self.stopping = False
        self.no_space = False
        # Pods whose manifest left while the fault etcd-old-holds-datadir is on: their process goes
        # on (a container slow to stop), holding etcd's data directory, until the fault is cleared.
        self.lingering = {}

    def pod_of(self, p):
        try:
            with open(p["file"]) as f:
                return yamltext.load(f)
        except (OSError, yamltext.YAMLError):
            return p["pod"]

    def reconcile(self):
        changed = False
        if disk_full(disk()):
            # No space to write a pod's files: every container fails and none can be created
            # (seed 002), until the kubelet restarts with space again.
            self.no_space = True
            for name in list(self.pods):
                terminate(self.pods.pop(name).get("pid"))
                changed = True
            if changed:
                write_json(PODS, self.pods)
            return changed
        if self.no_space:
            if fault("disk-full"):
                return False  # back-off: the pods come back when the kubelet restarts
            self.no_space = False  # the lab's fault cleared: as after the operator's own restart
        found = scan()
        for name in list(self.pods):
            if name not in found:
                gone = self.pods.pop(name)
                if name == "etcd" and fault("etcd-old-holds-datadir") and gone.get("pid"):
                    self.lingering[name] = gone
                else:
                    terminate(gone.get("pid"))
                changed = True
        for name in list(self.lingering):
            p = self.lingering[name]
            back = [c for c in found.get(name, []) if c[2] == p["hash"]]
            if back and name not in self.pods:  # the same manifest is back: the old container is adopted
                p["file"] = back[0][1]
                self.pods[name] = self.lingering.pop(name)
                changed = True
            elif not fault("etcd-old-holds-datadir") or not alive(p.get("pid") or 0):
                terminate(self.lingering.pop(name).get("pid"))
        for name, cands in found.items():
            cur = self.pods.get(name)
            if cur and any(h == cur["hash"] for _, _, h, _ in cands):
                keep = [c for c in cands if c[2] == cur["hash"]][0]
                if keep[1] != cur["file"]:
                    cur["file"] = keep[1]
                    changed = True
                continue
            mtime, path, h, pod = min(cands, key=lambda c: (c[0], c[1]))
            if cur and name == "kube-apiserver" and fault("apiserver-phase-timeout"):
                continue  # the new apiserver never comes up: its static Pod hash never changes
            if cur:
                terminate(cur.get("pid"))
            image = pod["spec"]["containers"][0]["image"]
            self.pods[name] = {"file": path, "hash": h, "image": image, "version": version_of_image(image),
                               "started": time.time(), "ready_at": time.time() + self.node.get("pod_start_delay", 1.0),
                               "pid": start_process(name, pod), "pod": {"metadata": pod["metadata"]}}
            changed = True
        for p in self.pods.values():
            if not p.get("ready") and time.time() >= p["ready_at"]:
                p["ready"] = True
                changed = True
        if changed:
            write_json(PODS, self.pods)
        return changed

    def status(self):
        d = disk()
        ready = time.monotonic() >= self.not_ready_until and not fault("node-notready") and not self.stopping
        reason = "KubeletReady" if ready else ("KubeletStopped" if self.stopping else "KubeletNotReady")
        return {"node": self.node["name"], "ready": ready, "reason": reason, "version": self.version,
                "disk_pressure": disk_used(d) >= 0.9 * d["size"], "ip": self.node["ip"],
                "pods": [{"name": n, "image": p["image"], "hash": p["hash"], "ready": bool(p.get("ready")),
                          "source": p["file"], "started": p["started"]} for n, p in sorted(self.pods.items())]}

    def report(self, body):
        try:
            api("POST", "/_sim/kubelet", body, timeout=5)
            self.last_report, self.reported = time.monotonic(), body
        except Exception as e:  # the API may be down; a real kubelet retries too
            self.reported = None
            print(f"report failed: {e}", file=sys.stderr, flush=True)

    def next_wake(self):
        """Seconds until something changes without an event: a pod's start delay ends, the NotReady
        moment after a restart ends, the next heartbeat (or retry) is due."""
        now = time.monotonic()
        due = [self.last_report + (HEARTBEAT if self.reported is not None else RETRY)]
        if self.not_ready_until > now:
            due.append(self.not_ready_until)
        wall = time.time()
        due += [now + p["ready_at"] - wall for p in self.pods.values() if not p.get("ready")]
        if self.lingering:
            due.append(now + 1.0)  # a lingering process may exit on its own
        return max(0.0, min(due) - now) + 0.01

    def run(self):
        def on_term(*_):
            self.stopping = True
        signal.signal(signal.SIGTERM, on_term)
        # Woken by what changes what the kubelet runs or reports: the manifests, the lab's faults,
        # disk.json and packages.json in the node's lab directory, kubelet.conf being written.
        wake = Wake(["/etc/kubernetes", MANIFESTS, f"{LAB}/faults", LAB])
        checked = False
        while not self.stopping:
            if not os.path.exists("/etc/kubernetes/kubelet.conf"):  # not joined yet: a real kubelet restarts until kubeadm writes it
                wake.wait(IDLE)
                continue
            if not checked:  # at start, as a real kubelet: it fails and systemd starts it again
                why = credentials_checked(self.node["name"])
                if why:
                    for line in why:
                        print(line, file=sys.stderr, flush=True)
                    self.stopping = True
                    self.report(self.status())  # the node goes NotReady (a real one: Unknown, after the grace period)
                    sys.exit(255)
                checked = True
            self.reconcile()
            body = self.status()
            if body != self.reported or time.monotonic() - self.last_report >= HEARTBEAT:
                self.report(body)
            wake.wait(min(self.next_wake(), IDLE))
        if os.path.exists("/etc/kubernetes/kubelet.conf"):
            self.report(self.status())  # a stopped kubelet's node goes NotReady; its pods keep running


def main():
    if "--version" in sys.argv[1:]:
        print(f"Kubernetes v{pkg_version('kubelet')}")
        return
    Kubelet().run()


if __name__ == "__main__":
    main()
