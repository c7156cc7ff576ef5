"""The kinds the simulator serves: what discovery lists and how paths map to them."""

# group, version, plural, kind, namespaced, short names, subresources
RESOURCES = [
    ("", "v1", "namespaces", "Namespace", False, ["ns"], []),
    ("", "v1", "nodes", "Node", False, ["no"], ["status"]),
    ("", "v1", "pods", "Pod", True, ["po"], ["status", "eviction", "log"]),
    ("", "v1", "events", "Event", True, ["ev"], []),
    ("", "v1", "configmaps", "ConfigMap", True, ["cm"], []),
    ("", "v1", "secrets", "Secret", True, [], []),
    ("", "v1", "services", "Service", True, ["svc"], []),
    ("apps", "v1", "daemonsets", "DaemonSet", True, ["ds"], ["status"]),
    ("apps", "v1", "replicasets", "ReplicaSet", True, ["rs"], ["status"]),
    ("apps", "v1", "deployments", "Deployment", True, ["deploy"], ["status"]),
    ("apps", "v1", "statefulsets", "StatefulSet", True, ["sts"], ["status"]),
    ("batch", "v1", "jobs", "Job", True, [], ["status"]),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], ["status"]),
    # served as a 1.24 cluster serves it: removed in 1.25 with no successor (std.removed_apis)
    ("policy", "v1beta1", "podsecuritypolicies", "PodSecurityPolicy", False, ["psp"], []),
    ("coordination.k8s.io", "v1", "leases", "Lease", True, [], []),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, [], []),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, [], []),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", True, [], []),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, [], []),
    ("", "v1", "serviceaccounts", "ServiceAccount", True, ["sa"], []),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], ["status"]),
    ("batch", "v1", "cronjobs", "CronJob", True, ["cj"], ["status"]),
    ("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, [], []),
    ("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, [], []),
]

BY_PATH = {(g, v, p): (g, v, p, k, ns, sn, sub) for g, v, p, k, ns, sn, sub in RESOURCES}
KIND_OF = {(g, p): k for g, v, p, k, ns, sn, sub in RESOURCES}


def api_version(group, version):
    return f"{group}/{version}" if group else version


def resource_list(group, version):
    out = []
    for g, v, p, k, ns, sn, sub in RESOURCES:
        if g != group or v != version:
            continue
        verbs = ["create"] if p in ("selfsubjectaccessreviews", "subjectaccessreviews") else \
            ["create", "delete", "get", "list", "patch", "update", "watch"]
        out.append({"name": p, "singularName": k.lower(), "namespaced": ns, "kind": k, "verbs": verbs,
                    "shortNames": sn})
        for s in sub:
            if s == "eviction":
                out.append({"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                            "version": "v1", "kind": "Eviction", "verbs": ["create"]})
            else:
                out.append({"name": f"{p}/{s}", "singularName": "", "namespaced": ns, "kind": k,
                            "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version(group, version),
            "resources": out}


def groups():
    seen = {}  # group -> its versions, the preferred (first listed) first
    for g, v, *_ in RESOURCES:
        if g and v not in seen.setdefault(g, []):
            seen[g].append(v)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
         "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}} for g, vs in seen.items()]}
