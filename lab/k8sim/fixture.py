"""Starts the API simulator for a test: a PKI made by openssl (CA, server certificate for
127.0.0.1, an admin client certificate), a kubeconfig, a state of nodes and workloads."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.request



def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_pki(d):
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
       "-subj", "/CN=test-ca", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
    for name, subj, ext in [("server", "/CN=kube-apiserver", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                            ("admin", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth")]:
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subj,
           "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr")
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext + "\n")
        sh("openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
           "-CAcreateserial", "-days", "2", "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.crt")


def b64(path):
    import base64
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


class Cluster:
    def __init__(self, objects=(), ready_delay=0.3, grace_scale=1.0, tokens=("test-token",), version="v1.33.1", apf=True):
        self.dir = tempfile.mkdtemp(prefix="k8sim-")
        make_pki(self.dir)
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        state = os.path.join(self.dir, "state.json")
        with open(state, "w") as f:
            json.dump(list(objects), f)
        self.proc = subprocess.Popen([sys.executable, "-m", "lab.k8sim.sim", "--port", str(self.port),
                                      "--cert", f"{self.dir}/server.crt", "--key", f"{self.dir}/server.key",
                                      "--ca", f"{self.dir}/ca.crt", "--tokens", ",".join(tokens), "--state", state,
                                      "--ready-delay", str(ready_delay), "--grace-scale", str(grace_scale),
                                      "--version", version, *([] if apf else ["--no-apf"])],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError("k8sim did not start: " + line + self.proc.stderr.read())
        self.kubeconfig = self.write_kubeconfig("kubeconfig")

    def write_kubeconfig(self, name, inline=False, user=None, context="sim", server=None):
        d = self.dir
        cluster = {"server": server or self.server}
        if inline:
            cluster["certificate-authority-data"] = b64(f"{d}/ca.crt")
        else:
            cluster["certificate-authority"] = f"{d}/ca.crt"
        if user is None:
            user = ({"client-certificate-data": b64(f"{d}/admin.crt"), "client-key-data": b64(f"{d}/admin.key")} if inline
                    else {"client-certificate": f"{d}/admin.crt", "client-key": f"{d}/admin.key"})
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": context,
               "clusters": [{"name": "sim", "cluster": cluster}],
               "users": [{"name": "u", "user": user}],
               "contexts": [{"name": context, "context": {"cluster": "sim", "user": "u"}}]}
        path = os.path.join(d, name)
        with open(path, "w") as f:
            json.dump(cfg, f)  # JSON is YAML
        return path

    def control(self, path, body=None):
        ctx = ssl.create_default_context(cafile=f"{self.dir}/ca.crt")
        req = urllib.request.Request(self.server + path, data=None if body is None else json.dumps(body).encode(),
                                     method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.loads(r.read())

    def get(self, path):
        ctx = ssl.create_default_context(cafile=f"{self.dir}/ca.crt")
        ctx.load_cert_chain(f"{self.dir}/admin.crt", f"{self.dir}/admin.key")
        with urllib.request.urlopen(self.server + path, context=ctx, timeout=10) as r:
            return json.loads(r.read())

    def kubectl(self, *args, timeout=60):
        return subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True,
                              timeout=timeout)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- state builders ---------------------------------------------------------------------------

def node(name, version="v1.33.1", ready=True, roles=(), unschedulable=False, labels=None):
    lbl = {"kubernetes.io/hostname": name, **{f"node-role.kubernetes.io/{r}": "" for r in roles}, **(labels or {})}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": lbl},
            "spec": {"unschedulable": True} if unschedulable else {},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"},
                                      {"type": "MemoryPressure", "status": "False"},
                                      {"type": "DiskPressure", "status": "False"}],
                       "nodeInfo": {"kubeletVersion": version}}}


def pod(name, node_name, ns="default", labels=None, owner=None, emptydir=False, grace=1, ready=True, mirror=False):
    meta = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        kind, oname = owner
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": kind, "name": oname, "uid": f"uid-{oname}", "controller": True}]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "hash"}
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": "uid-node", "controller": True}]
    spec = {"nodeName": node_name, "terminationGracePeriodSeconds": grace, "containers": [{"name": "c", "image": "busybox"}]}
    if emptydir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def replicaset(name, ns="default"):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}}}


def daemonset(name, ns="kube-system"):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": name}}}}


def pdb(name, app, ns="default", min_available=None, max_unavailable=None):
    spec = {"selector": {"matchLabels": {"app": app}}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
