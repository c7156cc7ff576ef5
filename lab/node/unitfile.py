"""A lab node's unit files and its units' state, as systemctl reads them and the supervisor
(lab/node/unit.py) writes them: parse a unit file, its durations and environment, the state files
under /var/lib/engine-lab/units. Apart from the supervisor because systemctl, run for every
`is-active` a tool asks, needs only this, not the supervisor's subprocess, socket and ctypes (a
simulated command's start-up is CPU on the cores the whole lab shares)."""
import os

from lab.node.common import alive

STATE = "/var/lib/engine-lab/units"
UNITS = "/etc/systemd/system"


def parse(unit):
    """{key: [values]} of the unit file, or None when there is none."""
    try:
        f = open(os.path.join(UNITS, unit))
    except OSError:
        return None
    conf = {}
    with f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith(("#", ";", "[")):
                k, v = line.split("=", 1)
                conf.setdefault(k.strip(), []).append(v.strip())
    return conf


def last(conf, key, default=None):
    return conf.get(key, [default])[-1]


def seconds(v, default):
    if v is None:
        return default
    v = v.strip()
    mult = 1.0
    for suffix, m in (("ms", 0.001), ("min", 60.0), ("s", 1.0), ("m", 60.0)):
        if v.endswith(suffix):
            v, mult = v[:-len(suffix)], m
            break
    try:
        return float(v) * mult
    except ValueError:
        return default


def environment(conf):
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for path in conf.get("EnvironmentFile", []):
        optional = path.startswith("-")
        path = path.lstrip("-")
        try:
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if not line or line.startswith(("#", ";")) or "=" not in line:
                        continue
                    k, v = line.split("=", 1)
                    v = v.strip()
                    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                        v = v[1:-1]
                    env[k.strip()] = v
        except OSError:
            if not optional:
                raise
    for item in conf.get("Environment", []):
        for kv in item.split():
            if "=" in kv:
                k, v = kv.strip("\"").split("=", 1)
                env[k] = v
    return env


def put(unit, what, value):
    tmp = f"{STATE}/{unit}.{what}.tmp"
    with open(tmp, "w") as f:
        f.write(str(value))
    os.replace(tmp, f"{STATE}/{unit}.{what}")


def running(unit):
    """The supervisor's pid, when it runs."""
    try:
        with open(f"{STATE}/{unit}.pid") as f:
            pid = int(f.read())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None
