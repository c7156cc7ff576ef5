#!/usr/bin/env python3
"""The lab: a simulated kubeadm cluster on one machine (design.md, "The lab").

  lab up [--control-planes 3] [--workers 3] [--version 1.33.1] [--dir DIR]
  lab down | status [--dir DIR]
  lab fault NODE KIND [--days N] | lab clear NODE KIND [--dir DIR]
  lab kubeconfig USER [--group G]... --out PATH [--dir DIR]
"""
import argparse
import concurrent.futures
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request

from lab import cluster as labcluster
from lab import plumbing_context
from lab import faults as labfaults
from lab import mirror as labmirror
from lab import nodes as labnodes
from lab.node import certs
from lab.procs import LabError, alive, kill_ns, mnt_ns, mounted_anywhere, port_open, spawn, wait  # noqa: F401
from lab.sshd import USER, ensure_users

DEFAULT_DIR = os.environ.get("ENGINE_LAB_DIR", "/tmp/engine-lab")
RELEASES = ["1.32.4", "1.32.9", "1.33.0", "1.33.1", "1.33.5", "1.34.0", "1.34.3"]
# Workers take .101-.199, then .201-.254: .200 is the monitoring's (Prometheus, Pushgateway, mirror).
WORKER_HOSTS = [h for h in range(101, 255) if h != 200]
REPLACEMENT_READY = 1.0  # seconds an evicted pod's replacement takes to become ready (bench/upgrade's floor counts it)
LB_PORT = 16443  # the kubeconfig's API address: the load balancer on cp1's address (the nodes use :6443)
MOUNT_POINTS = ["/etc/kubernetes", "/var/lib/etcd", "/var/lib/kubelet", "/etc/systemd/system", "/etc/etcd",
                "/var/lib/engine-lab", "/etc/apt/sources.list.d", "/var/cache/engine", "/etc/systemd/journald.conf.d"]
# In a mount point a lab made on this machine (hidden inside the nodes by their binds). Any lab's
# `down` removes such a directory once no mount namespace uses it: removing one another lab's nodes
# still bind (the kernel then detaches their mounts) took /etc/kubernetes from under their etcd.
MADE_BY_LAB = ".engine-lab-made"


# --- state --------------------------------------------------------------------------------------
def load(d):
    try:
        with open(f"{d}/lab.json") as f:
            return json.load(f)
    except OSError:
        return None


def save(st):
    with open(f"{st['dir']}/lab.json.tmp", "w") as f:
        json.dump(st, f, indent=1)
    os.replace(f"{st['dir']}/lab.json.tmp", f"{st['dir']}/lab.json")


def api_get(st, path):
    ctx = plumbing_context(f"{st['dir']}/admin.crt", f"{st['dir']}/admin.key")
    with urllib.request.urlopen(st["api"] + path, context=ctx, timeout=5) as r:
        return json.loads(r.read())


def etcd_healthy(st, n):
    pki = f"{st['dir']}/nodes/{n['name']}/root/etc/kubernetes/pki/etcd"
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.crt")
    ctx.load_cert_chain(f"{pki}/healthcheck-client.crt", f"{pki}/healthcheck-client.key")
    with urllib.request.urlopen(f"https://{n['ip']}:2379/health", context=ctx, timeout=3) as r:
        return json.loads(r.read()).get("health") == "true"


def healthy(st):
    """What is wrong with a lab that should be up, as a list of sentences."""
    bad = []
    for n in st["nodes"]:
        if not alive(n["anchor"]):
            bad.append(f"node {n['name']} is not running")
    for part in ("sim", "pushgateway", "prometheus", "mirror"):
        if not alive(st.get(part)):
            bad.append(f"{part} is not running")
    return bad


# --- up -----------------------------------------------------------------------------------------
def up(a):
    d = os.path.abspath(a.dir)
    st = load(d)
    if st and not healthy(st):
        print(f"lab is already up in {d}")
        print_usage(st)
        return 0
    if st:
        print(f"lab in {d} is partly down ({'; '.join(healthy(st))}); starting it again", file=sys.stderr)
        down_state(st)
    t0 = time.monotonic()
    inotify_room(a.control_planes + a.workers)
    ensure_users()
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    os.chmod(d, 0o755)
    net = a.subnet
    cps = [{"name": f"cp{i + 1}", "role": "control-plane", "ip": f"{net}.{i + 1}", "leader": i == 0}
           for i in range(a.control_planes)]
    workers = [{"name": f"w{i + 1}", "role": "worker", "ip": f"{net}.{WORKER_HOSTS[i]}"} for i in range(a.workers)]
    version = "v" + a.version.lstrip("v")
    st = {"dir": d, "version": version, "subnet": net, "ssh_port": a.ssh_port, "api": f"https://{cps[0]['ip']}:6443",
          "lb": f"https://{cps[0]['ip']}:{LB_PORT}",
          "releases": sorted(set(RELEASES + [version[1:]]), key=lambda v: [int(x) for x in v.split(".")]),
          "kubeadm_timeout": a.kubeadm_timeout, "pod_start_delay": a.pod_start_delay, "cert_days": a.cert_days,
          "apt_download_delay": a.apt_download_delay,
          "nodes": cps + workers, "monitor_ip": f"{net}.200", "empty": a.empty}
    if a.engine_image:
        if not os.path.isfile(a.engine_image):
            raise LabError(f"--engine-image {a.engine_image}: no such file (scripts/image makes it)")
        st["engine_image"] = os.path.abspath(a.engine_image)
    save(st)
    try:
        start(st, cps, workers, version)
    except BaseException:
        for log in sorted(os.listdir(f"{d}/logs")) if os.path.isdir(f"{d}/logs") else []:
            with open(f"{d}/logs/{log}", errors="replace") as f:
                tail = f.readlines()[-5:]
            if tail:
                print(f"--- {log}\n" + "".join(tail), file=sys.stderr, end="")
        down_state(st)
        raise
    print(f"lab up in {time.monotonic() - t0:.1f}s: {len(cps)} control-plane and {len(workers)} worker nodes at {version}"
          + (" (empty: no cluster yet)" if a.empty else ""))
    print_usage(st)
    return 0


def inotify_room(nodes):
    """Each node's kubelet holds an inotify instance; Linux allows 128 per user by default, which a
    lab of 100 nodes and the machine's own users would exhaust (a kubelet then polls). Raised when
    too low, and said."""
    path = "/proc/sys/fs/inotify/max_user_instances"
    try:
        with open(path) as f:
            have = int(f.read())
        need = nodes + 128
        if have < need:
            with open(path, "w") as f:
                f.write(str(need))
            print(f"raised fs.inotify.max_user_instances from {have} to {need} for {nodes} nodes' kubelets", file=sys.stderr)
    except (OSError, ValueError) as e:
        print(f"could not raise fs.inotify.max_user_instances ({e}): kubelets beyond it poll", file=sys.stderr)


def start(st, cps, workers, version):
    d = st["dir"]
    os.makedirs(f"{d}/logs")
    os.makedirs(f"{d}/ssh")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "engine-lab", "-f", f"{d}/ssh/id_ed25519"],
                   check=True)
    shutil.copy(f"{d}/ssh/id_ed25519.pub", f"{d}/ssh/authorized_keys")
    os.chmod(f"{d}/ssh", 0o755)
    os.makedirs(f"{d}/pki/pki")
    # The mirror's tarballs (zlib, which lets go of the GIL) and the nodes' certificates (openssl
    # processes) side by side, on every core: one after the other they were half of `lab up`.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        mirror = pool.submit(build_mirror, st)
        labnodes.make_cas(f"{d}/pki")
        labnodes.write_tools(f"{d}/bin")
        for f in [pool.submit(labnodes.prepare, st, n, cps, f"{d}/pki", version, f"{d}/ssh/authorized_keys")
                  for n in cps + workers]:
            f.result()
        mirror.result()
    # The lab's own admin credentials and the API simulator's serving certificate.
    lead = f"{d}/nodes/{cps[0]['name']}/root/etc/kubernetes"
    certs.new_key(f"{d}/admin.key")
    certs.sign(f"{d}/pki", "ca", "/O=system:masters/CN=lab-admin", "client", f"{d}/admin.key", f"{d}/admin.crt", 365, "")
    certs.kubeconfig(f"{d}/kubeconfig", st["lb"], f"{d}/pki/pki/ca.crt", f"{d}/admin.crt", f"{d}/admin.key", "lab-admin")
    objects = labcluster.empty_objects() if st.get("empty") else labcluster.objects(st["nodes"], version, st["api"][8:])
    with open(f"{d}/state.json", "w") as f:
        json.dump(objects, f)
    fallback = []
    if st.get("empty"):  # served until kubeadm init writes the leader's apiserver certificate
        certs.new_key(f"{d}/apiserver.key")
        certs.sign(f"{d}/pki", "ca", "/CN=kube-apiserver", "apiserver", f"{d}/apiserver.key", f"{d}/apiserver.crt", 365,
                   f"DNS:kubernetes,IP:{cps[0]['ip']},IP:127.0.0.1")
        fallback = ["--fallback-cert", f"{d}/apiserver.crt", "--fallback-key", f"{d}/apiserver.key"]
    # The engine's own service account (deploy/rbac.yaml), for a pod's token: rehearsing the engine in the cluster.
    st["engine_sa_token"] = secrets.token_hex(16)
    image = []
    if st.get("engine_image"):  # the lab's own copy: the pods run what was given at up, whatever happens to the file
        os.makedirs(f"{d}/images", exist_ok=True)
        shutil.copy(st["engine_image"], f"{d}/images/engine-image.tar")
        image = ["--engine-image", f"{d}/images/engine-image.tar"]
    st["sim"] = spawn([sys.executable, "-m", "lab.k8sim.sim", "--host", cps[0]["ip"], *fallback,
                       "--tokens", f"{st['engine_sa_token']}=system:serviceaccount:engine:engine",
                       "--port", "6443", "--lb-port", str(LB_PORT), "--cert", f"{lead}/pki/apiserver.crt", "--key", f"{lead}/pki/apiserver.key",
                       "--ca", f"{d}/pki/pki/ca.crt", "--state", f"{d}/state.json", "--version", version,
                       "--version-node", cps[0]["name"], "--ready-delay", str(REPLACEMENT_READY), "--scheduler", "--pods", f"{d}/pods",
                       *[f"--node-ip={n['name']}={n['ip']}" for n in st["nodes"]], *image,
                       *[f"--node={n['name']}={n['ip']}={d}/nodes/{n['name']}/root/etc/kubernetes" for n in cps]],
                      f"{d}/logs/apiserver.log")
    save(st)
    start_monitoring(st)
    wait(lambda: port_open(cps[0]["ip"], 6443) and port_open(cps[0]["ip"], LB_PORT), "the API simulator")
    with mount_points_lock():  # made here and bound by the nodes before another lab's down looks
        for p in MOUNT_POINTS:
            if not os.path.exists(p):
                os.makedirs(p)
                open(os.path.join(p, MADE_BY_LAB), "w").close()
        for n in st["nodes"]:  # booted side by side: one at a time, a 3+100 lab took a minute to boot
            start_node(st, n)
        for n in st["nodes"]:
            booted(st, n)
    save(st)
    for n in st["nodes"]:
        wait(lambda: port_open(n["ip"], st["ssh_port"]), f"sshd of {n['name']}", 20 + 0.2 * len(st["nodes"]))
    if st.get("empty"):  # nothing runs yet but the nodes' sshd and kubelet, and the monitoring
        wait(lambda: urllib.request.urlopen(st["prometheus_url"] + "/-/ready", timeout=2).status == 200, "Prometheus", 60)
        wait(lambda: port_open(st["monitor_ip"], 8080), "the etcd release mirror", 20)
        write_client_files(st)
        save(st)
        return
    for n in cps:
        wait(lambda: etcd_healthy(st, n), f"etcd on {n['name']}", 60)
    # What kubeadm init left in etcd through the API server (the simulator keeps its own copy).
    labfaults.etcd_call(st, cps[0], "/v3/kv/put", labcluster.etcd_put(labcluster.kubeadm_config(objects)))
    want = {f"{c}-{n['name']}" for n in cps for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")}

    def reported():
        pods = api_get(st, "/api/v1/namespaces/kube-system/pods")["items"]
        ready = {p["metadata"]["name"] for p in pods if p["status"]["conditions"][0]["status"] == "True"}
        nodes = api_get(st, "/api/v1/nodes")["items"]
        beat = all(c.get("lastHeartbeatTime", "") > labcluster.LONG_AGO for nd in nodes for c in nd["status"]["conditions"]
                   if c["type"] == "Ready")
        return want <= ready and beat and len(nodes) == len(st["nodes"])
    wait(reported, "every kubelet to report its node and static pods", 60 + 0.5 * len(st["nodes"]))
    wait(lambda: urllib.request.urlopen(st["prometheus_url"] + "/-/ready", timeout=2).status == 200, "Prometheus", 60)
    wait(lambda: port_open(st["monitor_ip"], 8080), "the etcd release mirror", 20)
    write_client_files(st)
    save(st)


def start_node(st, n):
    d = st["dir"]
    n["anchor"] = spawn(["unshare", "-m", "-u", "--propagation", "private", "/usr/bin/python3",
                         "-m", "lab.node.boot", f"{d}/nodes/{n['name']}", f"{d}/bin"],
                        f"{d}/logs/{n['name']}.log")


def booted(st, n):
    wait(lambda: mnt_ns(n["anchor"]["pid"]) != mnt_ns(os.getpid()) and
         os.readlink(f"/proc/{n['anchor']['pid']}/exe").endswith("sleep"), f"{n['name']} to boot",
         20 + 0.5 * len(st["nodes"]))  # they boot together: the last may come long after the first
    n["mnt_ns"] = mnt_ns(n["anchor"]["pid"])


def start_monitoring(st):
    d, ip = st["dir"], st["monitor_ip"]
    st["pushgateway_url"], st["prometheus_url"] = f"http://{ip}:9091", f"http://{ip}:9090"
    # Debian's Pushgateway persists to /var/lib/prometheus unless told otherwise: the lab keeps its own.
    st["pushgateway"] = spawn(["prometheus-pushgateway", f"--web.listen-address={ip}:9091",
                               f"--persistence.file={d}/pushgateway.data"], f"{d}/logs/pushgateway.log")
    with open(f"{d}/rules.yml", "w") as f:
        f.write(labcluster.PROMETHEUS_RULES)
    with open(f"{d}/prometheus.yml", "w") as f:
        f.write(labcluster.prometheus_config(f"{ip}:9091", f"{d}/rules.yml"))
    st["prometheus"] = spawn(["prometheus", f"--config.file={d}/prometheus.yml", f"--storage.tsdb.path={d}/prometheus",
                              f"--web.listen-address={ip}:9090"], f"{d}/logs/prometheus.log")
    st["mirror_url"] = f"http://{ip}:8080"
    st["mirror"] = spawn([sys.executable, "-m", "http.server", "8080", "--bind", ip, "--directory", f"{d}/mirror"],
                         f"{d}/logs/mirror.log")


def build_mirror(st):
    """The etcd releases and the Kubernetes apt repositories' indexes the monitor host serves."""
    st["etcd_releases"] = labmirror.build(f"{st['dir']}/mirror")
    labmirror.build_k8s_repos(f"{st['dir']}/mirror", st["releases"])


def write_client_files(st):
    d = st["dir"]
    with open(f"{d}/known_hosts", "w") as f:
        for n in st["nodes"]:
            with open(f"{d}/nodes/{n['name']}/ssh_host_ed25519_key.pub") as k:
                t, b = k.read().split()[:2]
            f.write(f"[{n['ip']}]:{st['ssh_port']} {t} {b}\n")
    inv = {"all": {"vars": {"ansible_user": USER, "ansible_port": st["ssh_port"], "ansible_become": True,
                            "ansible_ssh_private_key_file": f"{d}/ssh/id_ed25519",
                            "ansible_ssh_common_args": f"-o UserKnownHostsFile={d}/known_hosts",
                            # the lab's release mirror, in the layout of etcd's GitHub releases
                            "etcd_download_url": labmirror.url(st["mirror_url"]),
                            # pkgs.k8s.io's repositories as the lab serves them (k8s-version-check.lua)
                            "k8s_repo_url": f"{st['mirror_url']}/{labmirror.K8S_REPO}",
                            # lab nodes share loopback: a new etcd listens on the node's address only
                            "etcd_listen_localhost": False,
                            # the lab's monitoring, for doctor.lua's alerts and upgrade gauges
                            "prometheus_url": st["prometheus_url"], "pushgateway_url": st["pushgateway_url"]},
                   "children": {
                       "k8s-cp": {"hosts": {n["name"]: {"ansible_host": n["ip"], "etcd_access_address": n["ip"],
                                                        # lab nodes share loopback: these listen on the node's address
                                                        "kube_scheduler_bind_address": n["ip"],
                                                        "kube_controller_manager_bind_address": n["ip"]} for n in st["nodes"]
                                            if n["role"] == "control-plane"}},
                       "k8s-cp-leader": {"hosts": {n["name"]: {} for n in st["nodes"] if n.get("leader")}},
                       "k8s-worker": {"hosts": {n["name"]: {"ansible_host": n["ip"]} for n in st["nodes"]
                                                if n["role"] == "worker"}},
                       "etcd": {"hosts": {n["name"]: {} for n in st["nodes"] if n["role"] == "control-plane"}}}}}
    from lab import yamltext
    with open(f"{d}/inventory.yml", "w") as f:
        f.write("# Written by `scripts/lab up`: the lab's nodes, as an Ansible inventory.\n")
        yamltext.dump(inv, f)


def print_usage(st):
    d = st["dir"]
    print(f"""
  inventory   {d}/inventory.yml
  kubeconfig  {d}/kubeconfig
  known_hosts {d}/known_hosts
  pushgateway {st['pushgateway_url']}   prometheus {st['prometheus_url']}
  etcd releases {st.get('mirror_url', '-')} ({', '.join(st.get('etcd_releases', [])) or 'none'})

  kubectl --kubeconfig {d}/kubeconfig get nodes
  ssh -i {d}/ssh/id_ed25519 -o UserKnownHostsFile={d}/known_hosts -p {st['ssh_port']} {USER}@{st['nodes'][0]['ip']}
  build/bin/engine run runbooks/k8s-upgrade.lua -i {d}/inventory.yml --kubeconfig {d}/kubeconfig \\
      -e version=1.34.3 -e kind=minor
""")


# --- down and status ----------------------------------------------------------------------------
def reaped(pid):
    """Reaps pid when it is this process's child (a failed `lab up` ends what it started itself:
    unreaped, a killed child would stay a zombie and seem alive)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


def down_state(st):
    for n in st["nodes"]:
        if not n.get("mnt_ns") and alive(n.get("anchor")):
            os.kill(n["anchor"]["pid"], signal.SIGKILL)
    kill_ns(*[n["mnt_ns"] for n in st["nodes"] if n.get("mnt_ns")])
    for part in ("sim", "pushgateway", "prometheus", "mirror"):
        rec = st.get(part)
        if alive(rec):
            # Its process group: the simulator's and the engine pods it runs (lab/k8sim/pods.py).
            try:
                os.killpg(rec["pid"], signal.SIGKILL)
            except ProcessLookupError:  # not a group leader
                os.kill(rec["pid"], signal.SIGKILL)
            wait(lambda: reaped(rec["pid"]) or not alive(rec), f"{part} to exit", 10)
    remove_mount_points()
    shutil.rmtree(st["dir"], ignore_errors=True)


@contextlib.contextmanager
def mount_points_lock():
    """One lab at a time makes, binds or removes the host's mount points: without it a lab coming
    up beside one going down found a mount point there, and the other removed it before the new
    lab's nodes bound it (or both made it, and the second failed)."""
    with open("/run/engine-lab-mounts.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def remove_mount_points():
    """The mount points labs made, once no lab's node binds them (another lab may be up)."""
    with mount_points_lock():
        made = [p for p in MOUNT_POINTS if os.path.exists(os.path.join(p, MADE_BY_LAB))]
        in_use = mounted_anywhere(set(made)) if made else set()
        for p in made:
            if p not in in_use:
                try:
                    os.unlink(os.path.join(p, MADE_BY_LAB))
                    os.rmdir(p)
                except OSError:  # something else was put there since: left as it is
                    pass


def down(a):
    st = load(os.path.abspath(a.dir))
    if not st:
        print(f"no lab in {a.dir}")
        return 0
    down_state(st)
    print(f"lab in {st['dir']} is down")
    return 0


def status(a):
    st = load(os.path.abspath(a.dir))
    if not st:
        print(f"no lab in {a.dir}")
        return 3
    bad = healthy(st)
    nodes = {}
    try:
        nodes = {x["metadata"]["name"]: x for x in api_get(st, "/api/v1/nodes")["items"]}
        server = api_get(st, "/version")["gitVersion"]
    except Exception as e:
        server = f"unreachable ({e})"
    lb = st.get("lb", st["api"]) + (" (cut: api-unreachable)" if labfaults.api_cut(st) else "")
    print(f"lab {st['dir']}: API {lb}, nodes' {st['api']}, server {server}")
    print(f"{'NODE':<6} {'ROLE':<14} {'ADDRESS':<15} {'STATUS':<9} {'KUBELET':<9} FAULTS")
    for n in st["nodes"]:
        obj = nodes.get(n["name"], {})
        ready = [c["status"] for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
        state = ("Ready" if ready == ["True"] else "NotReady") if alive(n.get("anchor")) else "down"
        if obj.get("spec", {}).get("unschedulable"):
            state += ",SchedulingDisabled"
        faults = labfaults.active(st, n)
        print(f"{n['name']:<6} {n['role']:<14} {n['ip']:<15} {state:<9} "
              f"{obj.get('status', {}).get('nodeInfo', {}).get('kubeletVersion', '?'):<9} {','.join(faults) or '-'}")
    for b in bad:
        print(f"problem: {b}")
    return 1 if bad else 0


def fault(a, on):
    st = load(os.path.abspath(a.dir))
    if not st:
        raise LabError(f"no lab in {a.dir}: run `scripts/lab up` first")
    n = next((x for x in st["nodes"] if x["name"] == a.node), None)
    if n is None:
        raise LabError(f"no node {a.node!r} in the lab (nodes: {', '.join(x['name'] for x in st['nodes'])})")
    if getattr(a, "days", None) is not None and a.kind not in ("certs-expiring", "ca-expiring"):
        raise LabError("--days goes with certs-expiring and ca-expiring only")
    msg = labfaults.apply(st, n, a.kind, on, getattr(a, "days", None))
    save(st)
    print(msg)
    return 0


def user_kubeconfig(a):
    """A kubeconfig for the lab's API as USER (a client certificate from the lab's CA, its groups as
    O=), for rehearsing an identity's rights: `lab kubeconfig system:serviceaccount:engine:engine`
    with deploy/rbac.yaml applied is the engine's own account in the cluster."""
    st = load(os.path.abspath(a.dir))
    if not st:
        raise LabError(f"no lab in {a.dir}: run `scripts/lab up` first")
    if not a.user or any(c in a.user + "".join(a.group) for c in "/=,+\\\"<>;\n"):
        raise LabError(f"user {a.user!r} and groups must be plain names (no / = , + \\ \" < > ;)")
    d, out = st["dir"], os.path.abspath(a.out)
    key = out + ".key"
    certs.new_key(key)
    subj = "".join(f"/O={g}" for g in a.group) + f"/CN={a.user}"
    certs.sign(f"{d}/pki", "ca", subj, "client", key, out + ".crt", 365, "")
    certs.kubeconfig(out, st.get("lb", st["api"]), f"{d}/pki/pki/ca.crt", out + ".crt", key, a.user)
    for f in (key, out + ".crt"):
        os.unlink(f)
    print(f"{out}: {a.user}" + (f" in {', '.join(a.group)}" if a.group else ""))
    return 0


def main():
    ap = argparse.ArgumentParser(prog="scripts/lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="start the lab (idempotent)")
    u.add_argument("--control-planes", type=int, default=3)
    u.add_argument("--workers", type=int, default=3)
    u.add_argument("--version", default="1.33.1")
    u.add_argument("--subnet", default="127.0.10", help="the lab's loopback /24 (control planes from .1, workers from .101, .200 the monitoring)")
    u.add_argument("--ssh-port", type=int, default=2222)
    u.add_argument("--kubeadm-timeout", type=float, default=300.0,
                   help="kubeadm's per-component wait in `upgrade apply|node` (kubeadm's own is 5m)")
    u.add_argument("--pod-start-delay", type=float, default=1.0, help="seconds a static pod takes to become ready")
    u.add_argument("--apt-download-delay", type=float, default=0.0,
                   help="seconds apt takes to fetch each package not in the node's /var/cache/apt/archives (a mirror's speed)")
    u.add_argument("--cert-days", type=int, default=365)
    u.add_argument("--engine-image", help="an OCI archive from scripts/image: the engine's pods run it (default: the build in place)")
    u.add_argument("--empty", action="store_true",
                   help="nodes with no cluster at all (packages installed, the leader holding the cluster CA), for "
                        "runbooks/etcd-bootstrap.lua")
    for name in ("down", "status"):
        sub.add_parser(name)
    for name in ("fault", "clear"):
        f = sub.add_parser(name)
        f.add_argument("node")
        f.add_argument("kind", choices=labfaults.KINDS)
        if name == "fault":
            f.add_argument("--days", type=int, help="certs-expiring, ca-expiring: the certificates expire in this many days")
    k = sub.add_parser("kubeconfig")
    k.add_argument("user")
    k.add_argument("--group", action="append", default=[])
    k.add_argument("--out", required=True)
    for p in sub.choices.values():
        p.add_argument("--dir", default=DEFAULT_DIR)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("scripts/lab: needs root (namespaces, bind mounts)", file=sys.stderr)
        return 2
    if a.cmd == "up" and not (1 <= a.control_planes <= 9 and 0 <= a.workers <= len(WORKER_HOSTS)):
        print(f"scripts/lab up: --control-planes must be 1..9 and --workers 0..{len(WORKER_HOSTS)}"
              " (the addresses of one /24 beside the monitoring's .200)", file=sys.stderr)
        return 2
    try:
        return {"up": up, "down": down, "status": status, "fault": lambda a: fault(a, True),
                "clear": lambda a: fault(a, False), "kubeconfig": user_kubeconfig}[a.cmd](a)
    except LabError as e:
        print(f"scripts/lab {a.cmd}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
