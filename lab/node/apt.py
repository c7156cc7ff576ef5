"""apt-get, apt, apt-mark and apt-cache for the kubeadm, kubelet and kubectl packages of a lab node,
and the node's simulated apt cache (clean, autoclean). As
with pkgs.k8s.io, only the minor named in /etc/apt/sources.list.d/kubernetes.list is offered.
A package fetched (by install, or install --download-only) leaves its .deb in the node's own
/var/cache/apt/archives, as apt does (an empty file: the simulated disk's apt_cache is what counts
its bytes), and is not fetched again; each fetch takes the lab's --apt-download-delay."""
import os
import re
import sys
import time

from lab.node.common import LAB, die, disk, disk_free, fault, node, packages, save_disk, write_json

SOURCES = "/etc/apt/sources.list.d/kubernetes.list"
ARCHIVES = "/var/cache/apt/archives"  # the node's own (lab/node/boot.py binds it)
FETCH_LOG = "/var/log/apt/engine-lab-fetch.log"
K8S = ("kubeadm", "kubelet", "kubectl", "kubernetes-cni", "cri-tools")


def repo_minor():
    try:
        with open(SOURCES) as f:
            m = re.search(r"/core:/stable:/v(\d+\.\d+)/deb", f.read())
        return m.group(1) if m else None
    except OSError:
        return None


def available():
    m = repo_minor()
    return [f"{v}-1.1" for v in node()["releases"] if m and v.startswith(m + ".")]


def save(p):
    write_json(f"{LAB}/packages.json", p)


def archive(name, ver):
    return f"{ARCHIVES}/{name}_{ver.replace(':', '%3a')}_amd64.deb"


def fetch(plan):
    """Fetches what of plan (name, version) is not in the archives yet, as apt prints it."""
    missing = [(n, v) for n, v in plan if not os.path.exists(archive(n, v))]
    delay = float(node().get("apt_download_delay", 0) or 0)
    for i, (name, ver) in enumerate(missing, 1):
        print(f"Get:{i} https://pkgs.k8s.io/core:/stable:/v{repo_minor()}/deb  {name} {ver}", flush=True)
        # The lab's fault apt-fetch-stall: a mirror that stops answering, until the fault clears
        # (or apt's own timeout, 10 minutes here).
        deadline = time.monotonic() + 600
        while fault("apt-fetch-stall"):
            if time.monotonic() > deadline:
                die(f"E: Failed to fetch https://pkgs.k8s.io/core:/stable:/v{repo_minor()}/deb {name} {ver}  "
                    "Connection timed out", 100)
            time.sleep(0.1)
        if delay > 0:
            time.sleep(delay)
        os.makedirs(ARCHIVES, exist_ok=True)
        with open(archive(name, ver), "w"):
            pass
        os.makedirs("/var/log/apt", exist_ok=True)  # the lab's own record of each fetch, for tests
        with open(FETCH_LOG, "a") as f:
            f.write(f"{time.time():.3f} {name} {ver}\n")
    if missing:
        print(f"Fetched {len(missing)} packages")


def madison(args):
    m = repo_minor()
    for name in [a for a in args if not a.startswith("-")]:
        if name not in ("kubeadm", "kubelet", "kubectl"):
            continue
        for v in sorted(available(), key=lambda s: [int(x) for x in re.split(r"[.-]", s)], reverse=True):
            print(f"   {name} | {v} | https://pkgs.k8s.io/core:/stable:/v{m}/deb  Packages")
    return 0


def apt_cache(args):
    if args[:1] == ["madison"]:
        return madison(args[1:])
    if args[:1] == ["policy"]:
        # As apt prints it: the version table lists what the source offers, newest first, and the
        # installed version (***) with /var/lib/dpkg/status among its sources.
        p, m = packages(), repo_minor()
        offered = sorted(available(), key=lambda s: [int(x) for x in re.split(r"[.-]", s)], reverse=True)
        for name in args[1:]:
            inst = p.get(name, {}).get("version", "(none)")
            print(f"{name}:\n  Installed: {inst}\n  Candidate: {(offered or ['(none)'])[0]}\n  Version table:")
            vs = list(offered) if name in ("kubeadm", "kubelet", "kubectl") else []
            if inst != "(none)" and inst not in vs:
                vs.append(inst)
            for v in vs:
                print(f" {'***' if v == inst else '   '} {v} {100 if v == inst and v not in offered else 500}")
                if v in offered:
                    print(f"        500 https://pkgs.k8s.io/core:/stable:/v{m}/deb  Packages")
                if v == inst:
                    print("        100 /var/lib/dpkg/status")
        return 0
    die(f"E: The lab's apt-cache does: madison, policy", 100)


def apt_get(args):
    opts = [a for a in args if a.startswith("-")]
    words = [a for a in args if not a.startswith("-")]
    if not words:
        die("E: No command given", 100)
    cmd, pkgs = words[0], words[1:]
    print("Reading package lists...")
    if cmd == "update":
        print(f"Hit:1 https://pkgs.k8s.io/core:/stable:/v{repo_minor()}/deb  InRelease\nReading package lists... Done")
        return 0
    if cmd in ("clean", "autoclean"):  # the node's simulated /var/cache/apt, never the host's
        d = disk()
        if cmd == "clean":
            d["apt_cache"] = 0
            for f in os.listdir(ARCHIVES) if os.path.isdir(ARCHIVES) else []:
                if f.endswith(".deb"):
                    os.unlink(f"{ARCHIVES}/{f}")
        else:
            d["apt_cache"] //= 2  # autoclean keeps what can still be downloaded
        save_disk(d)
        return 0
    if cmd != "install":
        die(f"E: The lab's apt-get does: update, install, clean, autoclean (not {cmd})", 100)
    p = packages()
    plan = []
    for spec in pkgs:
        name, _, ver = spec.partition("=")
        if name not in K8S:
            die(f"E: Unable to locate package {name}", 100)
        if not ver:
            ver = (available() or [None])[-1]
        if ver not in available():
            die(f"E: Version '{ver}' for '{name}' was not found", 100)
        plan.append((name, ver))
    held = [n for n, v in plan if p.get(n, {}).get("hold") and p[n]["version"] != v]
    if held and "--allow-change-held-packages" not in opts:
        print("The following held packages will be changed:\n  " + " ".join(held))
        die("E: Held packages were changed and -y was used.", 100)
    if any(p.get(n) and [int(x) for x in re.split(r"[.-]", v)] < [int(x) for x in re.split(r"[.-]", p[n]["version"])]
           for n, v in plan) and "--allow-downgrades" not in opts:
        die("E: Packages were downgraded and -y was used.", 100)
    if disk_free() < (100 << 20):
        die("E: You don't have enough free space in /var/cache/apt/archives/.", 100)
    print("Building dependency tree...\nReading state information...")
    fetch([(n, v) for n, v in plan if p.get(n, {}).get("version") != v])
    if "--download-only" in opts or "-d" in opts:
        print("Download complete and in download only mode")
        return 0
    changed = []
    for name, ver in plan:
        old = p.get(name, {}).get("version")
        if old == ver:
            print(f"{name} is already the newest version ({ver}).")
            continue
        print(f"Unpacking {name} ({ver}) over ({old}) ...\nSetting up {name} ({ver}) ...")
        p.setdefault(name, {})["version"] = ver
        changed.append(f"{name}:amd64 ({old}, {ver})")
    save(p)
    if changed:  # as apt does, for whoever audits what was installed when
        os.makedirs("/var/log/apt", exist_ok=True)
        stamp = time.strftime("%Y-%m-%d  %H:%M:%S")
        with open("/var/log/apt/history.log", "a") as f:
            f.write(f"\nStart-Date: {stamp}\nCommandline: apt-get {' '.join(sys.argv[1:])}\n"
                    f"Upgrade: {', '.join(changed)}\nEnd-Date: {stamp}\n")
    return 0


def apt_mark(args):
    p = packages()
    if not args:
        die("apt-mark: no command given", 100)
    cmd, names = args[0], args[1:]
    if cmd == "showhold":
        for n in sorted(k for k, v in p.items() if v.get("hold")):
            print(n)
        return 0
    if cmd not in ("hold", "unhold"):
        die(f"E: The lab's apt-mark does: hold, unhold, showhold", 100)
    for n in names:
        if n not in p:
            die(f"E: Unable to locate package {n}", 100)
        was = p[n].get("hold", False)
        p[n]["hold"] = cmd == "hold"
        print(f"{n} {'was already set on hold' if was and cmd == 'hold' else 'set on hold' if cmd == 'hold' else 'was already not on hold' if not was else 'unheld'}.")
    save(p)
    return 0


def apt(args):
    """`apt`: the forms of apt-get a runbook may use (apt is not simulated beyond them: it would reach
    the host's own cache)."""
    words = [a for a in args if not a.startswith("-")]
    if words[:1] in (["clean"], ["autoclean"], ["update"], ["install"]):
        return apt_get(args)
    die("E: the lab's apt does: update, install, clean, autoclean (use apt-get, apt-cache, apt-mark)", 100)


def main():
    prog = os.path.basename(sys.argv[0])
    return {"apt": apt, "apt-get": apt_get, "apt-cache": apt_cache, "apt-mark": apt_mark}[prog](sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
