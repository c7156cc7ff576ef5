"""The static Pod manifests kubeadm writes to /etc/kubernetes/manifests on a control-plane node
(stacked etcd), trimmed to what the lab runs: etcd's command is what the simulated kubelet executes."""
from lab import yamltext
from lab.node.common import images_for


def _pod(name, image, command, extra_labels=None, annotations=None):
    meta = {"name": name, "namespace": "kube-system",
            "labels": {"component": name, "tier": "control-plane", **(extra_labels or {})}}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                                 "command": command}],
                 "hostNetwork": True, "priorityClassName": "system-node-critical",
                 "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
        "status": {},
    }


def etcd(cfg, version):
    """cfg: name, ip, cluster (name=https://ip:2380,...), state ('new' or 'existing')."""
    ip, pki = cfg["ip"], "/etc/kubernetes/pki/etcd"
    cmd = ["etcd", f"--name={cfg['name']}", "--data-dir=/var/lib/etcd",
           f"--advertise-client-urls=https://{ip}:2379", f"--listen-client-urls=https://{ip}:2379",
           f"--initial-advertise-peer-urls=https://{ip}:2380", f"--listen-peer-urls=https://{ip}:2380",
           f"--initial-cluster={cfg['cluster']}", f"--initial-cluster-state={cfg.get('state', 'new')}",
           "--initial-cluster-token=engine-lab", "--client-cert-auth=true", "--peer-client-cert-auth=true",
           f"--cert-file={pki}/server.crt", f"--key-file={pki}/server.key", f"--trusted-ca-file={pki}/ca.crt",
           f"--peer-cert-file={pki}/peer.crt", f"--peer-key-file={pki}/peer.key",
           f"--peer-trusted-ca-file={pki}/ca.crt", "--snapshot-count=10000"]
    # kubeadm's own annotation (what its upgrade reads the member's client URL from).
    return _pod("etcd", images_for(version)["etcd"], cmd,
                annotations={"kubeadm.kubernetes.io/etcd.advertise-client-urls": f"https://{ip}:2379"})


# The lab cluster's own apiServer.extraArgs (kubeadm v1beta4's list form): in the kubeadm-config
# ConfigMap and in every apiserver manifest, so a ClusterConfiguration written back without them
# visibly loses them (seed 003, IR-1).
API_EXTRA_ARGS = [{"name": "profiling", "value": "false"}, {"name": "audit-log-maxage", "value": "30"}]


def extra_args(args):
    """v1beta4's [{name, value}] or v1beta3's {name: value}, as (name, value) pairs."""
    if isinstance(args, dict):
        return sorted(args.items())
    return [(a["name"], a["value"]) for a in args or []]


def apiserver(cfg, version, cc=None, advertise=None):
    """cc: the ClusterConfiguration kubeadm renders from (etcd.local or etcd.external, apiServer.extraArgs);
    without one, the lab's own. Flags that are not in cc are not in the manifest, as with kubeadm."""
    ip = advertise or cfg["ip"]
    external = ((cc or {}).get("etcd") or {}).get("external")
    if external:
        etcd = ["--etcd-servers=" + ",".join(external.get("endpoints") or []),
                f"--etcd-cafile={external.get('caFile', '')}", f"--etcd-certfile={external.get('certFile', '')}",
                f"--etcd-keyfile={external.get('keyFile', '')}"]
    else:  # kubeadm's stacked etcd: the node's own member on loopback (the lab's API is not this process)
        etcd = ["--etcd-servers=https://127.0.0.1:2379",
                "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
                "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
                "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key"]
    args = API_EXTRA_ARGS if cc is None else ((cc.get("apiServer") or {}).get("extraArgs") or [])
    cmd = ["kube-apiserver", f"--advertise-address={ip}", "--secure-port=6443"] + etcd + [
           "--client-ca-file=/etc/kubernetes/pki/ca.crt", "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
           "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key", "--authorization-mode=Node,RBAC",
           "--service-cluster-ip-range=10.96.0.0/12"] + [f"--{k}={v}" for k, v in extra_args(args)]
    return _pod("kube-apiserver", images_for(version)["kube-apiserver"], cmd)


def controller_manager(cfg, version):
    cmd = ["kube-controller-manager", "--kubeconfig=/etc/kubernetes/controller-manager.conf",
           "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf", "--leader-elect=true",
           "--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt",
           "--cluster-signing-key-file=/etc/kubernetes/pki/ca.key", "--use-service-account-credentials=true"]
    return _pod("kube-controller-manager", images_for(version)["kube-controller-manager"], cmd)


def scheduler(cfg, version):
    cmd = ["kube-scheduler", "--kubeconfig=/etc/kubernetes/scheduler.conf",
           "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf", "--leader-elect=true"]
    return _pod("kube-scheduler", images_for(version)["kube-scheduler"], cmd)


BUILDERS = {"etcd": etcd, "kube-apiserver": apiserver, "kube-controller-manager": controller_manager,
            "kube-scheduler": scheduler}


def render(component, cfg, version, cc=None, advertise=None):
    pod = apiserver(cfg, version, cc, advertise) if component == "kube-apiserver" else BUILDERS[component](cfg, version)
    return yamltext.dump(pod)


def external_etcd(cc):
    return bool(((cc or {}).get("etcd") or {}).get("external"))


def version_of_image(image):
    return image.rsplit(":", 1)[-1]
