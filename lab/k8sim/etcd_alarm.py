"""The API server's writes go to etcd: under etcd's NOSPACE alarm they fail as kube-apiserver's do
("etcdserver: mvcc: database space exceeded"). The simulator keeps its objects itself, so the lab's
etcd-nospace fault arms this watch with the members' addresses and the API server's etcd client
certificate; the real etcd's alarm list is then read on a write, at most once a second, until the
fault is cleared. An etcd that does not answer holds nothing up."""
import http.client
import json
import socket
import ssl
import threading
import time


class NospaceWatch:
    def __init__(self):
        self.lock = threading.Lock()
        self.target = None  # {ips, ca, cert, key}
        self.checked = 0.0
        self.raised = False

    def arm(self, target):
        with self.lock:
            self.target = target or None
            self.checked, self.raised = 0.0, False

    def raised_now(self):
        with self.lock:
            if not self.target:
                return False
            if time.monotonic() - self.checked < 1:
                return self.raised
            self.checked = time.monotonic()
            target = self.target
        raised = read_nospace(target)
        with self.lock:
            self.raised = raised
        return raised


def read_nospace(t):
    ctx = ssl.create_default_context(cafile=t["ca"])
    ctx.load_cert_chain(t["cert"], t["key"])
    for ip in t["ips"]:
        try:
            conn = http.client.HTTPSConnection(ip, 2379, context=ctx, timeout=3)
            conn.request("POST", "/v3/maintenance/alarm", json.dumps({"action": "GET"}), {"Content-Type": "application/json"})
            r = conn.getresponse()
            body = json.loads(r.read() or b"{}")
            conn.close()
        except (OSError, ValueError):
            continue
        return any(a.get("alarm") == "NOSPACE" for a in body.get("alarms") or [])
    return False


class QuorumWatch:
    """Every read and write of the API server goes to etcd: with no quorum of members answering
    (a one-node control plane whose etcd.yaml was moved out, two of three members down) each fails
    as kube-apiserver's does ("Error from server: etcdserver: request timed out"), and /readyz says
    etcd failed. The simulator keeps its objects itself, so it asks the members' client ports
    (a TCP connect: a member that exits at start, its data lost, answers none), at most once a
    second, and only once it has seen a quorum: a lab without etcd is never judged down."""

    def __init__(self, ips, port=2379):
        self.ips, self.port = list(ips), port
        self.lock = threading.Lock()
        self.checked = 0.0
        self.armed = False
        self.down = False

    def lost(self):
        if not self.ips:
            return False
        with self.lock:
            if time.monotonic() - self.checked < 1:
                return self.down
            self.checked = time.monotonic()
        up = sum(1 for ip in self.ips if answers(ip, self.port))
        quorum = up * 2 > len(self.ips)
        with self.lock:
            self.armed = self.armed or quorum
            self.down = self.armed and not quorum
            return self.down


def answers(ip, port):
    try:
        socket.create_connection((ip, port), timeout=0.3).close()
        return True
    except OSError:
        return False
