"""The cluster the API simulator starts with: nodes, kube-system as kubeadm leaves it (kubeadm-config,
CoreDNS, kube-proxy, the scheduler's and controller-manager's RBAC) and workloads with PDBs; and the
Prometheus configuration with the lab's alert rules."""
import base64
import datetime
import json
import os

from lab import yamltext

from lab import ROOT
from lab.k8sim.fixture import daemonset, namespace, pdb, pod
from lab.k8sim.store import MANAGED
from lab.node.common import images_for
from lab.node.manifests import API_EXTRA_ARGS

LONG_AGO = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
# A lab's cluster was made before LONG_AGO: its Nodes registered then (a flap after lab up is not
# a node's first Ready, which k8s-upgrade's quiet_hours lets pass).
JOINED = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")

# The API server's bootstrap policy for the control plane's own roles (kubernetes/kubernetes
# plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata/cluster-roles.yaml), as std.rbac_policy has it.
READ = ["get", "list", "watch"]
SCHEDULER_RULES = [
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["kube-scheduler"], "verbs": ["get", "update"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": READ},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["bindings", "pods/binding"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch", "update"]},
    {"apiGroups": [""], "resources": ["replicationcontrollers", "services"], "verbs": READ},
    {"apiGroups": ["apps", "extensions"], "resources": ["replicasets"], "verbs": READ},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": READ},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": READ},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims", "persistentvolumes"], "verbs": READ},
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["csinodes"], "verbs": READ},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": READ},
    {"apiGroups": ["storage.k8s.io"], "resources": ["csidrivers"], "verbs": READ},
    {"apiGroups": ["storage.k8s.io"], "resources": ["csistoragecapacities"], "verbs": READ},
]
VOLUME_SCHEDULER_RULES = [
    {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "patch", "update", "watch"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": READ},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "patch", "update", "watch"]},
]
CONTROLLER_MANAGER_RULES = [
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["kube-controller-manager"],
     "verbs": ["get", "update"]},
    {"apiGroups": [""], "resources": ["secrets", "serviceaccounts"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["delete"]},
    {"apiGroups": [""], "resources": ["configmaps", "namespaces", "secrets", "serviceaccounts"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["secrets", "serviceaccounts"], "verbs": ["update"]},
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
]


def rbac(component, rules, user=None):
    name = f"system:{component}"
    user = user or name
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}, "rules": rules}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}
    return [role, binding]


def cluster_admins():
    """cluster-admin and kubeadm's binding of admin.conf's group to it (kubeadm v1.29+)."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]}
    return [role, cluster_admins_binding()]


def cluster_admins_binding():
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "kubeadm:cluster-admins"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kubeadm:cluster-admins"}]}


def control_plane_rbac():
    return (rbac("kube-scheduler", SCHEDULER_RULES) + rbac("volume-scheduler", VOLUME_SCHEDULER_RULES, "system:kube-scheduler")
            + rbac("kube-controller-manager", CONTROLLER_MANAGER_RULES) + cluster_admins())


def lab_node(n, version):
    labels = {"kubernetes.io/hostname": n["name"], "kubernetes.io/os": "linux"}
    spec = {}
    if n["role"] == "control-plane":
        labels["node-role.kubernetes.io/control-plane"] = ""
        spec["taints"] = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    conds = [{"type": t, "status": s, "reason": r, "lastTransitionTime": LONG_AGO, "lastHeartbeatTime": LONG_AGO}
             for t, s, r in (("Ready", "True", "KubeletReady"), ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                             ("DiskPressure", "False", "KubeletHasNoDiskPressure"))]
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n["name"], "labels": labels, "creationTimestamp": JOINED},
            "spec": spec,
            "status": {"conditions": conds, "nodeInfo": {"kubeletVersion": version},
                       "addresses": [{"type": "InternalIP", "address": n["ip"]}]}}


def cluster_configuration(version, endpoint):
    return yamltext.dump({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
                          "kubernetesVersion": version, "controlPlaneEndpoint": endpoint,
                           "clusterName": "kubernetes", "imageRepository": "registry.k8s.io",
                           "certificatesDir": "/etc/kubernetes/pki",
                           "etcd": {"local": {"dataDir": "/var/lib/etcd"}},
                           "apiServer": {"extraArgs": API_EXTRA_ARGS},
                           "dns": {"imageRepository": "registry.k8s.io/coredns"},
                           "networking": {"dnsDomain": "cluster.local", "serviceSubnet": "10.96.0.0/12",
                                          "podSubnet": "10.244.0.0/16"}})


def deployment(name, ns, image, replicas, labels):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": image}]}}}}


def replicaset_of(name, ns, labels):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}}}


def kubeadm_objects(version):
    """What kubeadm init leaves in kube-system besides kubeadm-config: the scheduler's and the
    controller-manager's RBAC, CoreDNS (with its PDB) and kube-proxy at the version's images."""
    img = images_for("v" + version.lstrip("v"))
    out = control_plane_rbac()
    dns = {"k8s-app": "kube-dns"}
    out.append(deployment("coredns", "kube-system", img["coredns"], 2, dns))
    out.append(pdb("coredns", "kube-dns", ns="kube-system", max_unavailable=1))
    out[-1]["spec"]["selector"] = {"matchLabels": dns}
    kp = daemonset("kube-proxy")
    kp["spec"]["template"] = {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                              "spec": {"containers": [{"name": "kube-proxy", "image": img["kube-proxy"]}]}}
    out.append(kp)
    return out


def etcd_put(obj):
    """The etcd v3 gateway's put (/v3/kv/put's body) of an object where kube-apiserver keeps it: under
    --etcd-prefix /registry, a core resource at /registry/<plural>/<namespace>/<name>. The simulator
    keeps its own store, so the lab writes to etcd what must be found there: kubeadm-config, which
    only kubeadm writes (doctor's etcd-empty looks for it). JSON where kube-apiserver writes
    protobuf: nothing reads the value."""
    md = obj["metadata"]
    key = f"/registry/{obj['kind'].lower()}s/{md['namespace']}/{md['name']}"
    return {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(json.dumps(obj).encode()).decode()}


def kubeadm_config(objs):
    """kube-system/kubeadm-config among objects."""
    return next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "kubeadm-config")


def empty_objects():
    """A cluster before kubeadm init: the namespaces the API server makes by itself."""
    return [namespace(x) for x in ("default", "kube-system", "kube-public", "kube-node-lease")]


def objects(nodes, version, endpoint):
    v = "v" + version.lstrip("v")
    workers = [n["name"] for n in nodes if n["role"] == "worker"] or [nodes[0]["name"]]
    out = [namespace(x) for x in ("default", "kube-system", "kube-public", "kube-node-lease", "shop")]
    out += [lab_node(n, v) for n in nodes]
    out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                "data": {"ClusterConfiguration": cluster_configuration(v, endpoint)}})
    out += kubeadm_objects(v)
    dns = {"k8s-app": "kube-dns"}
    out.append(replicaset_of("coredns-7c65d6cfc9", "kube-system", dns))
    web = deployment("web", "shop", "nginx:1.27", 3, {"app": "web"})
    web["metadata"]["annotations"] = {MANAGED: "true"}  # its status follows its pods, as the controller's would
    out.append(web)
    out.append(pdb("web", "web", ns="shop", min_available=2))
    out.append(replicaset_of("web-5d4f8b7c9", "shop", {"app": "web"}))
    for i, w in enumerate(workers[:2] if len(workers) > 1 else workers * 2):
        out.append(dict(pod(f"coredns-7c65d6cfc9-{i}", w, ns="kube-system", labels=dns,
                            owner=("ReplicaSet", "coredns-7c65d6cfc9"))))
    for i in range(3):
        out.append(pod(f"web-5d4f8b7c9-{i}", workers[i % len(workers)], ns="shop", labels={"app": "web"},
                       owner=("ReplicaSet", "web-5d4f8b7c9")))
    for n in nodes:
        out.append(pod(f"kube-proxy-{n['name']}", n["name"], ns="kube-system", labels={"k8s-app": "kube-proxy"},
                       owner=("DaemonSet", "kube-proxy")))
    return out


PROMETHEUS_RULES = """groups:
- name: lab
  interval: 1s
  rules:
  - alert: LabFaultAlert
    expr: lab_fault_alert > 0
    labels: {severity: critical}
    annotations: {summary: "an alert the lab fired on {{ $labels.instance }}"}
"""
# Seed 004's Upgrade Gates: the file deploy/ ships, loaded as it is.
UPGRADE_RULES = os.path.join(ROOT, "deploy", "prometheus-rules.yaml")


def prometheus_config(pushgateway_addr, rules_path):
    return (f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [{rules_path}, {UPGRADE_RULES}]\n"
            f"scrape_configs:\n- job_name: pushgateway\n  honor_labels: true\n"
            f"  static_configs: [{{targets: ['{pushgateway_addr}']}}]\n")
