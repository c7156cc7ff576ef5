"""A 3-member etcd 3.4 cluster (Debian's etcd-server) with TLS and client-certificate auth on
loopback ports, certificates made by openssl. The gateway dials etcd with the server certificate
as its client, so server certificates carry clientAuth too."""
import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cert(d, name, subj, eku):
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subj,
       "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr")
    with open(f"{d}/{name}.ext", "w") as f:
        f.write(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={eku}\n")
    sh("openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
       "-CAcreateserial", "-days", "2", "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.crt")


class EtcdCluster:
    def __init__(self, members=3):
        self.dir = tempfile.mkdtemp(prefix="etcd-lab-")
        d = self.dir
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
           "-subj", "/CN=etcd-ca", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
        cert(d, "server", "/CN=etcd-server", "serverAuth,clientAuth")
        cert(d, "peer", "/CN=etcd-peer", "serverAuth,clientAuth")
        cert(d, "client", "/CN=engine", "clientAuth")
        self.names = [f"m{i + 1}" for i in range(members)]
        self.client_ports = [free_port() for _ in self.names]
        self.peer_ports = [free_port() for _ in self.names]
        self.endpoints = [f"https://127.0.0.1:{p}" for p in self.client_ports]
        initial = ",".join(f"{n}=https://127.0.0.1:{p}" for n, p in zip(self.names, self.peer_ports))
        self.procs = {}
        for i, n in enumerate(self.names):
            self.procs[n] = subprocess.Popen([
                "etcd", "--name", n, "--data-dir", f"{d}/{n}.data",
                "--listen-client-urls", self.endpoints[i], "--advertise-client-urls", self.endpoints[i],
                "--listen-peer-urls", f"https://127.0.0.1:{self.peer_ports[i]}",
                "--initial-advertise-peer-urls", f"https://127.0.0.1:{self.peer_ports[i]}",
                "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", "engine-test",
                "--client-cert-auth", "--trusted-ca-file", f"{d}/ca.crt", "--cert-file", f"{d}/server.crt", "--key-file", f"{d}/server.key",
                "--peer-client-cert-auth", "--peer-trusted-ca-file", f"{d}/ca.crt", "--peer-cert-file", f"{d}/peer.crt",
                "--peer-key-file", f"{d}/peer.key", "--log-level", "error", "--logger", "zap",
                "--quota-backend-bytes", str(8 * 1024 ** 3)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_healthy()

    def ctx(self):
        c = ssl.create_default_context(cafile=f"{self.dir}/ca.crt")
        c.load_cert_chain(f"{self.dir}/client.crt", f"{self.dir}/client.key")
        return c

    def post(self, i, path, body):
        conn = http.client.HTTPSConnection("127.0.0.1", self.client_ports[i], context=self.ctx(), timeout=30)
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return json.loads(data)

    def wait_healthy(self, limit=60):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                st = [self.post(i, "/v3/maintenance/status", {}) for i in range(len(self.names)) if self.alive(i)]
                if st and all(s.get("leader") and s.get("leader") != "0" for s in st):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("etcd cluster never became healthy")

    def alive(self, i):
        return self.procs[self.names[i]].poll() is None

    def fill(self, keys, value_size=16, prefix="k"):
        """Writes `keys` keys through one persistent connection, 128 puts per transaction."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.client_ports[0], context=self.ctx(), timeout=60)
        value = base64.b64encode(b"v" * value_size).decode()
        for start in range(0, keys, 128):
            ops = [{"requestPut": {"key": base64.b64encode(f"{prefix}{n:08d}".encode()).decode(), "value": value}}
                   for n in range(start, min(keys, start + 128))]
            conn.request("POST", "/v3/kv/txn", json.dumps({"success": ops}), {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"txn failed: {r.status}")
        conn.close()

    def kill(self, name):
        self.procs[name].kill()
        self.procs[name].wait()

    def etcdctl(self, *args):
        env = dict(os.environ, ETCDCTL_API="3")
        return subprocess.run(["etcdctl", f"--endpoints={self.endpoints[0]}", f"--cacert={self.dir}/ca.crt",
                               f"--cert={self.dir}/client.crt", f"--key={self.dir}/client.key", *args],
                              capture_output=True, text=True, env=env)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class CuttingProxy:
    """A TCP proxy that passes `limit` bytes from the server, then cuts both sides, or with
    stall=True goes silent: the connection stays open and nothing more passes, until stop()."""

    def __init__(self, target_port, limit, stall=False):
        self.limit = limit
        self.stall = stall
        self.stopped = threading.Event()
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self.pipe, args=(c, s, None), daemon=True).start()
            threading.Thread(target=self.pipe, args=(s, c, self.limit), daemon=True).start()

    def pipe(self, a, b, limit):
        sent = 0
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    b.sendall(data[:limit - sent])
                    if self.stall:
                        self.stopped.wait(120)  # silent, not closed: only an idle timeout notices
                    break
                b.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def stop(self):
        self.stopped.set()
        self.sock.close()
