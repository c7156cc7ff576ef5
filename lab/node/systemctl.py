"""systemctl for a lab node: units are /etc/systemd/system/NAME.service files; a started unit runs
under its own supervisor (lab/node/unit.py: Environment, User, Restart=, Type=notify), whose pid is
kept in /var/lib/engine-lab/units/NAME.pid."""
import os
import sys
import time

from lab import ROOT
from lab.node.common import alive, die, terminate, wait_until
from lab.node import unitfile

UNITS = unitfile.UNITS
STATE = unitfile.STATE


# Units every node has without a unit file of its own.
BUILTIN = {"systemd-journald.service"}

def unit_name(arg):
    return arg if arg.endswith((".service", ".timer")) else arg + ".service"


def unit_file(unit):
    return os.path.join(UNITS, unit)


def load(unit):
    conf = unitfile.parse(unit)
    return None if conf is None else {k: v[-1] for k, v in conf.items()}


def pid_of(unit):
    return unitfile.running(unit)


def state_of(unit):
    """systemd's ActiveState: active, activating, deactivating, failed or inactive."""
    try:
        with open(f"{STATE}/{unit}.state") as f:
            st = f.read().strip()
    except OSError:
        st = "inactive"
    if not pid_of(unit) and st in ("active", "activating", "deactivating"):
        st = "inactive"
    return st


def start(unit, wait=True):
    conf = load(unit)
    if conf is None:
        die(f"Failed to start {unit}: Unit {unit} not found.", 5)
    if pid_of(unit):
        return 0
    os.makedirs(STATE, exist_ok=True)
    os.chmod(STATE, 0o755)
    os.makedirs("/var/log", exist_ok=True)
    for what in ("result", "state", "main"):
        try:
            os.unlink(f"{STATE}/{unit}.{what}")
        except OSError:
            pass
    import subprocess  # here: only `start` needs it, and it is most of this program's start-up
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.Popen([sys.executable, "-m", "lab.node.unit", unit], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         close_fds=True, cwd="/", env=env)
    with open(f"{STATE}/{unit}.pid", "w") as f:
        f.write(str(p.pid))
    with open(f"{STATE}/{unit}.loaded", "w") as f:
        f.write(str(os.stat(unit_file(unit)).st_mtime))
    if not wait:
        return 0
    limit = unitfile.seconds(conf.get("TimeoutStartSec"), 90.0)

    def settled():  # active, or its first start already over (a service that exits), or the supervisor gone
        try:
            with open(f"{STATE}/{unit}.state") as f:
                raw = f.read().strip()
        except OSError:
            raw = "starting"
        if conf.get("Type") == "oneshot":  # systemctl start returns once a oneshot has run
            return os.path.exists(f"{STATE}/{unit}.result") or not pid_of(unit)
        return raw in ("active", "failed") or os.path.exists(f"{STATE}/{unit}.result") or not pid_of(unit)
    wait_until(settled, limit, 0.5, dirs=(STATE,))  # the supervisor writes the state file there
    if conf.get("Type") == "oneshot":
        try:
            with open(f"{STATE}/{unit}.result") as f:
                ok = f.read().strip() == "exit-code status=0"
        except OSError:
            ok = False
        if not ok:
            print(f"Job for {unit} failed because the control process exited with error code.", file=sys.stderr)
        return 0 if ok else 1
    if state_of(unit) != "active":
        print(f"Job for {unit} failed because the control process exited with error code.\n"
              f"See \"systemctl status {unit}\" and \"journalctl -xeu {unit}\" for details.", file=sys.stderr)
        return 1
    return 0


def stop(unit):
    pid = pid_of(unit)
    if pid:
        conf = load(unit) or {}
        terminate(pid, unitfile.seconds(conf.get("TimeoutStopSec"), 10.0) + 5)
    main = None
    try:
        with open(f"{STATE}/{unit}.main") as f:
            main = int(f.read())
    except (OSError, ValueError):
        pass
    if main and alive(main):  # a supervisor killed hard leaves its service: systemd would not
        terminate(main)
    for what in ("pid", "main"):
        try:
            os.unlink(f"{STATE}/{unit}.{what}")
        except OSError:
            pass


def enabled(unit):
    return os.path.exists(f"{STATE}/{unit}.enabled")


def warn_if_changed(unit):
    try:
        with open(f"{STATE}/{unit}.loaded") as f:
            loaded = float(f.read())
        if os.stat(unit_file(unit)).st_mtime != loaded:
            print(f"Warning: The unit file, source configuration file or drop-ins of {unit} changed on disk. "
                  "Run 'systemctl daemon-reload' to reload units.", file=sys.stderr)
    except (OSError, ValueError):
        pass


def list_timers(patterns):
    """systemctl list-timers: the started timers, when each fires next and last, what it starts."""
    import fnmatch
    rows = []
    for f in sorted(os.listdir(STATE)) if os.path.isdir(STATE) else []:
        if not f.endswith(".timer.pid"):
            continue
        t = f[:-len(".pid")]
        if not pid_of(t) or (patterns and not any(fnmatch.fnmatch(t, p) for p in patterns)):
            continue
        conf = load(t) or {}

        def stamp(what):
            try:
                with open(f"{STATE}/{t}.{what}") as fh:
                    return time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(float(fh.read())))
            except (OSError, ValueError):
                return "-"
        rows.append((stamp("next"), stamp("last"), t, conf.get("Unit", t[:-len(".timer")] + ".service")))
    print(f"{'NEXT':<29} {'LAST':<29} {'UNIT':<28} ACTIVATES")
    for r in rows:
        print(f"{r[0]:<29} {r[1]:<29} {r[2]:<28} {r[3]}")
    print(f"\n{len(rows)} timers listed.")
    return 0


def main(argv=None):
    argv = list(argv if argv is not None else sys.argv[1:])
    now = "--now" in argv
    args = [a for a in argv if not a.startswith("-")]
    if not args:
        die("systemctl: this lab's systemctl needs a command", 1)
    cmd, units = args[0], [unit_name(u) for u in args[1:]]
    if cmd == "list-timers":
        return list_timers(args[1:])
    if cmd == "daemon-reload":
        for f in os.listdir(STATE) if os.path.isdir(STATE) else []:
            if f.endswith(".loaded") and os.path.exists(unit_file(f[:-7])):
                with open(f"{STATE}/{f}", "w") as out:
                    out.write(str(os.stat(unit_file(f[:-7])).st_mtime))
        return 0
    if not units:
        die(f"Too few arguments.", 1)
    code = 0
    for u in units:
        if u in BUILTIN and cmd in ("restart", "reload", "kill"):
            continue  # systemd-journald: the node's journal is the simulated disk's; its settings take effect at once
        if cmd == "start":
            code = start(u) or code
        elif cmd == "stop":
            stop(u)
        elif cmd == "restart":
            if load(u) is None:
                die(f"Failed to restart {u}: Unit {u} not found.", 5)
            warn_if_changed(u)
            stop(u)
            code = start(u) or code
        elif cmd == "enable":
            if load(u) is None:
                die(f"Failed to enable unit: Unit file {u} does not exist.", 1)
            os.makedirs(STATE, exist_ok=True)
            if not enabled(u):
                open(f"{STATE}/{u}.enabled", "w").close()
                print(f"Created symlink /etc/systemd/system/multi-user.target.wants/{u} → {unit_file(u)}.", file=sys.stderr)
            if now:
                code = start(u) or code
        elif cmd == "disable":
            if enabled(u):
                os.unlink(f"{STATE}/{u}.enabled")
                print(f"Removed \"/etc/systemd/system/multi-user.target.wants/{u}\".", file=sys.stderr)
            if now:
                stop(u)
        elif cmd == "is-active":
            st = state_of(u)
            print(st)
            code = code or (0 if st == "active" else 3)
        elif cmd == "is-failed":
            st = state_of(u)
            print(st)
            code = code or (0 if st == "failed" else 1)
        elif cmd == "reset-failed":
            if state_of(u) == "failed":
                os.unlink(f"{STATE}/{u}.state")
        elif cmd == "is-enabled":
            print("enabled" if enabled(u) else "disabled")
            code = code or (0 if enabled(u) else 1)
        elif cmd == "status":
            pid = pid_of(u)
            conf = load(u)
            if conf is None:
                print(f"Unit {u} could not be found.", file=sys.stderr)
                code = 4
                continue
            st = state_of(u)
            try:
                with open(f"{STATE}/{u}.result") as f:
                    result = f.read().strip()
            except OSError:
                result = ""
            main = open(f"{STATE}/{u}.main").read().strip() if os.path.exists(f"{STATE}/{u}.main") else "-"
            active = {"active": "active (running)", "activating": f"activating (auto-restart) ({result})",
                      "failed": f"failed (Result: {result})"}.get(st, st + " (dead)")
            print(f"● {u} - {conf.get('Description', u)}\n     Loaded: loaded ({unit_file(u)}; "
                  f"{'enabled' if enabled(u) else 'disabled'})\n     Active: {active}"
                  + (f"\n   Main PID: {main}" if st == "active" else ""))
            code = code or (0 if st == "active" else 3)
        else:
            die(f"Unknown command verb {cmd}.", 1)
    return code


if __name__ == "__main__":
    sys.exit(main())
