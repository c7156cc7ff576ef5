"""The lab's processes: spawned with their start time (a pid alone can be reused), found and ended by
mount namespace (every process of a node lives in its own), and waited for with a bound."""
import os
import signal
import socket
import subprocess
import time


class LabError(Exception):
    pass


def start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(rec):
    return bool(rec) and start_time(rec["pid"]) == rec["start"]


def spawn(cmd, log):
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                         start_new_session=True)
    time.sleep(0.01)
    return {"pid": p.pid, "start": start_time(p.pid)}


def mnt_ns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def pids_in_ns(ns):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid() and mnt_ns(d) == ns:
            out.append(int(d))
    return out


def kill_ns(ns, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        pids = pids_in_ns(ns)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    raise LabError(f"processes of namespace {ns} survived SIGKILL: {pids_in_ns(ns)}")


def wait(cond, what, limit=60.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise LabError(f"timed out after {limit:.0f}s waiting for {what}")


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
