"""Faults from the seeds, injected into a running lab and cleared again (`lab fault|clear NODE KIND`).
Each is visible the way an SRE would look for it."""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request

from lab import cluster as labcluster
from lab import plumbing_context, yamltext
from lab.node import certs
from lab.procs import LabError, pids_in_ns, port_open, wait

KINDS = ["stale-manifest-bak", "apiserver-phase-timeout", "scheduler-rbac-missing", "pdb-blocks", "certs-expired",
         "certs-expiring", "ca-expiring", "disk-full", "disk-full-stuck", "node-notready", "ssh-down", "alert-firing", "etcd-old-holds-datadir",
         "etcd-unit-fails", "etcd-new-version-fails", "controller-manager-rbac-missing", "cluster-admins-binding-missing",
         "api-unreachable", "apt-fetch-stall", "etcd-nospace", "manifests-moved",
         "kubelet-cert-expired", "etcd-data-lost", "etcd-forked", "etcd-kubeadm-flags"]
CP_ONLY = {"stale-manifest-bak", "apiserver-phase-timeout", "certs-expired", "certs-expiring", "ca-expiring", "etcd-old-holds-datadir",
           "etcd-unit-fails", "etcd-new-version-fails", "etcd-nospace", "manifests-moved", "etcd-data-lost",
           "etcd-forked", "etcd-kubeadm-flags"}


class FaultError(Exception):
    pass


def api(st, method, path, body=None):
    ctx = plumbing_context(f"{st['dir']}/admin.crt", f"{st['dir']}/admin.key")
    req = urllib.request.Request(st["api"] + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        if e.code == 404 and method == "DELETE":
            return {}
        raise


def active(st, n):
    return sorted(st.get("faults", {}).get(n["name"], []))


def root(st, n):
    return f"{st['dir']}/nodes/{n['name']}/root"


def flag(st, n, kind, on):
    path = f"{root(st, n)}/var/lib/engine-lab/faults/{kind}"
    if on:
        open(path, "w").close()
    elif os.path.exists(path):
        os.unlink(path)


def new_version_fails(st, n, on):
    """etcd.service starts only the etcd the node has now: another version (an upgrade) exits at once."""
    path = f"{root(st, n)}/var/lib/engine-lab/faults/etcd-new-version-fails"
    if not on:
        if os.path.exists(path):
            os.unlink(path)
        return
    etcd = f"{root(st, n)}/usr/local/bin/etcd"
    if not os.path.exists(etcd):
        raise LabError(f"etcd-new-version-fails needs etcd under systemd on {n['name']} (no /usr/local/bin/etcd)")
    out = subprocess.run([etcd, "--version"], capture_output=True, text=True).stdout
    with open(path, "w") as f:
        f.write(out.split("etcd Version:", 1)[1].split()[0])


MOVED = ("etcd.yaml", "kube-scheduler.yaml")


def manifests_moved(st, n, on):
    """etcd.yaml and kube-scheduler.yaml moved out of the manifests directory to /etc/kubernetes,
    the way an operator stops a static pod by hand (for an etcd restore, a scheduler debug) and then
    forgets: the kubelet stops both, and nothing in the cluster says where the files went. Cleared:
    put back."""
    m, away = f"{root(st, n)}/etc/kubernetes/manifests", f"{root(st, n)}/etc/kubernetes"
    for f in MOVED:
        src, dst = (f"{m}/{f}", f"{away}/{f}") if on else (f"{away}/{f}", f"{m}/{f}")
        if os.path.exists(src) and not os.path.exists(dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.replace(src, dst)
        elif not on and os.path.exists(src):
            os.unlink(src)  # restored meanwhile (by recover-static-pods): the moved copy goes


def kubelet_cert_expired(st, n, on):
    """kubelet.conf's client certificate (system:node:NAME, embedded as kubeadm join writes it before
    the kubelet rotates) expired, and the kubelet restarted, as after a reboot of a node that was off
    past its certificate's end (seed 001: "part of the existing bootstrap client certificate is
    expired"; no bootstrap-kubelet.conf, so it exits, and systemd starts it again). The node goes
    NotReady. Cleared: a valid certificate again, the kubelet restarted."""
    conf = f"{root(st, n)}/etc/kubernetes/kubelet.conf"
    with open(conf) as f:
        server = yamltext.load(f)["clusters"][0]["cluster"]["server"]
    d, user = st["dir"], f"system:node:{n['name']}"
    key, crt = f"{d}/.kubelet-{n['name']}.key", f"{d}/.kubelet-{n['name']}.crt"
    certs.new_key(key)
    certs.sign(f"{d}/pki", "ca", f"/O=system:nodes/CN={user}", "client", key, crt, -1 if on else 365, "")
    certs.kubeconfig(conf, server, f"{d}/pki/pki/ca.crt", crt, key, user)
    os.unlink(key)
    os.unlink(crt)
    subprocess.run(["nsenter", "-t", str(n["anchor"]["pid"]), "-m", "-u", "/usr/local/sbin/systemctl", "restart", "kubelet"],
                   check=True, capture_output=True)


def etcd_data_lost(st, n, on):
    """The node's etcd data gone (a disk replaced, an rm -rf in the wrong place): the member's
    directory removed while its etcd was stopped, then etcd started again from the same manifest.
    With no data and --initial-cluster-state=new it finds its member already bootstrapped on the
    peers and exits ("member ... has already been bootstrapped"): down until the member is
    replaced (member remove, member add, an etcd that joins as existing). Cleared: nothing brings
    the data back; the fault is only forgotten."""
    if not on:
        return
    m = f"{root(st, n)}/etc/kubernetes/manifests/etcd.yaml"
    parked = f"{root(st, n)}/var/lib/engine-lab/etcd.yaml.parked"
    systemctl = ["nsenter", "-t", str(n["anchor"]["pid"]), "-m", "-u", "/usr/local/sbin/systemctl"]
    if os.path.exists(m):  # kubeadm's static Pod
        os.replace(m, parked)
    elif os.path.exists(f"{root(st, n)}/etc/etcd/etcd.env"):  # etcd.service (etcd-to-systemd)
        subprocess.run(systemctl + ["stop", "etcd"], check=True, capture_output=True)
    else:
        raise LabError(f"etcd-data-lost needs etcd on {n['name']}: no {m} and no /etc/etcd/etcd.env")
    wait(lambda: not port_open(n["ip"], 2379), f"etcd of {n['name']} stopping", 30)
    shutil.rmtree(f"{root(st, n)}/var/lib/etcd/member", ignore_errors=True)
    if os.path.exists(parked):
        os.replace(parked, m)
    else:
        subprocess.run(systemctl + ["start", "etcd"], capture_output=True)  # fails: the member's data is gone


def etcd_forked(st, n, on):
    """The node's etcd data gone under the manifest kubeadm writes at init and at every upgrade:
    --initial-cluster naming the member itself alone, --initial-cluster-state new (kubeadm passes
    the member list only when a node joins). With no data, etcd then bootstraps a new, empty
    one-member cluster instead of failing (kubespray#13261): it answers, healthy, with a leader,
    and the node's API server reads and writes it, while its peers go on without it. Cleared:
    nothing brings the data back; the fault is only forgotten."""
    if on:
        with_kubeadm_flags(st, n, "etcd-forked", lose_data=True)


def etcd_kubeadm_flags(st, n, on):
    """The node's etcd.yaml with the bootstrap flags kubeadm writes at init and at every upgrade
    (--initial-cluster naming the member itself alone, --initial-cluster-state new), its data kept:
    etcd ignores the flags while it has its data, so the member restarts and rejoins as before. What
    a real kubeadm cluster runs with, and why a member that loses its data there forks (etcd-forked).
    Cleared: only forgotten (etcd-maintenance.lua mode=manifests writes the safe flags)."""
    if on:
        with_kubeadm_flags(st, n, "etcd-kubeadm-flags", lose_data=False)


def with_kubeadm_flags(st, n, fault, lose_data):
    """etcd.yaml parked (its etcd stops), the member's data removed if asked, the manifest put back
    with kubeadm's bootstrap flags, and its etcd waited for: answering with its data, or as a new
    cluster of its own without it."""
    m = f"{root(st, n)}/etc/kubernetes/manifests/etcd.yaml"
    parked = f"{root(st, n)}/var/lib/engine-lab/etcd.yaml.parked"
    if not os.path.exists(m):
        raise LabError(f"{fault} needs kubeadm's etcd static Pod on {n['name']}: no {m}")
    os.replace(m, parked)
    wait(lambda: not port_open(n["ip"], 2379), f"etcd of {n['name']} stopping", 30)
    if lose_data:
        shutil.rmtree(f"{root(st, n)}/var/lib/etcd/member", ignore_errors=True)
    with open(parked) as f:
        text = f.read()
    text = re.sub(r"--initial-cluster=[^\s\"']+", f"--initial-cluster={n['name']}=https://{n['ip']}:2380", text)
    with open(parked, "w") as f:
        f.write(re.sub(r"--initial-cluster-state=[a-z]+", "--initial-cluster-state=new", text))
    os.replace(parked, m)
    wait(lambda: port_open(n["ip"], 2379), f"etcd of {n['name']} " + ("starting a cluster of its own" if lose_data else
                                                                      "starting again with its data"), 60)


# What a full disk held in seed 002 (a 7.6G root: containerd images, snapd, the journal, apt's
# cache), scaled to the lab's 50G disk; what the cleanups free is reclaimable, the rest is not.
OLD_IMAGES = {"registry.k8s.io/kube-apiserver:v1.31.4": 3 << 30, "registry.k8s.io/kube-controller-manager:v1.31.4": 2 << 30,
              "docker.io/library/busybox:1.36": 1 << 30}
DISABLED_SNAPS = {"core20 1974": 1 << 30, "lxd 24322": 1 << 30}


def disk_fill(st, n, on, reclaimable=True):
    """disk-full: / at 100%, about 15G of it reclaimable (journal 5G, apt cache 2G, disabled snaps
    2G, unused images 6G) on top of a fixed part that leaves the disk 70% used once it is all freed.
    disk-full-stuck: 100% with nothing a cleanup can free. The node's kubelet cannot start pods
    while the disk is full (seed 002: CreateContainerConfigError, no space left on device), and
    starts them again only after a restart once there is space. Cleared: as before, kubelet running."""
    path = f"{root(st, n)}/var/lib/engine-lab/disk.json"
    with open(path) as f:
        d = json.load(f)
    size = d.get("size", 50 << 30)
    if on and reclaimable:
        d.update(journal=5 << 30, apt_cache=2 << 30, snaps=dict(DISABLED_SNAPS))
        d.setdefault("images", {}).update(OLD_IMAGES)
        in_use = sum(v for k, v in d["images"].items() if k not in OLD_IMAGES)
        d["fill"] = max(0, int(size * 0.70) - d.get("base", 11 << 30) - in_use - (64 << 20))
        d["fill"] += size - (d["fill"] + d.get("base", 11 << 30) + sum(d["images"].values()) + d["journal"] +
                             d["apt_cache"] + sum(d["snaps"].values()))  # exactly full
    elif on:
        d["fill"] = size
    else:
        d.update(fill=0, journal=2 << 30, apt_cache=0, snaps={})
        for img in OLD_IMAGES:
            d.get("images", {}).pop(img, None)
    with open(path, "w") as f:
        json.dump(d, f)
    flag(st, n, "disk-full", on)


def stale_bak(st, n, on):
    m = f"{root(st, n)}/etc/kubernetes/manifests"
    bak = f"{m}/kube-apiserver.yaml.bak"
    if on:
        with open(f"{m}/kube-apiserver.yaml") as src, open(bak, "w") as dst:
            dst.write(src.read())
        old = time.time() - 86400  # left behind by an earlier, hand-made change
        os.utime(bak, (old, old))
    elif os.path.exists(bak):
        os.unlink(bak)


def expire_certs(st, n, on):
    """The node's kubeadm leaf certificates expired (etcd's kept: etcd keeps running on its own), as
    if the clock had passed their NotAfter: its API server now serves the expired certificate. On
    the first control-plane node, whose admin.conf the lab's kubeconfig stands for (seed 001's
    operator had copied it to ~/.kube/config), the lab's kubeconfig expires too."""
    kroot = f"{root(st, n)}/etc/kubernetes"
    cps = [x["ip"] for x in st["nodes"] if x["role"] == "control-plane"]
    for name in certs.LEAVES:
        if not name.startswith("etcd-"):
            certs.issue(kroot, name, n["name"], n["ip"], st["api"], -1 if on else st.get("cert_days", 365), cps)
    served_as_of_now(st, n)
    first = [x for x in st["nodes"] if x["role"] == "control-plane"][0]
    if n["name"] == first["name"]:
        d = st["dir"]
        crt = f"{d}/admin.crt"
        if on:  # the same identity, expired (the lab's own plumbing keeps admin.crt)
            crt = f"{d}/admin-expired.crt"
            certs.sign(f"{d}/pki", "ca", "/O=system:masters/CN=lab-admin", "client", f"{d}/admin.key", crt, -1, "")
        certs.kubeconfig(f"{d}/kubeconfig", st.get("lb", st["api"]), f"{d}/pki/pki/ca.crt", crt, f"{d}/admin.key", "lab-admin")


def expiring_certs(st, n, on):
    """Every leaf certificate of the node (etcd's too: still valid, and etcd rereads its files)
    reissued to expire in `--days` days, and served so; cleared: reissued for the lab's --cert-days."""
    kroot = f"{root(st, n)}/etc/kubernetes"
    cps = [x["ip"] for x in st["nodes"] if x["role"] == "control-plane"]
    days = st.get("fault_days", {}).get(n["name"], 10) if on else st.get("cert_days", 365)
    for name in certs.LEAVES:
        certs.issue(kroot, name, n["name"], n["ip"], st["api"], days, cps)
    served_as_of_now(st, n)


def ca_expiring(st, n, on):
    """The node's cluster CA certificate (pki/ca.crt) reissued with its own key and name to expire in
    `--days` days (cleared: ten years again): what it signed still verifies, and kubeadm cannot
    renew it (a CA close to its end is a PKI rebuild, not a renewal)."""
    days = st.get("fault_days", {}).get(n["name"], 10) if on else 3650
    certs.reissue_ca(f"{root(st, n)}/etc/kubernetes", "ca", days)


def served_as_of_now(st, n):
    """The node's API server serves its certificate files as they are now: these faults stand for
    time passing, not for a renewal (which is served only after a restart)."""
    api(st, "POST", "/_sim/serving", {"node": n["name"]})


def pdb_blocks(st, n, on):
    name = f"guarded-{n['name']}"
    if on:
        api(st, "POST", "/apis/policy/v1/namespaces/shop/poddisruptionbudgets",
            {"metadata": {"name": name}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": name}}}})
        api(st, "POST", "/apis/apps/v1/namespaces/shop/replicasets",
            {"metadata": {"name": name}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}}})
        api(st, "POST", "/api/v1/namespaces/shop/pods",
            {"metadata": {"name": f"{name}-0", "labels": {"app": name},
                          "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name,
                                               "uid": f"uid-{name}", "controller": True}]},
             "spec": {"nodeName": n["name"], "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "db", "image": "postgres:16"}]},
             "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    else:
        api(st, "DELETE", f"/apis/policy/v1/namespaces/shop/poddisruptionbudgets/{name}")


def restore(st, plural, obj):
    try:
        api(st, "POST", f"/apis/rbac.authorization.k8s.io/v1/{plural}", obj)
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise


def scheduler_rbac(st, n, on):
    """The ClusterRole deleted (seed 000): the simulated scheduler is refused and binds no pod."""
    role, binding = labcluster.rbac("kube-scheduler", labcluster.SCHEDULER_RULES)
    if on:
        api(st, "DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:kube-scheduler")
    else:
        restore(st, "clusterroles", role)


def controller_manager_rbac(st, n, on):
    role, binding = labcluster.rbac("kube-controller-manager", labcluster.CONTROLLER_MANAGER_RULES)
    if on:
        api(st, "DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:kube-controller-manager")
    else:
        restore(st, "clusterroles", role)


def cluster_admins(st, n, on):
    """kubeadm:cluster-admins gone (kubeadm#3308): admin.conf can do nothing; super-admin.conf still can."""
    if on:
        api(st, "DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:cluster-admins")
    else:
        restore(st, "clusterrolebindings", labcluster.cluster_admins_binding())


NOSPACE_KEY = "/registry/engine-lab/nospace-filler"


def etcd_call(st, n, path, body):
    """One etcd v3 gateway call to the node's member, with the API server's etcd client certificate."""
    pki = f"{root(st, n)}/etc/kubernetes/pki"
    ctx = ssl.create_default_context(cafile=f"{pki}/etcd/ca.crt")
    ctx.load_cert_chain(f"{pki}/apiserver-etcd-client.crt", f"{pki}/apiserver-etcd-client.key")
    conn = http.client.HTTPSConnection(n["ip"], 2379, context=ctx, timeout=30)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        out = json.loads(r.read() or b"{}")
    finally:
        conn.close()
    if r.status != 200:
        raise LabError(f"etcd on {n['name']}: {path}: HTTP {r.status}: {out.get('message') or out}")
    return out


def etcd_nospace(st, n, on):
    """etcd's NOSPACE alarm, as etcd raises it when a member's database reaches its quota: one key
    written over and over (about 12 MiB of history, which only a compaction then a defragmentation
    give back), then the alarm raised on the node's member through etcd's Alarm API (the lab keeps
    etcd's default quota of 2 GiB; a member given a smaller --quota-backend-bytes raises it itself). etcd refuses every write; so does the API server, whose writes go
    to etcd. Cleared: every NOSPACE alarm disarmed, the key deleted, the API server writing again."""
    key = base64.b64encode(NOSPACE_KEY.encode()).decode()
    cps = [x for x in st["nodes"] if x["role"] == "control-plane"]
    pki = f"{root(st, n)}/etc/kubernetes/pki"
    if on:
        value = base64.b64encode(os.urandom(256 << 10)).decode()  # random: the database cannot compress it away
        for _ in range(48):
            try:
                etcd_call(st, n, "/v3/kv/put", {"key": key, "value": value})
            except LabError as e:  # a member with a smaller --quota-backend-bytes: etcd raised the alarm itself
                if "database space exceeded" not in str(e):
                    raise
                break
        member = etcd_call(st, n, "/v3/maintenance/status", {})["header"]["member_id"]
        etcd_call(st, n, "/v3/maintenance/alarm", {"action": "ACTIVATE", "memberID": member, "alarm": "NOSPACE"})
        api(st, "POST", "/_sim/etcd-nospace", {"ips": [x["ip"] for x in cps], "ca": f"{pki}/etcd/ca.crt",
                                               "cert": f"{pki}/apiserver-etcd-client.crt",
                                               "key": f"{pki}/apiserver-etcd-client.key"})
    else:
        for a in etcd_call(st, n, "/v3/maintenance/alarm", {"action": "GET"}).get("alarms") or []:
            if a.get("alarm") == "NOSPACE":
                etcd_call(st, n, "/v3/maintenance/alarm", {"action": "DEACTIVATE", "memberID": a["memberID"], "alarm": "NOSPACE"})
        etcd_call(st, n, "/v3/kv/deleterange", {"key": key})
        api(st, "POST", "/_sim/etcd-nospace", {})


def api_unreachable(st, n, on):
    """The controller's route to the API closed (seed 002): the lab's load balancer, which its
    kubeconfig names, refuses; every node still reaches the API servers on :6443, so an SSH tunnel
    through a node does. Cluster-wide: the node given only records it."""
    api(st, "POST", "/_sim/lb", {"open": not on})


def api_cut(st):
    return any("api-unreachable" in kinds for kinds in st.get("faults", {}).values())


def ssh_down(st, n, on):
    if on:
        for pid in pids_in_ns(n["mnt_ns"]):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "sshd":
                        os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    else:
        subprocess.run(["nsenter", "-t", str(n["anchor"]["pid"]), "-m", "-u", "/usr/sbin/sshd", "-f",
                        f"{st['dir']}/nodes/{n['name']}/sshd_config"], check=True)
        wait(lambda: port_open(n["ip"], st["ssh_port"]), f"sshd of {n['name']}", 10)


def alert(st, n, on):
    url = f"{st['pushgateway_url']}/metrics/job/lab-faults/instance/{n['name']}"
    if on:
        req = urllib.request.Request(url, data=b"lab_fault_alert 1\n", method="PUT")
    else:
        req = urllib.request.Request(url, method="DELETE")
    urllib.request.urlopen(req, timeout=5).read()


ACTIONS = {"stale-manifest-bak": stale_bak, "apiserver-phase-timeout": lambda st, n, on: flag(st, n, "apiserver-phase-timeout", on),
           "scheduler-rbac-missing": scheduler_rbac, "pdb-blocks": pdb_blocks, "certs-expired": expire_certs, "certs-expiring": expiring_certs,
           "ca-expiring": ca_expiring,
           "disk-full": disk_fill, "disk-full-stuck": lambda st, n, on: disk_fill(st, n, on, reclaimable=False), "node-notready": lambda st, n, on: flag(st, n, "node-notready", on),
           "ssh-down": ssh_down, "alert-firing": alert,
           "etcd-old-holds-datadir": lambda st, n, on: flag(st, n, "etcd-old-holds-datadir", on),
           "etcd-unit-fails": lambda st, n, on: flag(st, n, "etcd-unit-fails", on),
           "etcd-new-version-fails": new_version_fails, "controller-manager-rbac-missing": controller_manager_rbac,
           "cluster-admins-binding-missing": cluster_admins, "api-unreachable": api_unreachable,
           "apt-fetch-stall": lambda st, n, on: flag(st, n, "apt-fetch-stall", on), "etcd-nospace": etcd_nospace,
           "manifests-moved": manifests_moved, "kubelet-cert-expired": kubelet_cert_expired, "etcd-data-lost": etcd_data_lost,
           "etcd-forked": etcd_forked, "etcd-kubeadm-flags": etcd_kubeadm_flags}

SEE = {"stale-manifest-bak": "ls -l /etc/kubernetes/manifests",
       "apiserver-phase-timeout": "kubeadm upgrade apply (times out and rolls back)",
       "scheduler-rbac-missing": "kubectl auth can-i list pods --as system:kube-scheduler",
       "pdb-blocks": "kubectl get pdb -n shop", "certs-expired": "kubeadm certs check-expiration",
       "certs-expiring": "kubeadm certs check-expiration",
       "ca-expiring": "openssl x509 -enddate -noout -in /etc/kubernetes/pki/ca.crt",
       "disk-full": "df -h /; du -x -d 1 /var; journalctl --disk-usage",
       "disk-full-stuck": "df -h /; du -x -d 2 /var", "node-notready": "kubectl get nodes", "ssh-down": "ssh (connection refused)",
       "alert-firing": "the Prometheus alerts API (LabFaultAlert)",
       "etcd-old-holds-datadir": "move etcd.yaml out of the manifests: its etcd keeps running (flock /var/lib/etcd/member/snap/db)",
       "etcd-unit-fails": "systemctl start etcd (fails; journalctl -u etcd)",
       "etcd-new-version-fails": "an etcd upgrade on the node: the new etcd exits at start (journalctl -u etcd)",
       "controller-manager-rbac-missing": "kubectl auth can-i list secrets --as system:kube-controller-manager",
       "cluster-admins-binding-missing": "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes (forbidden)",
       "api-unreachable": "kubectl get nodes (connection refused); through a node: ssh -L 6443:NODE_IP:6443 NODE",
       "apt-fetch-stall": "apt-get install of a package not yet downloaded (waits, as at a stalled mirror)",
       "etcd-nospace": "etcdctl alarm list (NOSPACE); kubectl apply (etcdserver: mvcc: database space exceeded)",
       "manifests-moved": "ls /etc/kubernetes/manifests /etc/kubernetes (etcd.yaml and kube-scheduler.yaml are one level up)",
       "kubelet-cert-expired": "journalctl -u kubelet (part of the existing bootstrap client certificate is expired); kubectl get nodes",
       "etcd-data-lost": "/var/log/pods/etcd.log (member ... has already been bootstrapped); etcdctl endpoint health --cluster",
       "etcd-forked": "etcdctl endpoint status on the node and on a peer (two cluster IDs); etcdctl member list on each",
       "etcd-kubeadm-flags": "grep initial-cluster /etc/kubernetes/manifests/etcd.yaml (this member alone, state new)"}


def apply(st, n, kind, on, days=None):
    if kind in CP_ONLY and n["role"] != "control-plane":
        raise LabError(f"{kind} needs a control-plane node; {n['name']} is a {n['role']}")
    if kind == "pdb-blocks" and n["role"] != "worker":
        raise LabError(f"pdb-blocks needs a worker node; {n['name']} is a {n['role']}")
    faults = st.setdefault("faults", {}).setdefault(n["name"], [])
    if on and kind in faults:
        # The lab's record, not the node's state: a runbook that repaired it did not clear the record.
        return (f"{kind} is already set on {n['name']} (if a runbook has repaired it since, "
                f"`lab clear {n['name']} {kind}` and then `lab fault` sets it again)")
    if not on and kind not in faults:
        return f"{kind} is not set on {n['name']}"
    if on and days is not None:
        st.setdefault("fault_days", {})[n["name"]] = days
    ACTIONS[kind](st, n, on)
    if on:
        faults.append(kind)
        return f"{kind} set on {n['name']} (see it with: {SEE[kind]})"
    faults.remove(kind)
    return f"{kind} cleared on {n['name']}"
