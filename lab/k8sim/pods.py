"""The lab's container runtime for the engine's own pods (rehearsing the engine as a Job, issue 22).

A pod whose one container names an `engine:TAG` image runs the engine built here, as a process in a
mount namespace of its own, which is what a container is to the engine: the service account's token
and the cluster CA at /var/run/secrets/kubernetes.io/serviceaccount, each volume (configMap, secret,
emptyDir; persistentVolumeClaim: a directory of the claim's own, which outlives the pod) at its
mountPath, the image's runbooks at /usr/share/engine/runbooks, the downward API's
values in its environment, KUBERNETES_SERVICE_HOST/PORT naming the cluster's API (the lab's load
balancer). The host keeps nothing: each path is made inside an overlay of its nearest existing
parent, on a tmpfs of the pod's own, and the namespace goes with the process.

With an image (`lab up --engine-image FILE`, an OCI archive from scripts/image), each pod runs
that image instead, as a container runtime would: its layer unpacked into a root of the pod's own,
/proc, /dev, the node's /etc/resolv.conf and /etc/hosts and the same volumes mounted into it, the
image's entrypoint, environment and working directory, chroot. The pod's securityContext holds there
as a kubelet holds it: the process runs as runAsUser/runAsGroup (else the image's User), with
fsGroup as a supplementary group owning its volumes' files (group-readable, as the kubelet makes a
0400 Secret 0440); runAsNonRoot refuses to start a container that would run as root (the pod stays
waiting, saying so); readOnlyRootFilesystem mounts the image's root read-only, its volumes as they
are. Without an image, pods run as the lab's own user and only the volumes are given.

The lifecycle is the kubelet's: the pod Running when its process starts; Succeeded or Failed with
the exit code when it ends; on deletion (an eviction, say) SIGTERM, SIGKILL once the grace period
is over, the object removed when the process is gone. Every other pod stays the simulator's
(Running at once, no process). The processes stay in the simulator's process group, so `lab down`
ends them with it. Each pod's output is in PODS_DIR/NAMESPACE/NAME/log and served as pods/log."""
import base64
import json
import os
import secrets
import shlex
import signal
import subprocess
import tarfile
import threading
import time

from lab.k8sim.store import ApiError, now

IMAGE = "engine:"
SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
RUNBOOKS_PATH = "/usr/share/engine/runbooks"


def owns(pod):
    """True for a pod this runtime runs: one container, of the engine's image."""
    containers = (pod.get("spec") or {}).get("containers") or []
    return len(containers) == 1 and str(containers[0].get("image", "")).startswith(IMAGE)


def terminal(pod):
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Waiting(Exception):
    """What a pod waits for before its process can start (a ConfigMap not there yet, say)."""


class Runtime:
    def __init__(self, store, workdir, api, ca, tokens, engine, stdlib, runbooks, node_ips, image=None):
        self.store = store
        self.workdir = workdir
        self.api = api  # (host, port) the pods are told: KUBERNETES_SERVICE_HOST/PORT
        self.ca = ca
        self.tokens = tokens  # the simulator's token → user map: a pod's token is added to it
        self.engine, self.stdlib, self.runbooks = engine, stdlib, runbooks
        self.node_ips = node_ips
        self.image = image  # an OCI archive: the pods run it (else the engine built here, in place)
        self.image_root = self.image_config = None
        self.procs = {}  # pod uid → Popen
        self.waiting = {}  # pod uid → why it has not started
        self.wake = threading.Event()
        threading.Thread(target=self.retry_loop, daemon=True).start()

    # --- called by the store, its lock held ------------------------------------------------
    def on_pod(self, pod, deleted):
        uid = pod["metadata"]["uid"]
        if not owns(pod):
            return
        p = self.procs.get(uid)
        if deleted:
            if p and p.poll() is None:
                p.kill()
            self.waiting.pop(uid, None)
            return
        if pod["metadata"].get("deletionTimestamp"):
            self.waiting.pop(uid, None)
            if p is None or p.poll() is not None:  # nothing runs: the object goes now
                self.store.later(0, lambda: self.gone(pod))
            elif not getattr(p, "terminating", False):
                p.terminating = True
                os.kill(p.pid, signal.SIGTERM)
                grace = pod["metadata"].get("deletionGracePeriodSeconds", 30) or 0
                self.store.later(grace * self.store.grace_scale, lambda: p.poll() is None and p.kill())
            return
        if (pod.get("spec") or {}).get("nodeName") and p is None and not terminal(pod):
            self.start(pod)

    def handles_delete(self, pod):
        """The store leaves the end of this pod's deletion to the runtime (its process exits first)."""
        return owns(pod) and (pod.get("spec") or {}).get("nodeName") is not None

    # --- starting ---------------------------------------------------------------------------
    def start(self, pod):
        uid, ns, name = pod["metadata"]["uid"], pod["metadata"]["namespace"], pod["metadata"]["name"]
        try:
            cmd, env, d = self.prepare(pod)
        except Waiting as e:
            if self.waiting.get(uid) != str(e):
                self.waiting[uid] = str(e)
                self.set_status(pod, {"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
                    "containerStatuses": [{"name": self.container(pod)["name"], "ready": False, "restartCount": 0,
                                           "state": {"waiting": {"reason": "ContainerCreating", "message": str(e)}}}]})
            self.wake.set()
            return
        self.waiting.pop(uid, None)
        log = open(os.path.join(d, "log"), "ab")
        p = subprocess.Popen(cmd, env=env, cwd=os.path.join(d, "home"), stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT)
        log.close()
        self.procs[uid] = p
        started = now()
        node = pod["spec"]["nodeName"]
        self.set_status(pod, {"phase": "Running", "startTime": started, "hostIP": self.node_ips.get(node, ""),
                              "podIP": self.node_ips.get(node, ""),
                              "conditions": [{"type": t, "status": "True"} for t in
                                             ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                              "containerStatuses": [{"name": self.container(pod)["name"], "ready": True, "restartCount": 0,
                                                     "started": True, "image": self.container(pod)["image"],
                                                     "state": {"running": {"startedAt": started}}}]})
        threading.Thread(target=self.wait_exit, args=(p, uid, ns, name, started), daemon=True).start()

    @staticmethod
    def container(pod):
        return pod["spec"]["containers"][0]

    def prepare(self, pod):
        """→ (argv, env, pod dir): the volumes written out, the mounts the namespace makes. Raises Waiting."""
        meta, spec = pod["metadata"], pod["spec"]
        ns, name = meta["namespace"], meta["name"]
        c = self.container(pod)
        d = os.path.join(self.workdir, ns, name)
        vols = {}
        for v in spec.get("volumes") or []:
            vols[v["name"]] = self.volume(ns, d, v)
        mounts = []
        for m in c.get("volumeMounts") or []:
            if m["name"] not in vols:
                raise Waiting(f'volumeMount "{m["name"]}" names no volume of the pod')
            src = vols[m["name"]]
            if m.get("subPath"):
                src = os.path.join(src, m["subPath"])
            mounts.append((m["mountPath"], src, bool(m.get("readOnly"))))
        if spec.get("automountServiceAccountToken", True):
            mounts.append((SA_PATH, self.service_account(ns, d, spec.get("serviceAccountName") or "default"), True))
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME": name,
               "HOME": os.path.join(d, "home"), "KUBERNETES_SERVICE_HOST": self.api[0],
               "KUBERNETES_SERVICE_PORT": str(self.api[1])}
        if self.image:
            config = self.unpacked()
            env = dict(e.split("=", 1) for e in config.get("Env") or [])
            env.update(HOSTNAME=name, KUBERNETES_SERVICE_HOST=self.api[0], KUBERNETES_SERVICE_PORT=str(self.api[1]))
        else:
            mounts.append((RUNBOOKS_PATH, self.runbooks, True))  # what the image holds
            if self.stdlib:
                env["ENGINE_STDLIB"] = self.stdlib
        for e in c.get("env") or []:
            env[e["name"]] = self.env_value(pod, e)
        os.makedirs(os.path.join(d, "home"), exist_ok=True)
        os.makedirs(os.path.join(d, "ovl"), exist_ok=True)
        # The container's entrypoint is the engine; `command: [engine, ...]` names it too.
        args = list(c.get("args") or [])
        command = list(c.get("command") or [])
        if command and os.path.basename(command[0]) == "engine":
            args = command[1:] + args
        elif command:
            raise Waiting(f"command {command[0]!r}: the lab's engine image runs only the engine")
        if self.image:
            uid, gid, fs_group, read_only = self.identity(pod, c, config)
            for path in list(vols.values()) + [src for target, src, _ in mounts if target == SA_PATH]:
                self.own(path, uid, fs_group)
            root = os.path.join(d, "rootfs")
            if not os.path.isdir(root):  # cp -a: the image's owners too (its user's state directory)
                subprocess.run(["cp", "-a", self.image_root, root], check=True)
            script = self.script_image(root, mounts, config.get("WorkingDir") or "/", read_only)
            user = [f"--userspec={uid}:{gid}"] + ([f"--groups={fs_group}"] if fs_group is not None else [])
            return (["unshare", "--mount", "--propagation", "private", "sh", "-c", script, name, *user,
                     *(config.get("Entrypoint") or ["/usr/bin/engine"]), *args], env, d)
        return (["unshare", "--mount", "--propagation", "private", "sh", "-c", self.script(d, mounts), name,
                 self.engine, *args], env, d)

    def unpacked(self):
        """The image's root (unpacked once, copied for each pod) and its config."""
        if self.image_root is None:
            root = os.path.join(self.workdir, ".image", "rootfs")
            with tarfile.open(self.image) as t:
                def read(digest):
                    return t.extractfile("blobs/sha256/" + digest.split(":", 1)[1]).read()
                index = json.loads(t.extractfile("index.json").read())
                manifest = json.loads(read(index["manifests"][0]["digest"]))
                self.image_config = json.loads(read(manifest["config"]["digest"])).get("config") or {}
                os.makedirs(root)
                for layer in manifest["layers"]:
                    blob = t.extractfile("blobs/sha256/" + layer["digest"].split(":", 1)[1])
                    with tarfile.open(fileobj=blob, mode="r|*") as lt:
                        try:
                            lt.extractall(root, filter="tar")
                        except TypeError:  # a Python without extraction filters (before 3.11.4)
                            lt.extractall(root)
            self.image_root = root
        return self.image_config

    @staticmethod
    def identity(pod, c, config):
        """→ (uid, gid, fsGroup or None, read-only root) from the container's and the pod's
        securityContext and the image's User. Raises Waiting where the kubelet would not start it."""
        psc, csc = pod["spec"].get("securityContext") or {}, c.get("securityContext") or {}
        user = str(config.get("User") or "0")
        try:
            image_uid, _, image_gid = user.partition(":")
            image_uid, image_gid = int(image_uid), int(image_gid or 0)
        except ValueError:
            raise Waiting(f"the image's User {user!r} is not numeric: the lab's runtime reads no passwd")

        def field(name, default=None):
            return csc.get(name, psc.get(name, default))
        uid = int(field("runAsUser", image_uid))
        gid = int(field("runAsGroup", image_gid))
        if field("runAsNonRoot") and uid == 0:
            raise Waiting(f'container has runAsNonRoot and image will run as root (container: {c["name"]})')
        fs_group = psc.get("fsGroup")
        return uid, gid, None if fs_group is None else int(fs_group), bool(csc.get("readOnlyRootFilesystem"))

    @staticmethod
    def own(path, uid, fs_group):
        """A volume as the kubelet leaves it for the pod's user: with fsGroup, every file and
        directory in that group and group-readable (a 0400 Secret becomes 0440); without, the
        service account's token owned by the user it runs as (else only root could read it)."""
        for dirpath, dirs, files in os.walk(path):
            for p in [dirpath] + [os.path.join(dirpath, f) for f in files]:
                if fs_group is not None:
                    os.chown(p, -1, fs_group)
                    os.chmod(p, os.stat(p).st_mode & 0o7777 | (0o2550 if p == dirpath else 0o440))
                elif os.path.basename(p) == "token" and dirpath == path:
                    os.chown(p, uid, -1)

    @staticmethod
    def script_image(root, mounts, workdir, read_only=False):
        """The shell run in the new mount namespace: the pod's root made a container's, then chroot
        (as the pod's user: chroot's --userspec and --groups come before the command)."""
        q = shlex.quote
        r = lambda p: q(os.path.join(root, p.lstrip("/")))  # noqa: E731
        # The process's environment is the image's (PATH=/usr/bin, say): the host's tools by their path.
        lines = ["set -e", 'image_path="$PATH"', "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        # Every mount point made first: a read-only root takes no new one after.
        lines += [f"mkdir -p {r(target)}" for target, _, _ in mounts] + [f"mkdir -p {r(workdir)}"]
        lines += [f"touch {r(f)}" for f in ("/etc/resolv.conf", "/etc/hosts") if os.path.exists(f)]
        if read_only:
            lines += [f"mount --bind {q(root)} {q(root)}", f"mount -o remount,bind,ro {q(root)}"]
        lines += [f"mount -t proc proc {r('/proc')}", f"mount --rbind /dev {r('/dev')}"]
        lines += [f"mount --bind {q(f)} {r(f)}" for f in ("/etc/resolv.conf", "/etc/hosts") if os.path.exists(f)]
        for target, src, ro in mounts:
            lines.append(f"mount --bind {q(src)} {r(target)}")
            if ro:
                lines.append(f"mount -o remount,bind,ro {r(target)}")
        lines += [f"cd {r(workdir)}", 'PATH="$image_path"', 'spec="$1" && shift', 'case "$1" in --groups=*) groups="$1"; shift;; *) groups=;; esac',
                  f'exec /usr/sbin/chroot "$spec" ${{groups:+"$groups"}} {q(root)} "$@"']
        return "\n".join(lines)

    def volume(self, ns, d, v):
        path = os.path.join(d, "volumes", v["name"])
        os.makedirs(path, exist_ok=True)
        if "emptyDir" in v:
            os.chmod(path, 0o777)  # as the kubelet makes one: any user of the pod writes there
            return path
        if "persistentVolumeClaim" in v:  # the claim's own directory: it outlives the pod
            claim = v["persistentVolumeClaim"]["claimName"]
            try:
                self.store.get("", "persistentvolumeclaims", ns, claim)
            except ApiError:
                raise Waiting(f'persistentvolumeclaim "{claim}" not found (volume "{v["name"]}")')
            path = os.path.join(self.workdir, ".claims", ns, claim)
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o777)
            return path
        for kind, key, plural in (("configMap", "name", "configmaps"), ("secret", "secretName", "secrets")):
            if kind in v:
                src = v[kind]
                try:
                    obj = self.store.get("", plural, ns, src[key])
                except ApiError:
                    raise Waiting(f'{plural[:-1]} "{src[key]}" not found (volume "{v["name"]}")')
                mode = src.get("defaultMode", 0o644)
                files = {k: (base64.b64decode(x) if kind == "secret" else x.encode()) for k, x in (obj.get("data") or {}).items()}
                files.update({k: base64.b64decode(x) for k, x in (obj.get("binaryData") or {}).items()})
                for item in src.get("items") or []:
                    files[item["path"]] = files.pop(item["key"])
                for f, data in files.items():
                    self.write(os.path.join(path, f), data, mode)
                return path
        raise Waiting(f'volume "{v["name"]}": the lab mounts configMap, secret, emptyDir and persistentVolumeClaim volumes only')

    def service_account(self, ns, d, sa):
        """The projected token a pod gets: a new token the simulator knows as this service account."""
        path = os.path.join(d, "serviceaccount")
        if not os.path.exists(os.path.join(path, "token")):
            token = secrets.token_hex(16)
            self.tokens[token] = f"system:serviceaccount:{ns}:{sa}"
            with open(self.ca, "rb") as f:
                ca = f.read()
            self.write(os.path.join(path, "ca.crt"), ca, 0o644)
            self.write(os.path.join(path, "namespace"), ns.encode(), 0o644)
            self.write(os.path.join(path, "token"), token.encode(), 0o600)
        return path

    @staticmethod
    def write(path, data, mode):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path + ".tmp", mode)
        os.replace(path + ".tmp", path)

    def env_value(self, pod, e):
        if "value" in e:
            return str(e["value"])
        src = e.get("valueFrom") or {}
        if "fieldRef" in src:
            field = src["fieldRef"].get("fieldPath", "")
            values = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": pod["metadata"]["namespace"],
                      "metadata.uid": pod["metadata"]["uid"], "spec.nodeName": pod["spec"].get("nodeName", ""),
                      "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
                      "status.hostIP": self.node_ips.get(pod["spec"].get("nodeName"), ""),
                      "status.podIP": self.node_ips.get(pod["spec"].get("nodeName"), "")}
            if field not in values:
                raise Waiting(f'env {e["name"]}: fieldRef {field!r} is not one the lab gives')
            return values[field]
        for kind, plural in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
            if kind in src:
                ref = src[kind]
                try:
                    data = self.store.get("", plural, pod["metadata"]["namespace"], ref["name"]).get("data") or {}
                except ApiError:
                    raise Waiting(f'env {e["name"]}: {plural[:-1]} "{ref["name"]}" not found')
                if ref["key"] not in data:
                    raise Waiting(f'env {e["name"]}: no key "{ref["key"]}" in {plural[:-1]} "{ref["name"]}"')
                v = data[ref["key"]]
                return base64.b64decode(v).decode() if plural == "secrets" else v
        raise Waiting(f'env {e["name"]}: no value the lab understands')

    @staticmethod
    def script(d, mounts):
        """The shell run in the new mount namespace: overlays where a path must be made, then binds."""
        q = shlex.quote
        lines = ["set -e", f"mount -t tmpfs -o mode=0700 pod {q(os.path.join(d, 'ovl'))}"]
        overlaid = []
        plans = []
        for target, src, ro in mounts:
            parent = target
            while not os.path.exists(parent):
                parent = os.path.dirname(parent)
            real = os.path.realpath(parent)
            rest = os.path.relpath(target, parent)
            dest = real if rest == "." else os.path.join(real, rest)
            if dest != real and real not in overlaid:
                overlaid.append(real)
            plans.append((dest, src, ro))
        for i, real in enumerate(sorted(overlaid, key=len)):
            up, work = os.path.join(d, "ovl", f"{i}-up"), os.path.join(d, "ovl", f"{i}-work")
            lines.append(f"mkdir {q(up)} {q(work)}")
            lines.append(f"mount -t overlay pod -o lowerdir={q(real)},upperdir={q(up)},workdir={q(work)} {q(real)}")
        for dest, src, ro in plans:
            lines.append(f"mkdir -p {q(dest)}")
            lines.append(f"mount --bind {q(src)} {q(dest)}")
            if ro:
                lines.append(f"mount -o remount,bind,ro {q(dest)}")
        lines.append('exec "$@"')
        return "\n".join(lines)

    # --- ending -----------------------------------------------------------------------------
    def wait_exit(self, p, uid, ns, name, started):
        rc = p.wait()
        code = rc if rc >= 0 else 128 - rc
        with self.store.lock:
            pod = self.store.objects.get(("", "pods", ns, name))
            if not pod or pod["metadata"]["uid"] != uid:
                return
            conds = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "DisruptionTarget"]
            self.set_status(pod, dict(pod.get("status") or {}, phase="Succeeded" if code == 0 else "Failed",
                                      conditions=conds + [{"type": "Ready", "status": "False"}],
                                      containerStatuses=[{"name": self.container(pod)["name"], "ready": False,
                                                          "restartCount": 0, "image": self.container(pod)["image"],
                                                          "state": {"terminated": {
                                                              "exitCode": code, "startedAt": started, "finishedAt": now(),
                                                              "reason": "Completed" if code == 0 else "Error"}}}]))
            if pod["metadata"].get("deletionTimestamp"):
                self.gone(pod)

    def gone(self, pod):
        cur = self.store.objects.get(("", "pods", pod["metadata"]["namespace"], pod["metadata"]["name"]))
        if cur is not None and cur["metadata"]["uid"] == pod["metadata"]["uid"]:
            self.store.remove("", "pods", pod["metadata"]["namespace"], pod["metadata"]["name"])

    def set_status(self, pod, status):
        pod["status"] = status
        pod["metadata"]["resourceVersion"] = self.store.next_rv()
        self.store.record("MODIFIED", "", "pods", pod)
        self.store.after_change("", "pods", pod)

    def log_of(self, ns, name):
        try:
            with open(os.path.join(self.workdir, ns, name, "log"), "rb") as f:
                return f.read()
        except OSError:
            return None

    def retry_loop(self):
        """Pods waiting for a ConfigMap or Secret are tried again each second, as the kubelet does."""
        while True:
            self.wake.wait()
            time.sleep(1.0)
            with self.store.lock:
                if not self.waiting:
                    self.wake.clear()
                    continue
                for uid in list(self.waiting):
                    pod = next((p for (g, pl, _, _), p in self.store.objects.items()
                                if pl == "pods" and p["metadata"]["uid"] == uid), None)
                    if pod is None or pod["metadata"].get("deletionTimestamp"):
                        self.waiting.pop(uid, None)
                    elif uid not in self.procs:
                        self.start(pod)
