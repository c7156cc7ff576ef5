"""kubeadm's certificates, made with openssl: the lab makes them at `up` (root = the node's
/etc/kubernetes on the host side) and `kubeadm certs renew` remakes them on the node (root =
/etc/kubernetes). Keys are ECDSA P-256 (kubeadm's encryptionAlgorithm ECDSA-P256)."""
import base64
import os
import subprocess

from lab import yamltext

# kubeadm's name -> (file under pki/ or kubeconfig, CA, subject, kind)
LEAVES = {
    "admin.conf": ("admin.conf", "ca", "/O=kubeadm:cluster-admins/CN=kubernetes-admin", "client"),
    "apiserver": ("pki/apiserver", "ca", "/CN=kube-apiserver", "apiserver"),
    "apiserver-etcd-client": ("pki/apiserver-etcd-client", "etcd-ca", "/CN=kube-apiserver-etcd-client", "client"),
    "apiserver-kubelet-client": ("pki/apiserver-kubelet-client", "ca",
                                 "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client", "client"),
    "controller-manager.conf": ("controller-manager.conf", "ca", "/CN=system:kube-controller-manager", "client"),
    "etcd-healthcheck-client": ("pki/etcd/healthcheck-client", "etcd-ca", "/CN=kube-etcd-healthcheck-client", "client"),
    "etcd-peer": ("pki/etcd/peer", "etcd-ca", "/CN={node}", "peer"),
    "etcd-server": ("pki/etcd/server", "etcd-ca", "/CN={node}", "peer"),
    "front-proxy-client": ("pki/front-proxy-client", "front-proxy-ca", "/CN=front-proxy-client", "client"),
    "scheduler.conf": ("scheduler.conf", "ca", "/CN=system:kube-scheduler", "client"),
    "super-admin.conf": ("super-admin.conf", "ca", "/O=system:masters/CN=kubernetes-super-admin", "client"),
}
CAS = {"ca": ("pki/ca", "/CN=kubernetes"), "etcd-ca": ("pki/etcd/ca", "/CN=etcd-ca"),
       "front-proxy-ca": ("pki/front-proxy-ca", "/CN=front-proxy-ca")}


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def new_key(path):
    sh("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    os.chmod(path, 0o600)


def make_ca(root, name, days=3650):
    base, subj = CAS[name]
    os.makedirs(os.path.dirname(f"{root}/{base}"), exist_ok=True)
    new_key(f"{root}/{base}.key")
    sh("openssl", "req", "-x509", "-new", "-key", f"{root}/{base}.key", "-subj", subj, "-days", str(days),
       "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
       "-out", f"{root}/{base}.crt")


def reissue_ca(root, name, days):
    """The CA's certificate made again with its own key and subject, valid for `days`."""
    base, subj = CAS[name]
    sh("openssl", "req", "-x509", "-new", "-key", f"{root}/{base}.key", "-subj", subj, "-days", str(days),
       "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
       "-out", f"{root}/{base}.crt")


def sign(root, ca, subj, kind, key, out, days, sans):
    ca_base = CAS[ca][0]
    ext = {"client": "extendedKeyUsage=clientAuth",
           "apiserver": "extendedKeyUsage=serverAuth\nsubjectAltName=" + sans,
           "peer": "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=" + sans,
           "server": "extendedKeyUsage=serverAuth\nsubjectAltName=" + sans}[kind]
    extfile = out + ".ext"
    with open(extfile, "w") as f:
        f.write("keyUsage=critical,digitalSignature,keyEncipherment\n" + ext + "\n")
    csr = out + ".csr"
    sh("openssl", "req", "-new", "-key", key, "-subj", subj, "-out", csr)
    sh("openssl", "x509", "-req", "-in", csr, "-CA", f"{root}/{ca_base}.crt", "-CAkey", f"{root}/{ca_base}.key",
       "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", str(days), "-extfile", extfile,
       "-out", out)
    os.unlink(csr)
    os.unlink(extfile)


def kubeconfig(path, server, ca_crt, crt, key, user):
    def b64(p):
        with open(p, "rb") as f:
            return base64.b64encode(f.read()).decode()
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": f"{user}@kubernetes",
           "clusters": [{"name": "kubernetes", "cluster": {"server": server, "certificate-authority-data": b64(ca_crt)}}],
           "contexts": [{"name": f"{user}@kubernetes", "context": {"cluster": "kubernetes", "user": user}}],
           "users": [{"name": user, "user": {"client-certificate-data": b64(crt), "client-key-data": b64(key)}}],
           "preferences": {}}
    with open(path, "w") as f:
        yamltext.dump(cfg, f)
    os.chmod(path, 0o600)


def issue(root, name, node, ip, server, days=365, leader_ips=()):
    """(Re)issues one of kubeadm's leaf certificates under root (a node's /etc/kubernetes). A
    renewal keeps the key, as kubeadm does. days < 0 makes an already expired certificate."""
    file, ca, subj, kind = LEAVES[name]
    subj = subj.format(node=node)
    sans = {"apiserver": ",".join([f"DNS:{node}", "DNS:kubernetes", "DNS:kubernetes.default",
                                   "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local",
                                   "IP:10.96.0.1", f"IP:{ip}", "IP:127.0.0.1"] + [f"IP:{x}" for x in leader_ips]),
            "peer": f"DNS:{node},DNS:localhost,IP:{ip},IP:127.0.0.1"}.get(kind, "")
    if file.endswith(".conf"):
        tmp = f"{root}/pki/.{name}"
        key, crt = tmp + ".key", tmp + ".crt"
        new_key(key)
        sign(root, ca, subj, kind, key, crt, days, sans)
        user = subj.rsplit("CN=", 1)[1]
        kubeconfig(f"{root}/{file}", server, f"{root}/pki/ca.crt", crt, key, user)
        os.unlink(key)
        os.unlink(crt)
        return
    key, crt = f"{root}/{file}.key", f"{root}/{file}.crt"
    os.makedirs(os.path.dirname(key), exist_ok=True)
    if not os.path.exists(key):
        new_key(key)
    sign(root, ca, subj, kind, key, crt, days, sans)


def enddate_of(root, name):
    """The certificate's notAfter as openssl prints it, and whether it is in a kubeconfig."""
    file = LEAVES[name][0] if name in LEAVES else CAS[name][0]
    if file.endswith(".conf"):
        with open(f"{root}/{file}") as f:
            data = base64.b64decode(yamltext.load(f)["users"][0]["user"]["client-certificate-data"])
        r = subprocess.run(["openssl", "x509", "-noout", "-enddate"], input=data, capture_output=True, check=True)
    else:
        r = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", f"{root}/{file}.crt"],
                           capture_output=True, check=True)
    return r.stdout.decode().strip().split("=", 1)[1]
