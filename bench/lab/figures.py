#!/usr/bin/env python3
"""The lab's own cost, for docs/lab.md: for each size (3+3, 3+30, 3+100 by default) the time
`scripts/lab up` takes, then, with the lab idle, the CPU its processes use (their utime+stime over a
window, from /proc) and their memory (proportional set size, so shared pages count once), in total
and per node. Figures, not a test: the machine is shared and noisy.

  bench/lab/figures.py [--sizes 3+3,3+30,3+100] [--subnet 127.0.82] [--idle 20]"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from lab.procs import mnt_ns  # noqa: E402
TICK = os.sysconf("SC_CLK_TCK")


def lab_pids(st):
    """Every process of the lab: the node namespaces' processes, the API simulator and monitoring."""
    spaces = {n["mnt_ns"] for n in st["nodes"] if n.get("mnt_ns")}
    own = {st[k]["pid"] for k in ("sim", "pushgateway", "prometheus", "mirror") if isinstance(st.get(k), dict)}
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and (int(d) in own or mnt_ns(d) in spaces)]


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError):
        return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(size, subnet, idle):
    cps, workers = (int(x) for x in size.split("+"))
    d = f"/tmp/engine-lab-figures-{cps}-{workers}"
    lab = [sys.executable, "-m", "lab"]
    t0 = time.monotonic()
    subprocess.run(lab + ["up", "--dir", d, "--subnet", subnet, "--control-planes", str(cps), "--workers", str(workers)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    up = time.monotonic() - t0
    try:
        with open(f"{d}/lab.json") as f:
            st = json.load(f)
        time.sleep(5)  # let the start settle
        pids = lab_pids(st)
        before = {p: cpu_ticks(p) for p in pids}
        t1 = time.monotonic()
        time.sleep(idle)
        span = time.monotonic() - t1
        used = sum(cpu_ticks(p) - t for p, t in before.items()) / TICK
        mem = sum(pss_kib(p) for p in lab_pids(st)) / 1024
    finally:
        subprocess.run(lab + ["down", "--dir", d], cwd=ROOT, stdout=subprocess.DEVNULL)
    nodes = cps + workers
    return {"size": size, "nodes": nodes, "up_s": up, "idle_cpu_pct": 100 * used / span,
            "idle_cpu_pct_per_node": 100 * used / span / nodes, "pss_mib": mem, "pss_mib_per_node": mem / nodes,
            "processes": len(pids)}


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--sizes", default="3+3,3+30,3+100")
    a.add_argument("--subnet", default="127.0.82")
    a.add_argument("--idle", type=float, default=20.0, help="seconds of idle lab to measure")
    a = a.parse_args()
    print(f"{'lab':>7} {'up s':>7} {'idle CPU % of a core':>21} {'per node':>9} {'PSS MiB':>8} {'per node':>9} {'procs':>6}")
    for size in a.sizes.split(","):
        r = measure(size, a.subnet, a.idle)
        print(f"{r['size']:>7} {r['up_s']:7.1f} {r['idle_cpu_pct']:21.1f} {r['idle_cpu_pct_per_node']:9.2f} "
              f"{r['pss_mib']:8.0f} {r['pss_mib_per_node']:9.1f} {r['processes']:6d}", flush=True)


if __name__ == "__main__":
    main()
