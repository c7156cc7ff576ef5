"""The lab's processes: spawned with their start time (a pid alone can be reused), found and ended by
mount namespace (every process of a node lives in its own), and waited for with a bound."""
import os
import signal
import socket
import subprocess
import time


class LabError(Exception):
    pass


def stat_fields(pid):
    """/proc/PID/stat after the command's name: state first, start time at [19]; None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid):
    fields = stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def alive(rec):
    """The recorded process still runs. A zombie does not: once `lab up` has exited, what it spawned
    is reaped by PID 1, which in some containers does so only every few seconds."""
    fields = rec and stat_fields(rec["pid"])
    return bool(fields) and len(fields) > 19 and fields[19] == rec["start"] and fields[0] != "Z"


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


def pids_in_ns(*namespaces):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid() and mnt_ns(d) in namespaces:
            out.append(int(d))
    return out


def mounted_anywhere(paths):
    """Which of these paths are a mount point in some process's mount namespace (one mountinfo read
    per namespace): a lab's node binds its own directories there."""
    seen, used = set(), set()
    for d in os.listdir("/proc"):
        ns = mnt_ns(d) if d.isdigit() else None
        if not ns or ns in seen:
            continue
        seen.add(ns)
        try:
            with open(f"/proc/{d}/mountinfo") as f:
                used.update(line.split()[4] for line in f if line.split()[4] in paths)
        except (OSError, IndexError):
            pass
    return used


def hold_ns(namespaces):
    """{namespace: an open descriptor of it} for those of these mount namespaces a process is still
    in. While one is held it cannot be freed, so its id cannot be given to a namespace made since (a
    lab coming up beside one going down): matching processes by id then finds only its own."""
    held = {}
    for d in os.listdir("/proc"):
        ns = mnt_ns(d) if d.isdigit() else None
        if ns in namespaces and ns not in held:
            try:
                fd = os.open(f"/proc/{d}/ns/mnt", os.O_RDONLY)
            except OSError:
                continue
            if f"mnt:[{os.fstat(fd).st_ino}]" == ns:
                held[ns] = fd
            else:
                os.close(fd)
    return held


def kill_ns(*namespaces, limit=10.0):
    """SIGKILL to every process of these mount namespaces (all of them in each pass: a 100-node lab
    goes down in one wait, not a hundred), until none is left. The namespaces are held meanwhile
    (hold_ns): one no process is in any more is gone already, and is not looked for."""
    deadline = time.monotonic() + limit
    held = hold_ns(set(namespaces))
    want = set(held)
    try:
        while time.monotonic() < deadline:
            pids = pids_in_ns(*want)
            if not pids:
                return
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        raise LabError(f"processes of namespaces {sorted(want)} survived SIGKILL: {pids_in_ns(*want)}")
    finally:
        for fd in held.values():
            os.close(fd)


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
