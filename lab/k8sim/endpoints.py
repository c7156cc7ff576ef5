"""The control-plane nodes' own TLS endpoints, served by the simulator as the nodes' static pods
would serve them, so a runbook can verify what each really serves (seed 001):

- kube-apiserver on NODE_IP:6443 with the node's /etc/kubernetes/pki/apiserver.crt;
- kube-scheduler on NODE_IP:10259 and kube-controller-manager on NODE_IP:10257, each with a
  self-signed certificate it makes when it starts, as the real ones do without --tls-cert-file.

A certificate is read when its pod starts and never again, as the real API server does: a file
renewed by `kubeadm certs renew` is served only after the static pod restarts. An endpoint listens
while its pod runs and is ready (refused while the manifest is out of manifests/). The first
control-plane node's :6443 is also the nodes' control-plane endpoint (the load balancer as they
reach it) and carries the lab's own plumbing (/_sim/), so it always listens; the load balancer the
kubeconfig names is on :16443. Once a kube-apiserver has run anywhere, both serve the API only while
some control-plane node's kube-apiserver runs, as a health-checked load balancer in TCP mode does:
with none, :16443 accepts and closes (kubectl: EOF) and :6443 closes the connection of any request
but the plumbing's. Node kubelets report their pods to the simulator; each report syncs these
endpoints."""
import os
import socket
import ssl
import subprocess
import threading
from http.server import ThreadingHTTPServer

PORTS = {"kube-apiserver": 6443, "kube-scheduler": 10259, "kube-controller-manager": 10257}


class TLSServer(ThreadingHTTPServer):
    """An HTTPS server whose certificate can change between connections: each accepted socket is
    wrapped with the context of the moment; the handshake happens in the connection's thread."""
    daemon_threads = True
    request_queue_size = 256  # a real apiserver does not refuse a burst of clients

    def __init__(self, addr, handler, context_of):
        self.context_of = context_of
        super().__init__(addr, handler)

    backend = None  # callable: whether the API behind this listener runs (None: always)
    refuse_closed = False  # closed at accept when no backend runs (a load balancer in TCP mode)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.refuse_closed and not self.backend():
            sock.close()
            raise OSError("no API server behind the load balancer")  # socketserver drops the request
        # http.server writes the headers and the body separately: with Nagle's algorithm the body
        # waits for the client's delayed ACK of the headers, 40 ms on every response.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.context_of().wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class LoadBalancer:
    """What the lab's own kubeconfig names: the load balancer (or VIP) in front of an HA cluster's
    API servers, on the first control-plane node's address at port 16443, serving what that node's
    listener serves. cut() closes it as a firewall or a dead load balancer would: new connections
    are refused and open ones get nothing more, while the nodes keep their own route to :6443 (seed
    002: the API was reachable only through SSH to a node)."""

    def __init__(self, addr, handler, context_of, backend=None):
        self.addr, self.handler, self.context_of, self.backend = addr, handler, context_of, backend
        self.lock = threading.Lock()
        self.server = None
        self.open()

    def open(self):
        with self.lock:
            if self.server is None:
                self.server = TLSServer(self.addr, self.handler, self.context_of)
                if self.backend is not None:
                    self.server.backend, self.server.refuse_closed = self.backend, True
                threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def cut(self):
        with self.lock:
            s, self.server = self.server, None
        if s is not None:
            s.cut = True  # a kept-alive connection's next request is dropped (the handler checks)
            s.shutdown()
            s.server_close()


def server_context(cert, key, ca):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    c.load_cert_chain(cert, key)
    c.load_verify_locations(ca)
    c.verify_mode = ssl.CERT_OPTIONAL  # client certificates are checked when given (expired: refused)
    return c


class Endpoint:
    def __init__(self, owner, node, component, ip):
        self.owner, self.node, self.component, self.ip = owner, node, component, ip
        self.port = PORTS[component]
        self.lock = threading.Lock()
        self.started = None  # the start time of the pod whose certificate is served
        self.ctx = None
        self.server = None

    def load(self, started):
        o = self.owner
        if self.component == "kube-apiserver":
            cert, key = o.apiserver_files(self.node)
            self.ctx = server_context(cert, key, o.ca)
        else:  # a fresh self-signed certificate per start, named as the real ones are
            d = os.path.join(o.workdir, self.node)
            os.makedirs(d, exist_ok=True)
            base = f"{d}/{self.component}"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-subj", f"/CN=localhost@{int(started)}", "-days", "365", "-keyout", base + ".key",
                            "-out", base + ".crt", "-addext", f"subjectAltName=DNS:localhost,IP:127.0.0.1,IP:{self.ip}",
                            "-addext", "basicConstraints=critical,CA:FALSE"],
                           check=True, capture_output=True)
            self.ctx = server_context(base + ".crt", base + ".key", o.ca)
        self.started = started

    def sync(self, started):
        """started: the running, ready pod's start time, or None when the pod is not running."""
        with self.lock:
            if started is None:
                self.stop()
                return
            if started != self.started:
                try:
                    self.load(started)
                except (OSError, ssl.SSLError, subprocess.CalledProcessError):
                    self.stop()  # a pod whose certificate cannot be read does not serve (it crash-loops)
                    self.started = started
                    return
            if self.server is None and self.ctx is not None:
                try:
                    self.server = TLSServer((self.ip, self.port), self.owner.handler, lambda: self.ctx)
                except OSError:
                    return
                threading.Thread(target=self.server.serve_forever, args=(0.2,), daemon=True).start()

    def serves(self):
        return self.server is not None

    def reload(self):
        with self.lock:
            if self.started is not None and self.component == "kube-apiserver":
                try:
                    self.load(self.started)
                except (OSError, ssl.SSLError):
                    pass

    def stop(self):
        self.started = None
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class Primary(Endpoint):
    """The lab's API address: always listening, serving the node's apiserver certificate as of its
    pod's last start (a fallback certificate until the node has one: a lab with no cluster yet)."""

    def __init__(self, owner, node, ip, fallback):
        super().__init__(owner, node, "kube-apiserver", ip)
        self.fallback = fallback
        self.running = False

    def initial(self, cert, key):
        try:
            self.ctx = server_context(cert, key, self.owner.ca)
        except (OSError, ssl.SSLError):
            self.ctx = server_context(*self.fallback, self.owner.ca)

    def serves(self):
        return self.running

    def sync(self, started):
        self.running = started is not None  # its listener stays: the lab's plumbing comes through it
        if started is None:
            return
        with self.lock:
            if started != self.started:
                try:
                    self.load(started)
                except (OSError, ssl.SSLError):
                    pass


class Endpoints:
    def __init__(self, handler, ca, workdir, nodes, primary):
        """nodes: {name: (ip, host path of the node's /etc/kubernetes)}; primary: (name, cert, key,
        fallback (cert, key) or None) for the lab's API address, or None."""
        self.handler, self.ca, self.workdir = handler, ca, workdir
        self.roots = {name: root for name, (_, root) in nodes.items()}
        self.by_node = {}
        self.primary = None
        self.seen = False  # a kube-apiserver has run: from then on the API is served only where one runs
        for name, (ip, _) in nodes.items():
            eps = {}
            for comp in PORTS:
                if primary and name == primary[0] and comp == "kube-apiserver":
                    self.primary = eps[comp] = Primary(self, name, ip, primary[3])
                    self.primary.initial(primary[1], primary[2])
                else:
                    eps[comp] = Endpoint(self, name, comp, ip)
            self.by_node[name] = eps

    def apiserver_files(self, node):
        """The host paths of the serving certificate and key the node's kube-apiserver.yaml names
        (--tls-cert-file, --tls-private-key-file; kubeadm's pki/apiserver.* when it names none)."""
        root = self.roots[node]
        cert, key = "/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/pki/apiserver.key"
        try:
            with open(os.path.join(root, "manifests", "kube-apiserver.yaml")) as f:
                for line in f:
                    flag = line.strip()
                    flag = (flag[2:] if flag.startswith("- ") else flag).strip("'\"")
                    if flag.startswith("--tls-cert-file="):
                        cert = flag.split("=", 1)[1]
                    elif flag.startswith("--tls-private-key-file="):
                        key = flag.split("=", 1)[1]
        except OSError:
            pass

        def host_path(path):  # a path on the node: under /etc/kubernetes, the node's root
            return os.path.join(root, os.path.relpath(path, "/etc/kubernetes")) if path.startswith("/etc/kubernetes/") else path
        return host_path(cert), host_path(key)

    def context(self):
        return self.primary.ctx

    def serving(self):
        """Whether the API is served behind the lab's load balancers: some control-plane node's
        kube-apiserver runs. True in a lab where none has run yet (no cluster: the simulator
        answers as it always did, so that kubeadm init's objects can be made)."""
        return not self.seen or any(e["kube-apiserver"].serves() for e in self.by_node.values())

    def report(self, report):
        """A kubelet's report: each endpoint of its node follows its pod."""
        eps = self.by_node.get(report.get("node"))
        if not eps:
            return
        pods = {p["name"]: p for p in report.get("pods", [])}
        for comp, ep in eps.items():
            p = pods.get(comp)
            ep.sync(p["started"] if p and p.get("ready") and p.get("started") else None)
        if eps["kube-apiserver"].serves():
            self.seen = True

    def reload(self, node):
        """The node's apiserver certificate, reread now (a lab fault changed it as if time had passed)."""
        for ep in self.by_node.get(node, {}).values():
            ep.reload()
