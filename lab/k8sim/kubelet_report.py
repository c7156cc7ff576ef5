"""What a node's (simulated) kubelet tells the API: the Node's status and its static pods, which
the API shows as mirror pods in kube-system named POD-NODE."""
import copy

from lab.k8sim.store import ApiError, now


def set_condition(conds, type_, status, reason=""):
    for c in conds:
        if c["type"] == type_:
            if c["status"] != status:  # lastTransitionTime moves only when the status does
                c["lastTransitionTime"] = now()
            c["status"], c["reason"], c["lastHeartbeatTime"] = status, reason, now()
            return
    conds.append({"type": type_, "status": status, "reason": reason, "lastHeartbeatTime": now(),
                  "lastTransitionTime": now()})


def mirror_pod(node, p):
    name = p["name"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-{node}", "namespace": "kube-system",
                         "labels": {"component": name, "tier": "control-plane"},
                         "annotations": {"kubernetes.io/config.mirror": p["hash"], "kubernetes.io/config.hash": p["hash"],
                                         "kubernetes.io/config.source": "file", "kubernetes.io/config.seen": now()},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": f"uid-node-{node}",
                                              "controller": True}]},
            "spec": {"nodeName": node, "priorityClassName": "system-node-critical", "hostNetwork": True,
                     "containers": [{"name": name, "image": p["image"]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if p["ready"] else "False"}]}}


def apply(st, report, version_node):
    """st is locked by the caller."""
    name = report["node"]
    try:
        node = copy.deepcopy(st.get("", "nodes", "", name))
    except ApiError:
        node = st.create("", "nodes", "", {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                                           "spec": {}}, "Node")
        node = copy.deepcopy(node)
    status = node.setdefault("status", {})
    conds = status.setdefault("conditions", [])
    set_condition(conds, "Ready", "True" if report["ready"] else "False", report.get("reason", ""))
    set_condition(conds, "MemoryPressure", "False", "KubeletHasSufficientMemory")
    set_condition(conds, "DiskPressure", "True" if report.get("disk_pressure") else "False",
                  "KubeletHasDiskPressure" if report.get("disk_pressure") else "KubeletHasNoDiskPressure")
    status.setdefault("nodeInfo", {})["kubeletVersion"] = report["version"]
    status["addresses"] = [{"type": "InternalIP", "address": report.get("ip", "")}, {"type": "Hostname", "address": name}]
    if node != st.get("", "nodes", "", name):
        st.update("", "nodes", "", name, node, check_rv=False)
    want = {f"{p['name']}-{name}": p for p in report.get("pods", [])}
    for p in st.list("", "pods", "kube-system"):
        pn = p["metadata"]["name"]
        if p["spec"].get("nodeName") == name and "kubernetes.io/config.mirror" in p["metadata"].get("annotations", {}) \
                and pn not in want:
            st.remove("", "pods", "kube-system", pn)
    for pn, p in want.items():
        obj = mirror_pod(name, p)
        try:
            cur = st.get("", "pods", "kube-system", pn)
        except ApiError:
            st.create("", "pods", "kube-system", obj, "Pod")
            continue
        if cur["spec"]["containers"][0]["image"] != p["image"] or \
                cur["metadata"]["annotations"].get("kubernetes.io/config.mirror") != p["hash"] or \
                cur["status"]["conditions"][0]["status"] != obj["status"]["conditions"][0]["status"]:
            st.update("", "pods", "kube-system", pn, obj, check_rv=False)
    if name == version_node and "kube-apiserver" in [p["name"] for p in report.get("pods", [])]:
        img = [p for p in report["pods"] if p["name"] == "kube-apiserver"][0]["image"]
        st.server_version = img.rsplit(":", 1)[-1]
