"""What every node simulator shares: where the node's state lives (its own directories, bind-mounted
at their real paths by boot.py), the package versions, the simulated disk, the images kubeadm uses
for a version, and a client for the lab's API simulator."""
import json
import os
import signal
import sys
import time

from lab import plumbing_context

LAB = "/var/lib/engine-lab"          # the node's lab state: node.json, packages.json, disk.json, faults/, units/
MANIFESTS = "/etc/kubernetes/manifests"
PKI = "/etc/kubernetes/pki"
PODS = "/var/lib/kubelet/pods.json"  # what the simulated kubelet runs

# The images kubeadm lays out for a Kubernetes minor (kubeadm's constants for those releases).
ADDON_IMAGES = {
    "1.32": {"etcd": "3.5.16-0", "coredns": "v1.11.3", "pause": "3.10"},
    "1.33": {"etcd": "3.5.21-0", "coredns": "v1.12.0", "pause": "3.10"},
    "1.34": {"etcd": "3.6.4-0", "coredns": "v1.12.1", "pause": "3.10.1"},
    "1.35": {"etcd": "3.6.5-0", "coredns": "v1.12.4", "pause": "3.10.1"},
}
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def minor(v):
    return ".".join(v.lstrip("v").split(".")[:2])


def vtuple(v):
    return tuple(int(x) for x in v.lstrip("v").split("-")[0].split("."))


def images_for(version):
    v = "v" + version.lstrip("v")
    a = ADDON_IMAGES.get(minor(v), ADDON_IMAGES["1.34"])
    out = {c: f"registry.k8s.io/{c}:{v}" for c in CONTROL_PLANE + ("kube-proxy",)}
    out["coredns"] = f"registry.k8s.io/coredns/coredns:{a['coredns']}"
    out["pause"] = f"registry.k8s.io/pause:{a['pause']}"
    out["etcd"] = f"registry.k8s.io/etcd:{a['etcd']}"
    return out


def die(msg, code=1):
    sys.stderr.write(msg.rstrip("\n") + "\n")
    sys.exit(code)


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json(path, obj):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def node():
    n = read_json(f"{LAB}/node.json")
    if n is None:
        die("this command only works on a node of the engine lab (no /var/lib/engine-lab/node.json)")
    return n


def packages():
    return read_json(f"{LAB}/packages.json", {})


def pkg_version(name):
    """'1.33.1' for an installed '1.33.1-1.1'."""
    p = packages().get(name)
    return p["version"].split("-")[0] if p else None


def fault(name):
    return os.path.exists(f"{LAB}/faults/{name}")


def file_hash(data):
    import hashlib  # here, not above: every simulated command loads this module, few hash
    return hashlib.sha256(data).hexdigest()[:16]


# --- the simulated disk -------------------------------------------------------------------------
GIB = 1 << 30


def disk():
    d = read_json(f"{LAB}/disk.json", {})
    d.setdefault("size", 50 * GIB)
    d.setdefault("base", 11 * GIB)
    d.setdefault("journal", 2 * GIB)
    d.setdefault("images", {})
    d.setdefault("fill", 0)
    d.setdefault("apt_cache", 0)  # /var/cache/apt: what apt-get clean frees
    d.setdefault("snaps", {})     # /var/lib/snapd: disabled snap revisions, "name revision" -> bytes
    return d


def disk_used(d):
    used = d["base"] + d["journal"] + sum(d["images"].values()) + d["fill"] + d["apt_cache"] + sum(d["snaps"].values())
    return min(used, d["size"])


def disk_full(d):
    return disk_used(d) >= d["size"]


def save_disk(d):
    write_json(f"{LAB}/disk.json", d)


def disk_free():
    d = disk()
    return d["size"] - disk_used(d)


# --- the API simulator --------------------------------------------------------------------------
def api(method, path, body=None, timeout=10):
    """A request to the lab's API simulator as this node's kubelet (its client certificate)."""
    # Imported here: urllib.request (with http.client and email) is half the start-up of a
    # simulated command, and most (apt-get, apt-mark, systemctl) never call the API.
    import urllib.request
    n = node()
    ctx = plumbing_context(f"{LAB}/kubelet-client.pem", None)
    data = None if body is None else json.dumps(body).encode()
    ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
    req = urllib.request.Request(n["api"] + path, data=data, method=method, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
        return json.loads(r.read() or b"{}")


def cluster_config():
    """kubeadm's ClusterConfiguration from the kubeadm-config ConfigMap, as a dict."""
    from lab import yamltext
    cm = api("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    return cm, yamltext.load(cm["data"]["ClusterConfiguration"])


def alive(pid):
    """The process runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return not f.read().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return False


def terminate(pid, grace=10.0):
    """SIGTERM, then SIGKILL if it is still there after `grace` seconds. The exit is waited for
    on a pidfd (it is seen as it happens, not at the next of a poll's steps: a kubelet's restart
    and an etcd's stop are on the upgrade's critical path)."""
    if not pid or not alive(pid):
        return
    from lab.node.wake import exits
    fd = exits(pid)
    try:
        os.kill(pid, signal.SIGTERM)
        if not wait_until(lambda: not alive(pid), grace, 0.05 if fd is None else 0.2, fds=(fd,) if fd is not None else ()):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        if fd is not None:
            os.close(fd)


def wait_until(cond, limit, step=0.2, dirs=(), fds=()):
    """True once cond() holds, False after `limit` seconds. cond is asked again as soon as an
    entry of one of `dirs` changes (inotify) or one of `fds` is readable (a pidfd: the process
    ended), else every `step` seconds at the latest."""
    deadline = time.monotonic() + limit
    wake = None
    if dirs or fds:
        from lab.node.wake import Wake
        wake = Wake(dirs, signals=(), quiet=True)
        wake.watch()  # before the first ask: a change between it and the wait is not missed
    try:
        while time.monotonic() < deadline:
            if cond():
                return True
            pause = max(0.0, min(step, deadline - time.monotonic()))
            if wake is not None:
                wake.wait(pause, fds)
            else:
                time.sleep(pause)
        return False
    finally:
        if wake is not None:
            wake.close()
