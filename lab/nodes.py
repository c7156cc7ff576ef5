"""A lab node's files on the host side (DIR/nodes/NAME/root/... is what the node sees at /...): its
/etc/kubernetes with a kubeadm PKI and static Pod manifests, the kubelet unit, the packages at the
lab's version, the apt source, the simulated disk, its sshd configuration and host key."""
import json
import os
import shutil
import subprocess
import time

from lab import ROOT
from lab.node import certs
from lab.node.manifests import render

TOOLS = {"kubeadm": "lab.node.kubeadm", "kubelet": "lab.node.kubelet", "systemctl": "lab.node.systemctl", "apt-get": "lab.node.apt",
         "apt-cache": "lab.node.apt", "apt-mark": "lab.node.apt", "crictl": "lab.node.misc", "df": "lab.node.misc",
         "journalctl": "lab.node.misc", "reboot": "lab.node.misc", "du": "lab.node.misc", "snap": "lab.node.misc",
         "apt": "lab.node.apt"}


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def write_tools(bin_dir):
    """The node simulators, in the directory every node sees as /usr/local/sbin (first in sudo's
    secure_path) and in each node's own /usr/local/bin (first in a login's PATH)."""
    os.makedirs(bin_dir, exist_ok=True)
    # -S: no site module (its .pth files cost a fifth of a simulated command's start-up, paid on
    # every command any tool runs on a node); the lab needs nothing outside the standard library.
    for tool, module in TOOLS.items():
        write(f"{bin_dir}/{tool}", f"#!/usr/bin/python3 -S\nimport sys\nsys.path.insert(0, {ROOT!r})\n"
                                   f"from {module} import main\nsys.exit(main())\n", 0o755)


def make_cas(pki_root):
    for ca in certs.CAS:
        certs.make_ca(pki_root, ca)
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", f"{pki_root}/pki/sa.key"], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", f"{pki_root}/pki/sa.key", "-pubout", "-out", f"{pki_root}/pki/sa.pub"],
                   check=True, capture_output=True)


def node_cert(lab_root, ca_root, kroot, name, lab_dir, kubeconfig=True):
    """The kubelet's client certificate (system:node:NAME) as one PEM, and kubelet.conf."""
    key, crt = f"{lab_dir}/kubelet-client.key", f"{lab_dir}/kubelet-client.crt"
    certs.new_key(key)
    certs.sign(ca_root, "ca", f"/O=system:nodes/CN=system:node:{name}", "client", key, crt, 365, "")
    with open(f"{lab_dir}/kubelet-client.pem", "w") as out:
        for p in (crt, key):
            with open(p) as f:
                out.write(f.read())
    os.chmod(f"{lab_dir}/kubelet-client.pem", 0o600)
    if kubeconfig:
        certs.kubeconfig(f"{kroot}/kubelet.conf", lab_root["api"], f"{kroot}/pki/ca.crt", crt, key, f"system:node:{name}")
        # Made just now for a year: its kubelet's first start need not check it with openssl.
        from lab.node.kubelet import remember_credentials
        remember_credentials(name, time.time() + 364 * 86400, root=kroot[:-len("/etc/kubernetes")])
    os.unlink(key)
    os.unlink(crt)


def prepare(lab, n, cps, ca_root, version, authorized_keys):
    """lab: the lab's settings (dir, api, ssh_port, releases, kubeadm_timeout, pod_start_delay)."""
    nd = f"{lab['dir']}/nodes/{n['name']}"
    root = f"{nd}/root"
    kroot = f"{root}/etc/kubernetes"
    for d in ("etc/kubernetes/manifests", "etc/kubernetes/pki", "etc/kubernetes/tmp", "var/lib/etcd", "var/lib/kubelet",
              "etc/systemd/system", "etc/etcd", "var/log", "var/lib/engine-lab/units", "var/lib/engine-lab/faults",
              "etc/apt/sources.list.d", "usr/local/bin", "var/cache/engine", "etc/systemd/journald.conf.d",
              "var/cache/apt/archives"):
        os.makedirs(f"{root}/{d}", exist_ok=True)
    os.chmod(f"{root}/var/lib/etcd", 0o700)
    write_tools(f"{root}/usr/local/bin")
    cp = n["role"] == "control-plane"
    lab_dir = f"{root}/var/lib/engine-lab"
    shutil.copy(f"{ca_root}/pki/ca.crt", f"{kroot}/pki/ca.crt")
    shutil.copy(f"{ca_root}/pki/ca.crt", f"{lab_dir}/ca.crt")
    cfg = {"name": n["name"], "ip": n["ip"], "etcd_ips": [c["ip"] for c in cps],
           "cluster": ",".join(f"{c['name']}=https://{c['ip']}:2380" for c in cps)}
    empty = lab.get("empty", False)
    if empty and n.get("leader"):
        # No cluster yet: only the organisation's cluster CA, which kubeadm init finds and uses.
        for ext in (".crt", ".key"):
            shutil.copy(f"{ca_root}/pki/ca{ext}", f"{kroot}/pki/ca{ext}")
        os.chmod(f"{kroot}/pki/ca.key", 0o600)
    elif empty:
        os.unlink(f"{kroot}/pki/ca.crt")
    if cp and not empty:
        for f in ("ca", "front-proxy-ca", "etcd/ca"):
            os.makedirs(os.path.dirname(f"{kroot}/pki/{f}"), exist_ok=True)
            for ext in (".crt", ".key"):
                shutil.copy(f"{ca_root}/pki/{f}{ext}", f"{kroot}/pki/{f}{ext}")
        for f in ("sa.key", "sa.pub"):
            shutil.copy(f"{ca_root}/pki/{f}", f"{kroot}/pki/{f}")
        for name in certs.LEAVES:
            certs.issue(kroot, name, n["name"], n["ip"], lab["api"], lab.get("cert_days", 365), [c["ip"] for c in cps])
        for comp in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            write(f"{kroot}/manifests/{comp}.yaml", render(comp, cfg, version), 0o600)
    node_cert(lab, ca_root, kroot, n["name"], lab_dir, kubeconfig=not empty)
    json.dump({"name": n["name"], "role": n["role"], "leader": n.get("leader", False), "ip": n["ip"], "api": lab["api"],
               "releases": lab["releases"], "kubeadm_timeout": lab["kubeadm_timeout"],
               "pod_start_delay": lab["pod_start_delay"], "apt_download_delay": lab.get("apt_download_delay", 0.0),
               "manifest_cfg": cfg, "leader_ips": [c["ip"] for c in cps]},
              open(f"{lab_dir}/node.json", "w"), indent=1)
    pv = f"{version.lstrip('v')}-1.1"
    json.dump({p: {"version": pv, "hold": True} for p in ("kubeadm", "kubelet", "kubectl")},
              open(f"{lab_dir}/packages.json", "w"), indent=1)
    json.dump({"images": {}}, open(f"{lab_dir}/disk.json", "w"))
    write(f"{root}/etc/systemd/system/kubelet.service",
          "[Unit]\nDescription=kubelet: The Kubernetes Node Agent\n\n[Service]\nExecStart=/usr/local/bin/kubelet\n"
          "Restart=always\n\n[Install]\nWantedBy=multi-user.target\n")
    open(f"{lab_dir}/units/kubelet.service.enabled", "w").close()
    minor = ".".join(version.lstrip("v").split(".")[:2])
    write(f"{root}/etc/apt/sources.list.d/kubernetes.list",
          f"deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /\n")
    write(f"{root}/etc/hosts", f"127.0.0.1\tlocalhost\n{n['ip']}\t{n['name']}\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{nd}/ssh_host_ed25519_key"], check=True)
    write(f"{nd}/sshd_config", f"""Port {lab['ssh_port']}
ListenAddress {n['ip']}
HostKey {nd}/ssh_host_ed25519_key
PidFile {nd}/sshd.pid
AuthorizedKeysFile {authorized_keys}
UsePAM no
StrictModes no
UseDNS no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowTcpForwarding yes
MaxStartups 200:30:400
MaxSessions 64
KexAlgorithms curve25519-sha256
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel ERROR
""")
    os.chmod(nd, 0o755)
    return nd
