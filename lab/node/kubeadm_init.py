"""kubeadm init, join and token create for a lab node (seed 003, flow B), enough to bring a control
plane up against an external etcd: certificates from the cluster CA found in /etc/kubernetes/pki
(kubeadm's "Using existing ca certificate authority"), kubeconfigs, static Pod manifests rendered
from the --config's ClusterConfiguration, the kubelet restarted (the node registers with the API),
and the cluster's kube-system objects and kubeadm-config uploaded by init."""
import base64
import hashlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request

from lab import yamltext

from lab.node import certs
from lab.node.common import CONTROL_PLANE, LAB, MANIFESTS, PODS, api, cluster_config, die, node, pkg_version, read_json, wait_until
from lab.node.manifests import external_etcd, render

K = "/etc/kubernetes"
SHARED = ["pki/ca.crt", "pki/ca.key", "pki/sa.key", "pki/sa.pub", "pki/front-proxy-ca.crt", "pki/front-proxy-ca.key"]
EXTERNAL_ETCD = ["pki/apiserver-etcd-client.crt", "pki/apiserver-etcd-client.key"]


def norm(v):
    return "v" + v.lstrip("v")


def preflight_clean():
    errors = []
    for f in ("manifests/kube-apiserver.yaml", "manifests/kube-controller-manager.yaml", "manifests/kube-scheduler.yaml",
              "kubelet.conf", "admin.conf"):
        if os.path.exists(f"{K}/{f}"):
            errors.append(f"\t[ERROR FileAvailable--etc-kubernetes-{f.replace('/', '-')}]: {K}/{f} already exists")
    if errors:
        die("[preflight] Some fatal errors occurred:\n" + "\n".join(errors) +
            "\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`")


def check_external_etcd(ext):
    """kubeadm's preflight ExternalEtcdVersion: each endpoint answers /version with the client certificate."""
    ctx = ssl.create_default_context(cafile=ext["caFile"])
    ctx.load_cert_chain(ext["certFile"], ext["keyFile"])
    for ep in ext.get("endpoints") or []:
        try:
            with urllib.request.urlopen(ep.rstrip("/") + "/version", context=ctx, timeout=5) as r:
                json.loads(r.read())
        except Exception as e:  # kubeadm's message, more or less
            die(f"[preflight] Some fatal errors occurred:\n\t[ERROR ExternalEtcdVersion]: Get \"{ep}/version\": {e}")


def put_in_etcd(ext, body):
    """One etcd v3 gateway put through the external etcd's first endpoint that takes it."""
    ctx = ssl.create_default_context(cafile=ext["caFile"])
    ctx.load_cert_chain(ext["certFile"], ext["keyFile"])
    err = None
    for ep in ext.get("endpoints") or []:
        req = urllib.request.Request(ep.rstrip("/") + "/v3/kv/put", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                r.read()
            return
        except Exception as e:
            err = e
    die(f"[upload-config] error writing kubeadm-config to etcd: {err}")


def kubelet_conf(name, server):
    key, crt = f"{K}/pki/.kubelet.key", f"{K}/pki/.kubelet.crt"
    certs.new_key(key)
    certs.sign(K, "ca", f"/O=system:nodes/CN=system:node:{name}", "client", key, crt, 365, "")
    certs.kubeconfig(f"{K}/kubelet.conf", server, f"{K}/pki/ca.crt", crt, key, f"system:node:{name}")
    os.unlink(key)
    os.unlink(crt)


def control_plane_files(n, cc, advertise, server):
    """The node's own certificates, kubeconfigs and static Pod manifests, from the shared CA files."""
    v = norm(cc["kubernetesVersion"])
    for name in ("apiserver", "apiserver-kubelet-client", "front-proxy-client", "admin.conf", "super-admin.conf",
                 "controller-manager.conf", "scheduler.conf"):
        certs.issue(K, name, n["name"], advertise, server, 365, n.get("leader_ips", ()))
        print(f"[certs] Generating \"{name}\" certificate and key" if not name.endswith(".conf")
              else f"[kubeconfig] Writing \"{name}\" kubeconfig file")
    kubelet_conf(n["name"], server)
    print("[kubeconfig] Writing \"kubelet.conf\" kubeconfig file")
    os.makedirs(MANIFESTS, exist_ok=True)
    for c in CONTROL_PLANE:
        with open(f"{K}/tmp.{c}.yaml", "w") as f:
            f.write(render(c, n["manifest_cfg"], v, cc, advertise))
        os.replace(f"{K}/tmp.{c}.yaml", f"{MANIFESTS}/{c}.yaml")
        print(f"[control-plane] Creating static Pod manifest for \"{c}\"")
    return v


def start_kubelet_and_wait(what):
    subprocess.run(["systemctl", "restart", "kubelet"], check=True)
    print("[kubelet-start] Starting the kubelet\n[wait-control-plane] Waiting for the kubelet to boot up the control plane "
          "as static Pods from directory \"/etc/kubernetes/manifests\"", flush=True)
    want = {}
    for c in CONTROL_PLANE:
        with open(f"{MANIFESTS}/{c}.yaml", "rb") as f:
            want[c] = hashlib.sha256(f.read()).hexdigest()[:16]
    ok = wait_until(lambda: all((read_json(PODS, {}).get(c) or {}).get("hash") == h and
                                (read_json(PODS, {}).get(c) or {}).get("ready") for c, h in want.items()), 240, 0.5,
                    dirs=(os.path.dirname(PODS),))
    if not ok:
        die(f"[wait-control-plane] {what}: the control plane did not come up in 4m0s")
    print("[apiclient] All control plane components are healthy")


def mark_control_plane(name):
    """kubeadm's mark-control-plane phase: the role label and the NoSchedule taint."""
    ok = wait_until(lambda: _node_exists(name), 60)
    if not ok:
        die(f"[mark-control-plane] the node {name} did not register with the API")
    api("PATCH", f"/api/v1/nodes/{name}", {"metadata": {"labels": {"node-role.kubernetes.io/control-plane": "",
                                                                   "node.kubernetes.io/exclude-from-external-load-balancers": ""}},
                                           "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane",
                                                                "effect": "NoSchedule"}]}})
    print(f"[mark-control-plane] Marking the node {name} as control-plane by adding the labels: "
          "[node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]\n"
          f"[mark-control-plane] Marking the node {name} as control-plane by adding the taints "
          "[node-role.kubernetes.io/control-plane:NoSchedule]")


def _node_exists(name):
    try:
        api("GET", f"/api/v1/nodes/{name}")
        return True
    except Exception:
        return False


def ca_hash():
    """sha256 of the cluster CA's public key, as --discovery-token-ca-cert-hash spells it."""
    ca = f"{K}/pki/ca.crt" if os.path.exists(f"{K}/pki/ca.crt") else f"{LAB}/ca.crt"
    pub = subprocess.run(["openssl", "x509", "-in", ca, "-noout", "-pubkey"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True, check=True).stdout
    return "sha256:" + hashlib.sha256(der).hexdigest()


def init(args, opt, flag, read_config, defaulted):
    n = node()
    path = opt(args, "--config")
    flag(args, "--upload-certs")
    opt(args, "--ignore-preflight-errors")
    if not path:
        die("the lab's kubeadm init needs --config (InitConfiguration and ClusterConfiguration)")
    docs = read_config(path)
    cc = defaulted(docs.get("ClusterConfiguration") or {})
    cc["apiVersion"], cc["kind"] = "kubeadm.k8s.io/v1beta4", "ClusterConfiguration"
    ic = docs.get("InitConfiguration") or {}
    advertise = (ic.get("localAPIEndpoint") or {}).get("advertiseAddress") or n["ip"]
    print(f"[init] Using Kubernetes version: {norm(cc['kubernetesVersion'])}\n[preflight] Running pre-flight checks")
    if norm(cc["kubernetesVersion"]) != norm(pkg_version("kubeadm")):
        die(f"[preflight] this version of kubeadm only supports deploying clusters with the control plane version >= "
            f"{norm(pkg_version('kubeadm'))}. Current version: {norm(cc['kubernetesVersion'])}")
    preflight_clean()
    if not external_etcd(cc):
        die("the lab's kubeadm init brings a control plane up on an external etcd only (etcd.external in --config)")
    ext = cc["etcd"]["external"]
    check_external_etcd(ext)
    if not (os.path.exists(f"{K}/pki/ca.crt") and os.path.exists(f"{K}/pki/ca.key")):
        certs.make_ca(K, "ca")
        print("[certs] Generating \"ca\" certificate and key")
    else:
        print("[certs] Using existing ca certificate authority")
    if not os.path.exists(f"{K}/pki/front-proxy-ca.key"):
        certs.make_ca(K, "front-proxy-ca")
        print("[certs] Generating \"front-proxy-ca\" certificate and key")
    if not os.path.exists(f"{K}/pki/sa.key"):
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", f"{K}/pki/sa.key"],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", f"{K}/pki/sa.key", "-pubout", "-out", f"{K}/pki/sa.pub"], check=True,
                       capture_output=True)
        os.chmod(f"{K}/pki/sa.key", 0o600)
        print("[certs] Generating \"sa\" key and public key")
    print("[certs] External etcd mode: Skipping etcd/ca certificate authority generation")
    endpoint = cc.get("controlPlaneEndpoint") or f"{advertise}:6443"
    v = control_plane_files(n, cc, advertise, f"https://{endpoint}")
    start_kubelet_and_wait("init")
    mark_control_plane(n["name"])
    from lab import cluster as labcluster
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
          "data": {"ClusterConfiguration": yamltext.dump(cc)}}
    api("POST", "/_sim/objects", [cm] + labcluster.kubeadm_objects(v))
    put_in_etcd(ext, labcluster.etcd_put(cm))  # as the API server would keep it
    print("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace\n"
          "[addons] Applied essential addon: CoreDNS\n[addons] Applied essential addon: kube-proxy\n\n"
          "Your Kubernetes control-plane has initialized successfully!\n\n"
          "You can now join any number of control-plane nodes or worker nodes by running `kubeadm token create "
          "--print-join-command` for the command, adding --control-plane for a control-plane node once its certificates "
          "are in place.")
    return 0


def token_create(args, flag):
    if not flag(args, "--print-join-command"):
        die("the lab's kubeadm token create needs --print-join-command")
    _, cc = cluster_config()
    tid, secret = os.urandom(3).hex(), os.urandom(8).hex()
    api("POST", "/api/v1/namespaces/kube-system/secrets",
        {"metadata": {"name": f"bootstrap-token-{tid}", "namespace": "kube-system"}, "type": "bootstrap.kubernetes.io/token",
         "data": {k: base64.b64encode(v.encode()).decode() for k, v in
                  {"token-id": tid, "token-secret": secret, "usage-bootstrap-authentication": "true"}.items()}})
    endpoint = cc.get("controlPlaneEndpoint") or f"{node()['ip']}:6443"
    print(f"kubeadm join {endpoint} --token {tid}.{secret} --discovery-token-ca-cert-hash {ca_hash()} ")
    return 0


def join(args, opt, flag):
    n = node()
    token = opt(args, "--token")
    want_hash = opt(args, "--discovery-token-ca-cert-hash")
    control_plane = flag(args, "--control-plane")
    advertise = opt(args, "--apiserver-advertise-address") or n["ip"]
    opt(args, "--ignore-preflight-errors")
    rest = [a for a in args if not a.startswith("-")]
    if not rest or not token or not want_hash:
        die("the lab's kubeadm join needs ENDPOINT --token T --discovery-token-ca-cert-hash sha256:H")
    print("[preflight] Running pre-flight checks")
    preflight_clean()
    tid, _, secret = token.partition(".")
    try:
        s = api("GET", f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{tid}")
        ok = base64.b64decode(s["data"]["token-secret"]).decode() == secret
    except Exception:
        ok = False
    if not ok:
        die(f"error execution phase preflight: couldn't validate the identity of the API Server: invalid bootstrap token \"{tid}\"")
    if ca_hash() != want_hash:
        die("error execution phase preflight: couldn't validate the identity of the API Server: cluster CA found in "
            f"cluster-info ConfigMap is invalid: none of the public keys \"{ca_hash()}\" are pinned")
    print("[preflight] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...")
    _, cc = cluster_config()
    server = f"https://{rest[0]}"
    if control_plane:
        need = SHARED + (EXTERNAL_ETCD if external_etcd(cc) else [])
        missing = [f for f in need if not os.path.exists(f"{K}/{f}")]
        if missing:
            die("error execution phase control-plane-prepare/download-certs: one or more conditions for hosting a new control "
                "plane instance is not satisfied.\n\n" + "\n".join(f"[failure loading certificate for {f}: couldn't load "
                                                                 f"{K}/{f}]" for f in missing) +
                "\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that "
                "must be shared among control plane instances are provided.")
        if external_etcd(cc):
            check_external_etcd(cc["etcd"]["external"])
        control_plane_files(n, cc, advertise, server)
        start_kubelet_and_wait("join")
        mark_control_plane(n["name"])
        print("\nThis node has joined the cluster and a new control plane instance was created")
        return 0
    # A worker's kubelet gets its certificate from the API (a CSR); the lab's stands in for it.
    os.makedirs(f"{K}/pki", exist_ok=True)
    with open(f"{LAB}/ca.crt") as src, open(f"{K}/pki/ca.crt", "w") as dst:
        dst.write(src.read())
    with open(f"{LAB}/kubelet-client.pem") as f:
        pem = f.read()
    cut = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")
    for part, text in (("crt", pem[:cut]), ("key", pem[cut:])):
        with open(f"{K}/pki/.kubelet.{part}", "w") as f:
            f.write(text)
    certs.kubeconfig(f"{K}/kubelet.conf", server, f"{K}/pki/ca.crt", f"{K}/pki/.kubelet.crt", f"{K}/pki/.kubelet.key",
                     f"system:node:{n['name']}")
    os.unlink(f"{K}/pki/.kubelet.crt")
    os.unlink(f"{K}/pki/.kubelet.key")
    subprocess.run(["systemctl", "restart", "kubelet"], check=True)
    time.sleep(0.5)
    print("[kubelet-start] Starting the kubelet\n\nThis node has joined the cluster:\n"
          "* Certificate signing request was sent to apiserver and a response was received.")
    return 0


if __name__ == "__main__":
    sys.exit(1)
