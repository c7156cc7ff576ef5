"""df, du, snap, crictl, journalctl and reboot for a lab node, over its simulated disk and static pods."""
import json
import os
import re
import sys
import time

from lab import ROOT
from lab.node.common import PODS, die, disk, disk_used, read_json, save_disk


def human(n):
    for unit in ("", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "" or n >= 10 else f"{n:.1f}{unit}"
        n /= 1024.0


def df(args):
    d = disk()
    if any(a == "-i" or a == "--inodes" or (a.startswith("-") and not a.startswith("--") and "i" in a) for a in args):
        inodes = 3276800  # ext4's default for a 50 GiB disk; the lab never runs out of them
        used = inodes // 25
        print("Filesystem      Inodes  IUsed   IFree IUse% Mounted on")
        print(f"/dev/vda1      {inodes} {used} {inodes - used}    4% /")
        return 0
    size, used = d["size"], disk_used(d)
    avail = size - used
    pcent = f"{(used * 100 + size - 1) // size}%"
    out = next((a.split("=", 1)[1] for a in args if a.startswith("--output=")), None)
    block = 1024
    if "-B1" in args or ("-B" in args and args[args.index("-B") + 1] == "1"):
        block = 1
    if out:
        cols = out.split(",")
        names = {"source": "Filesystem", "size": "1K-blocks" if block == 1024 else "1B-blocks", "used": "Used",
                 "avail": "Avail", "pcent": "Use%", "target": "Mounted on", "fstype": "Type"}
        vals = {"source": "/dev/vda1", "size": size // block, "used": used // block, "avail": avail // block,
                "pcent": pcent, "target": "/", "fstype": "ext4"}
        print(" ".join(names.get(c, c) for c in cols))
        print(" ".join(str(vals.get(c, "-")) for c in cols))
        return 0
    if "-h" in args or "--human-readable" in args:
        print("Filesystem      Size  Used Avail Use% Mounted on")
        print(f"/dev/vda1       {human(size):>4}  {human(used):>4}  {human(avail):>4} {pcent:>4} /")
        return 0
    hdr = "Capacity" if "-P" in args or "--portability" in args else "Use%"
    print(f"Filesystem     {'1K-blocks' if block == 1024 else '1B-blocks'}      Used Available {hdr} Mounted on")
    print(f"/dev/vda1      {size // block:>9} {used // block:>9} {avail // block:>9} {pcent:>8} /")
    return 0


def container_id(p):
    """A container's ID: new at every start of the pod, as the runtime's are."""
    return f"{p['hash'][:8]}{int(p['started'] * 1000) & 0xffffffff:08x}"


def crictl(args):
    pods = read_json(PODS, {})
    if args[:1] == ["ps"]:
        want = args[args.index("--name") + 1] if "--name" in args else None
        shown = {n: p for n, p in sorted(pods.items()) if want is None or re.search(want, n)}
        if "json" in args and ("-o" in args or "--output" in args):  # crictl's -o json, the fields runbooks read
            print(json.dumps({"containers": [
                {"id": container_id(p), "podSandboxId": p["hash"][::-1], "metadata": {"name": n, "attempt": 0},
                 "image": {"image": p["image"]}, "imageRef": p["image"], "state": "CONTAINER_RUNNING",
                 "createdAt": str(int(p["started"] * 1e9)),
                 "labels": {"io.kubernetes.container.name": n, "io.kubernetes.pod.name": f"{n}-{os.uname().nodename}",
                            "io.kubernetes.pod.namespace": "kube-system"}} for n, p in shown.items()]}, indent=2))
            return 0
        pods = shown
        if "-q" in args or "--quiet" in args:  # IDs only
            for p in pods.values():
                print(container_id(p))
            return 0
        print("CONTAINER           IMAGE                                       CREATED             STATE               NAME                      ATTEMPT             POD ID              POD")
        for name, p in sorted(pods.items()):
            age = int(time.time() - p["started"])
            print(f"{p['hash'][:13]}       {p['image']:<43} {age} seconds ago      Running             {name:<25} 0                   {p['hash'][-13:]}       {name}-{os.uname().nodename}")
        return 0
    if args[:1] == ["images"]:
        print("IMAGE                                     TAG                 IMAGE ID            SIZE")
        for img in sorted(disk()["images"]):
            repo, tag = img.rsplit(":", 1)
            print(f"{repo:<41} {tag:<19} {abs(hash(img)) % (1 << 48):012x}        300MB")
        return 0
    if args[:2] == ["rmi", "--prune"]:
        d = disk()
        running = {p["image"] for p in pods.values()}
        for img in sorted(d["images"]):
            if img not in running:
                print(f"Deleted: {img}")
                del d["images"][img]
        save_disk(d)
        return 0
    die("the lab's crictl does: ps, images, rmi --prune", 1)


def journalctl(args):
    vac = [a for a in args if a.startswith(("--vacuum-time", "--vacuum-size"))]
    if vac:
        d = disk()
        freed = max(0, d["journal"] - (64 << 20))
        d["journal"] -= freed
        save_disk(d)
        print(f"Vacuuming done, freed {human(freed)}B of archived journals from /var/log/journal/{os.uname().nodename}.")
        return 0
    if "--disk-usage" in args:
        print(f"Archived and active journals take up {human(disk()['journal'])} in the file system.")
        return 0
    unit = next((args[i + 1] for i, a in enumerate(args) if a == "-u" and i + 1 < len(args)), None)
    lines = next((int(args[i + 1]) for i, a in enumerate(args) if a == "-n" and i + 1 < len(args) and args[i + 1].isdigit()), 50)
    if unit:
        try:
            with open(f"/var/log/{unit.replace('.service', '')}.log") as f:
                sys.stdout.write("".join(f.readlines()[-lines:]))
        except OSError:
            print("-- No entries --")
        return 0
    print("-- No entries --")
    return 0


def reboot(args):
    """Stops every unit and starts the enabled ones again a moment later, as a boot would."""
    import subprocess  # here: df, du and crictl, asked far more often, do not need it
    script = ("import time, os, sys; sys.path.insert(0, %r); from lab.node import systemctl as s; time.sleep(1);\n"
              "units = [f[:-4] for f in os.listdir(s.STATE) if f.endswith('.pid')] if os.path.isdir(s.STATE) else []\n"
              "[s.stop(u) for u in units]; time.sleep(2)\n"
              "[s.start(f[:-8]) for f in os.listdir(s.STATE) if f.endswith('.enabled')]\n") % ROOT
    subprocess.Popen([sys.executable, "-c", script], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"Broadcast message from root@{os.uname().nodename}: The system will reboot now!")
    return 0


def du(args):
    """du over the simulated disk, in KiB: `du -x -d 1 /var` (the journal under /var/log, apt's cache
    under /var/cache, image layers, snaps and what disk-full wrote under /var/lib), `-d 2` the
    directories within them (disk-full's fill as /var/lib/docker), and `du -s DIR...`
    for the directories cleanups free. Other forms are not simulated and say so."""
    d = disk()
    known = {"/var/log/journal": d["journal"], "/var/cache/apt": d["apt_cache"],
             "/var/lib/containerd": sum(d["images"].values()), "/var/lib/snapd": sum(d["snaps"].values()),
             "/var/lib/etcd": 0}
    paths = [a for a in args if not a.startswith("-") and a not in ("1", "2")]
    depth = "-d" in args or any(a.startswith("-") and not a.startswith("--") and "d" in a for a in args)
    if paths == ["/var"] and depth:
        # What disk-full's fill stands for: a directory no cleanup knows (an old runtime's data).
        inner = {"/var/log/journal": d["journal"], "/var/cache/apt": d["apt_cache"], "/var/lib/containerd":
                 sum(d["images"].values()), "/var/lib/snapd": sum(d["snaps"].values()), "/var/lib/docker": d["fill"]}
        rows = {"/var/log": d["journal"], "/var/cache": d["apt_cache"],
                "/var/lib": sum(d["images"].values()) + sum(d["snaps"].values()) + d["fill"]}
        if "2" in args:
            for path, size in inner.items():
                print(f"{size // 1024}\t{path}")
        for path, size in rows.items():
            print(f"{size // 1024}\t{path}")
        print(f"{sum(rows.values()) // 1024}\t/var")
        return 0
    if paths and all(p in known for p in paths):
        for p in paths:
            print(f"{known[p] // 1024}\t{p}")
        return 0
    print("du (lab): simulated for -x -d 1 /var and -s " + " ".join(known), file=sys.stderr)
    return 2


def snap(args):
    """snap list --all and snap remove NAME --revision=R, over the node's disabled revisions."""
    d = disk()
    if args[:2] == ["list", "--all"]:
        print("Name    Version   Rev    Tracking       Publisher   Notes")
        for key in sorted(d["snaps"]):
            name, rev = key.split()
            print(f"{name:<7} 1.0       {rev:<6} latest/stable  canonical   disabled")
        return 0
    if args[:1] == ["remove"] and len(args) >= 2:
        rev = next((a.split("=", 1)[1] for a in args if a.startswith("--revision=")), None)
        key = f"{args[1]} {rev}"
        if key not in d["snaps"]:
            die(f'error: cannot remove "{args[1]}": revision {rev} not found', 1)
        del d["snaps"][key]
        save_disk(d)
        print(f"{args[1]} (revision {rev}) removed")
        return 0
    die("the lab's snap does: list --all, remove NAME --revision=R", 1)


def main():
    prog = os.path.basename(sys.argv[0])
    return {"df": df, "du": du, "snap": snap, "crictl": crictl, "journalctl": journalctl, "reboot": reboot}[prog](sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
