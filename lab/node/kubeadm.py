"""kubeadm for a lab node: the subcommands runbooks use, with kubeadm's arguments, output shape and
exit codes. `upgrade apply` and `upgrade node` rewrite the control-plane manifests and wait for the
simulated kubelet to run them, with kubeadm's per-component timeout and its rollback."""
import os
import sys
import time

from lab.node.common import (CONTROL_PLANE, MANIFESTS, PODS, api, cluster_config, die, disk, disk_free, file_hash,
                         images_for, minor, node, pkg_version, read_json, save_disk, vtuple, wait_until)

IMAGE_SIZE = 300 << 20


def norm(v):
    return "v" + v.lstrip("v")


def opt(args, name, default=None):
    """--name=value or --name value; removes it from args."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            v = args[i + 1]
            del args[i:i + 2]
            return v
        if a.startswith(name + "="):
            del args[i]
            return a.split("=", 1)[1]
    return default


def flag(args, *names):
    hit = any(a in names for a in args)
    args[:] = [a for a in args if a not in names]
    return hit


def is_control_plane():
    return os.path.exists(f"{MANIFESTS}/kube-apiserver.yaml") or os.path.exists("/etc/kubernetes/admin.conf")


def version(args):
    v = norm(pkg_version("kubeadm"))
    out = opt(args, "-o") or opt(args, "--output")
    if out == "short":
        print(v)
    elif out == "json":
        print('{"clientVersion": {"major": "%s", "minor": "%s", "gitVersion": "%s"}}' % (*v[1:].split(".")[:2], v))
    else:
        print(f'kubeadm version: &version.Info{{Major:"{v[1:].split(".")[0]}", Minor:"{v.split(".")[1]}", '
              f'GitVersion:"{v}", GitTreeState:"clean", GoVersion:"go1.24", Compiler:"gc", Platform:"linux/amd64"}}')


def plan(args):
    n = node()
    if not is_control_plane():
        die("[upgrade/plan] FATAL: this command must run on a control-plane node (no /etc/kubernetes/admin.conf)")
    _, cc = cluster_config()
    cur = norm(cc["kubernetesVersion"])
    kv = norm(pkg_version("kubeadm"))
    print("[preflight] Running pre-flight checks.\n[upgrade/config] Reading configuration from the \"kubeadm-config\" "
          "ConfigMap in namespace \"kube-system\"...\n[upgrade] Running cluster health checks\n"
          "[upgrade] Fetching available versions to upgrade to")
    releases = sorted((norm(v) for v in n["releases"]), key=vtuple)
    want = norm(args[0]) if args else None
    series = [v for v in releases if minor(v) == minor(cur) and vtuple(v) > vtuple(cur)]
    stable = [v for v in releases if vtuple(v) > vtuple(cur) and vtuple(v)[1] <= vtuple(cur)[1] + 1]
    print(f"[upgrade/versions] Cluster version: {cur}\n[upgrade/versions] kubeadm version: {kv}")
    targets = []
    if want:
        targets = [("Upgrade to the requested version", want)] if vtuple(want) > vtuple(cur) else []
    else:
        if series:
            targets.append((f"Upgrade to the latest version in the v{minor(cur)} series", series[-1]))
        if stable and stable[-1] not in [t for _, t in targets]:
            targets.append(("Upgrade to the latest stable version", stable[-1]))
    if not targets:
        print("\nAwesome, you're up-to-date! Enjoy!")
        return 0
    pods = api("GET", "/api/v1/namespaces/kube-system/pods?labelSelector=tier%3Dcontrol-plane")["items"]
    nodes = api("GET", "/api/v1/nodes")["items"]
    for title, target in targets:
        print("\n" + "_" * 69 + "\n\nComponents that must be upgraded manually after you have upgraded the control plane "
              "with 'kubeadm upgrade apply':\nCOMPONENT   NODE      CURRENT   TARGET")
        for nd in nodes:
            print(f"kubelet     {nd['metadata']['name']:<9} {nd['status']['nodeInfo']['kubeletVersion']:<9} {target}")
        print(f"\n{title}:\n\nCOMPONENT                 NODE      CURRENT    TARGET")
        for p in sorted(pods, key=lambda p: p["metadata"]["name"]):
            comp = p["metadata"]["labels"].get("component")
            cimg = p["spec"]["containers"][0]["image"].rsplit(":", 1)[-1]
            tgt = images_for(target)[comp].rsplit(":", 1)[-1] if comp in images_for(target) else target
            print(f"{comp:<25} {p['spec']['nodeName']:<9} {cimg:<10} {tgt}")
        print(f"\nYou can now apply the upgrade by executing the following command:\n\n\tkubeadm upgrade apply {target}\n")
        if vtuple(target) > vtuple(kv):
            print(f"Note: Before you can perform this upgrade, you have to update kubeadm to {target}.\n")
    print("_" * 69)
    return 0


def static_pod_hash(component):
    return (read_json(PODS, {}).get(component) or {})


def go_duration(s, where):
    """Seconds of a Go duration ("5m0s", "90s", "1h"), as kubeadm's config fields take them."""
    import re
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", str(s))
    if not parts or "".join(a + b for a, b in parts) != str(s):
        die(f"{where}: time: invalid duration \"{s}\"")
    return sum(float(a) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[b] for a, b in parts)


def upgrade_timeout(args):
    """kubeadm's wait for each upgraded static pod: the UpgradeConfiguration's timeouts.upgradeManifests
    (kubeadm.k8s.io/v1beta4, kubeadm 1.31+) from --config, else kubeadm's fixed default, which the
    lab sets with `lab up --kubeadm-timeout` (5 minutes in kubeadm; seed 000 ran into it)."""
    path = opt(args, "--config")
    if path:
        cfg = read_config(path).get("UpgradeConfiguration")
        if cfg is None:
            die(f"{path}: no UpgradeConfiguration in the file")
        t = (cfg.get("timeouts") or {}).get("upgradeManifests")
        if t is not None:
            return go_duration(t, "timeouts.upgradeManifests")
    return float(node().get("kubeadm_timeout", 300))


def upgrade_static_pods(target, etcd=True, timeout=None):
    # Imported here, not above: the YAML writer and shutil are a large part of this program's
    # start-up, and `kubeadm version` (asked before every upgrade) needs neither.
    import shutil
    from lab.node.manifests import external_etcd, render
    n = node()
    _, cc = cluster_config()
    if external_etcd(cc):
        etcd = False  # kubeadm leaves an external etcd alone
        print("[upgrade/etcd] External etcd: skipping the etcd upgrade")
    timeout = float(n.get("kubeadm_timeout", 300)) if timeout is None else timeout
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
    backup = f"/etc/kubernetes/tmp/kubeadm-backup-manifests-{stamp}"
    os.makedirs(backup, exist_ok=True)
    print(f"[upgrade/staticpods] Writing new Static Pod manifests to \"/etc/kubernetes/tmp/kubeadm-upgraded-manifests-{stamp}\"")
    changed = []
    for c in (["etcd"] if etcd else []) + list(CONTROL_PLANE):
        path = f"{MANIFESTS}/{c}.yaml"
        try:
            with open(path) as f:
                old = f.read()
        except OSError:
            old = None
        new = render(c, n["manifest_cfg"], target, cc)
        if old == new:
            print(f"[upgrade/staticpods] Current and new manifests of {c} are equal, skipping upgrade")
            continue
        if old is not None:
            shutil.copy2(path, f"{backup}/{c}.yaml")
        print(f"[upgrade/staticpods] Moving new manifest to \"{path}\" and backing up old manifest to "
              f"\"{backup}/{c}.yaml\"\n[upgrade/staticpods] Waiting for the kubelet to restart the component\n"
              f"[upgrade/staticpods] This can take up to {int(timeout // 60)}m{int(timeout % 60)}s", flush=True)
        tmp = f"/etc/kubernetes/tmp/{c}.yaml.new"
        with open(tmp, "w") as f:
            f.write(new)
        os.replace(tmp, path)
        changed.append(c)
        want = file_hash(new.encode())
        # Asked again as the kubelet rewrites its pods file (inotify on its directory; every 0.5 s
        # at the latest): the lab's kubeadm adds nothing to the pods' own start delays, which are
        # what bench/upgrade's floor counts.
        ok = wait_until(lambda: static_pod_hash(c).get("hash") == want and static_pod_hash(c).get("ready"), timeout, 0.5,
                        dirs=(os.path.dirname(PODS),))
        if not ok:
            for r in changed:  # kubeadm puts every manifest it changed back, each in one rename
                if os.path.exists(f"{backup}/{r}.yaml"):
                    # (copied in place, the kubelet, woken by inotify, would read a half-written
                    # manifest, drop the pod and start it again, fault or not)
                    shutil.copy2(f"{backup}/{r}.yaml", f"/etc/kubernetes/tmp/{r}.yaml.restore")
                    os.replace(f"/etc/kubernetes/tmp/{r}.yaml.restore", f"{MANIFESTS}/{r}.yaml")
            print(f"[upgrade/apply] FATAL: fatal error when trying to upgrade the control plane: couldn't upgrade "
                  f"control plane. kubeadm has tried to recover everything into the earlier state. Errors faced: "
                  f"static Pod hash for component {c} on Node {n['name']} did not change after "
                  f"{int(timeout // 60)}m{int(timeout % 60)}s: timed out waiting for the condition", file=sys.stderr)
            sys.exit(1)
        print(f"[apiclient] Found 1 Pods for label selector component={c}\n"
              f"[upgrade/staticpods] Component \"{c}\" upgraded successfully!", flush=True)


def check_kubeadm(target):
    kv = norm(pkg_version("kubeadm"))
    if vtuple(target) > vtuple(kv):
        die(f"[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n\t- Specified version "
            f"to upgrade to \"{target}\" is higher than the kubeadm version \"{kv}\". Upgrade kubeadm first using the "
            "tool you used to install kubeadm\n\nCan be bypassed if you pass the --force flag")


def apply(args):
    yes = flag(args, "-y", "--yes")
    force = flag(args, "-f", "--force")
    etcd = (opt(args, "--etcd-upgrade", "true") != "false")
    opt(args, "--ignore-preflight-errors")
    opt(args, "--certificate-renewal")
    timeout = upgrade_timeout(args)
    args = [a for a in args if not a.startswith("-")]
    if not args:
        die("missing one or more required arguments: version")
    if not is_control_plane():
        die("[upgrade/apply] FATAL: this command must run on a control-plane node")
    target = norm(args[0])
    cm, cc = cluster_config()
    cur = norm(cc["kubernetesVersion"])
    print("[preflight] Running pre-flight checks.\n[upgrade/config] Reading configuration from the \"kubeadm-config\" "
          "ConfigMap in namespace \"kube-system\"...\n[upgrade] Running cluster health checks")
    print(f"[upgrade/version] You have chosen to change the cluster version to \"{target}\"\n"
          f"[upgrade/versions] Cluster version: {cur}\n[upgrade/versions] kubeadm version: {norm(pkg_version('kubeadm'))}")
    if not force:
        check_kubeadm(target)
        if vtuple(target)[1] > vtuple(cur)[1] + 1:
            die(f"[upgrade/version] FATAL: Specified version to upgrade to \"{target}\" is too high; kubeadm can "
                f"upgrade only 1 minor version at a time")
        if vtuple(target) < vtuple(cur):
            die(f"[upgrade/version] FATAL: Specified version to upgrade to \"{target}\" is equal to or lower than "
                f"the cluster version \"{cur}\". Downgrades are not supported yet")
    if not yes:
        sys.stdout.write("[upgrade] Are you sure you want to proceed? [y/N]: ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            die("won't proceed; the user didn't answer (Y|y) in order to continue")
    print(f"[upgrade/staticpods] Preparing for \"{target}\" upgrade", flush=True)
    upgrade_static_pods(target, etcd, timeout)
    cc["kubernetesVersion"] = target
    from lab import yamltext
    cm["data"]["ClusterConfiguration"] = yamltext.dump(cc)
    api("PUT", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config", cm)
    print("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace")
    images = images_for(target)
    for path, comp in (("/apis/apps/v1/namespaces/kube-system/deployments/coredns", "coredns"),
                       ("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", "kube-proxy")):
        obj = api("GET", path)
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = images[comp]
        api("PUT", path, obj)
        print(f"[addons] Applied essential addon: {'CoreDNS' if comp == 'coredns' else 'kube-proxy'}")
    print(f"\n[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"{target}\".\n\n"
          "[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order.")
    return 0


def upgrade_node(args):
    timeout = upgrade_timeout(args)
    print("[upgrade] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...")
    if is_control_plane():
        _, cc = cluster_config()
        target = norm(cc["kubernetesVersion"])
        check_kubeadm(target)
        print(f"[upgrade/staticpods] Preparing for \"{target}\" upgrade", flush=True)
        upgrade_static_pods(target, etcd=(opt(args, "--etcd-upgrade", "true") != "false"), timeout=timeout)
    else:
        print("[preflight] Skipping prepull. Not a control plane node.\n"
              "[upgrade/control-plane] Skipping phase. Not a control plane node.")
    print("[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!\n"
          "[upgrade] The configuration for this node was successfully upgraded!\n"
          "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")
    return 0


def images(args):
    v = opt(args, "--kubernetes-version")
    if not v:
        try:
            v = cluster_config()[1]["kubernetesVersion"]
        except Exception:
            v = pkg_version("kubeadm")
    imgs = images_for(v)
    if args and args[0] == "list":
        for k in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "coredns", "pause", "etcd"):
            print(imgs[k])
        return 0
    d = disk()
    for k in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "coredns", "pause", "etcd"):
        if imgs[k] not in d["images"]:
            if disk_free() < IMAGE_SIZE:
                die(f"failed to pull image \"{imgs[k]}\": output: time=\"{time.strftime('%Y-%m-%dT%H:%M:%SZ')}\" "
                    f"level=fatal msg=\"pulling image: failed to extract layer: write /var/lib/containerd/io.containerd."
                    f"content.v1.content/ingest: no space left on device\"\n, error: exit status 1\n"
                    "To see the stack trace of this error execute with --v=5 or higher")
            d["images"][imgs[k]] = IMAGE_SIZE
            save_disk(d)
        print(f"[config/images] Pulled {imgs[k]}", flush=True)
    return 0


def read_config(path):
    """The documents of a kubeadm --config file by kind, checked as kubeadm checks them."""
    from lab import yamltext
    try:
        with open(path) as f:
            docs = [d for d in yamltext.load_all(f) if d]
    except OSError as e:
        die(f"unable to read config from \"{path}\" : open {path}: {e.strerror.lower()}")
    except yamltext.YAMLError as e:
        die(f"couldn't parse config file {path}: {e}")
    out = {}
    for d in docs:
        api_version, kind = d.get("apiVersion", ""), d.get("kind", "")
        if kind in ("ClusterConfiguration", "InitConfiguration", "JoinConfiguration") and \
                api_version not in ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"):
            die(f"no kind \"{kind}\" is registered for version \"{api_version}\" in scheme")
        if kind == "UpgradeConfiguration" and api_version != "kubeadm.k8s.io/v1beta4":  # new in v1beta4
            die(f"no kind \"{kind}\" is registered for version \"{api_version}\" in scheme")
        out[kind] = d
    return out


def defaulted(cc):
    """What kubeadm fills in for a ClusterConfiguration field the file leaves out: a field lost
    from the file is lost from the cluster (seed 003, IR-1)."""
    cc = dict(cc)
    cc.setdefault("kubernetesVersion", norm(pkg_version("kubeadm")))
    cc.setdefault("imageRepository", "registry.k8s.io")
    cc.setdefault("certificatesDir", "/etc/kubernetes/pki")
    cc.setdefault("clusterName", "kubernetes")
    cc.setdefault("etcd", {"local": {"dataDir": "/var/lib/etcd"}})
    cc.setdefault("networking", {"dnsDomain": "cluster.local", "serviceSubnet": "10.96.0.0/12"})
    return cc


def init_phase(args):
    from lab import yamltext
    from lab.node import manifests
    from lab.node.manifests import render
    n = node()
    v = opt(args, "--kubernetes-version")
    path = opt(args, "--config")
    docs = read_config(path) if path else {}
    if path and "ClusterConfiguration" not in docs:
        docs["ClusterConfiguration"] = {}
    if args[:2] == ["upload-config", "kubeadm"]:
        cm, cc = cluster_config()
        if path:  # the file's ClusterConfiguration replaces the stored one, whole
            cc = defaulted(docs["ClusterConfiguration"])
            cc["apiVersion"], cc["kind"] = "kubeadm.k8s.io/v1beta4", "ClusterConfiguration"
        if v:
            cc["kubernetesVersion"] = norm(v)
        if path or v:
            cm["data"]["ClusterConfiguration"] = yamltext.dump(cc)
            api("PUT", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config", cm)
        print("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace")
        return 0
    if args[:1] == ["control-plane"] and len(args) > 1:
        cc = defaulted(docs["ClusterConfiguration"]) if path else cluster_config()[1]
        v = norm(v or cc["kubernetesVersion"])
        advertise = ((docs.get("InitConfiguration") or {}).get("localAPIEndpoint") or {}).get("advertiseAddress")
        comps = list(CONTROL_PLANE) if args[1] == "all" else \
            [{"apiserver": "kube-apiserver", "controller-manager": "kube-controller-manager",
              "scheduler": "kube-scheduler"}.get(args[1]) or die(f"unknown command \"{args[1]}\"")]
        print(f"[control-plane] Using manifest folder \"{MANIFESTS}\"")
        for c in comps:
            tmp = f"/etc/kubernetes/tmp/{c}.yaml.new"
            with open(tmp, "w") as f:
                f.write(render(c, n["manifest_cfg"], v, cc, advertise))
            os.replace(tmp, f"{MANIFESTS}/{c}.yaml")
            print(f"[control-plane] Creating static Pod manifest for \"{c}\"")
        return 0
    if args[:2] == ["etcd", "local"]:
        # kubeadm writes the member's manifest from the ClusterConfiguration: etcd.local's imageTag
        # when set, else the etcd kubeadm pairs with kubernetesVersion. The data directory is the
        # member's: an existing one makes etcd ignore the --initial-cluster flags.
        cc = defaulted(docs["ClusterConfiguration"]) if path else cluster_config()[1]
        if ((cc.get("etcd") or {}).get("external")):
            die("error execution phase etcd-local: etcd.external is set in the configuration: no local etcd to write")
        local = (cc.get("etcd") or {}).get("local") or {}
        v = norm(v or cc["kubernetesVersion"])
        pod = manifests.etcd(n["manifest_cfg"], v)
        if local.get("imageTag"):
            image = pod["spec"]["containers"][0]["image"]
            pod["spec"]["containers"][0]["image"] = image.rsplit(":", 1)[0] + ":" + str(local["imageTag"])
        tmp = "/etc/kubernetes/tmp/etcd.yaml.new"
        os.makedirs("/etc/kubernetes/tmp", exist_ok=True)
        with open(tmp, "w") as f:
            f.write(yamltext.dump(pod))
        os.replace(tmp, f"{MANIFESTS}/etcd.yaml")
        print(f"[etcd] Creating static Pod manifest for local etcd in \"{MANIFESTS}\"")
        return 0
    die(f"unknown phase: {' '.join(args)}")


def kubeconfig_user(args):
    """`kubeadm kubeconfig user --client-name NAME [--org ORG]`: a kubeconfig with a new key and a
    certificate the cluster CA signs for a year (kubeadm's default), printed. It needs the CA's key:
    a control-plane node. The server is the one this node's admin.conf names."""
    import tempfile
    from lab import yamltext
    from lab.node import certs
    name, org = opt(args, "--client-name"), opt(args, "--org")
    opt(args, "--config")
    if not name:
        die("required flag(s) \"client-name\" not set")
    if not os.path.exists("/etc/kubernetes/pki/ca.key"):
        die("couldn't create a kubeconfig; the CA files couldn't be loaded: failure loading ca key: "
            "couldn't load the private key file /etc/kubernetes/pki/ca.key: open /etc/kubernetes/pki/ca.key: no such file or directory")
    with open("/etc/kubernetes/admin.conf") as f:
        server = yamltext.load(f)["clusters"][0]["cluster"]["server"]
    with tempfile.TemporaryDirectory(dir="/etc/kubernetes/pki") as d:
        os.chmod(d, 0o700)
        certs.new_key(f"{d}/k")
        certs.sign("/etc/kubernetes", "ca", (f"/O={org}" if org else "") + f"/CN={name}", "client", f"{d}/k", f"{d}/c", 365, "")
        certs.kubeconfig(f"{d}/conf", server, "/etc/kubernetes/pki/ca.crt", f"{d}/c", f"{d}/k", name)
        with open(f"{d}/conf") as f:
            sys.stdout.write(f.read())
    return 0


def main(argv=None):
    args = list(argv if argv is not None else sys.argv[1:])
    opt(args, "--v")
    opt(args, "--kubeconfig")
    if args[:1] == ["version"]:
        return version(args[1:])
    if args[:2] == ["upgrade", "plan"]:
        return plan([a for a in args[2:] if not a.startswith("-")])
    if args[:2] == ["upgrade", "apply"]:
        return apply(args[2:])
    if args[:2] == ["upgrade", "node"]:
        return upgrade_node(args[2:])
    if args[:2] == ["config", "images"] and args[2:3] in (["pull"], ["list"]):
        return images(args[2:])
    if args[:2] == ["certs", "check-expiration"]:
        from lab.node import kubeadm_certs
        return kubeadm_certs.check_expiration()
    if args[:2] == ["certs", "renew"]:
        from lab.node import kubeadm_certs
        return kubeadm_certs.renew(args[2:])
    if args[:2] == ["init", "phase"]:
        return init_phase(args[2:])
    if args[:2] == ["kubeconfig", "user"]:
        return kubeconfig_user(args[2:])
    if args[:1] in (["init"], ["join"]) or args[:2] == ["token", "create"]:
        # Imported here: init and join bring urllib and ssl, which `upgrade` never needs, and a
        # simulated command's start-up is the lab's cost on every run of every tool.
        from lab.node import kubeadm_init
    if args[:1] == ["init"]:
        return kubeadm_init.init(args[1:], opt, flag, read_config, defaulted)
    if args[:1] == ["join"]:
        return kubeadm_init.join(args[1:], opt, flag)
    if args[:2] == ["token", "create"]:
        return kubeadm_init.token_create(args[2:], flag)
    die(f"unknown command \"{' '.join(args[:2])}\" for \"kubeadm\" (the lab's kubeadm does: version, upgrade plan|apply|node, "
        "config images pull|list, certs check-expiration|renew, init [phase upload-config|control-plane|etcd local], kubeconfig user, join, token create)")


if __name__ == "__main__":
    sys.exit(main() or 0)
