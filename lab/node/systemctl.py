"""systemctl for a lab node: units are /etc/systemd/system/NAME.service files; a started unit's
ExecStart runs as a detached process whose pid is kept in /var/lib/engine-lab/units/NAME.pid."""
import os
import subprocess
import sys

from lab.node.common import LAB, alive, die, terminate

UNITS = "/etc/systemd/system"
STATE = f"{LAB}/units"


def unit_name(arg):
    return arg if arg.endswith(".service") else arg + ".service"


def unit_file(unit):
    return os.path.join(UNITS, unit)


def load(unit):
    path = unit_file(unit)
    if not os.path.exists(path):
        return None
    conf = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith(("#", ";", "[")):
                k, v = line.split("=", 1)
                conf[k.strip()] = v.strip()
    return conf


def pid_of(unit):
    try:
        with open(f"{STATE}/{unit}.pid") as f:
            pid = int(f.read())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def start(unit):
    conf = load(unit)
    if conf is None:
        die(f"Failed to start {unit}: Unit {unit} not found.", 5)
    if pid_of(unit):
        return
    os.makedirs(STATE, exist_ok=True)
    os.makedirs("/var/log", exist_ok=True)
    log = open(f"/var/log/{unit[:-8]}.log", "ab")
    p = subprocess.Popen(conf["ExecStart"].split(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, close_fds=True)
    with open(f"{STATE}/{unit}.pid", "w") as f:
        f.write(str(p.pid))
    with open(f"{STATE}/{unit}.loaded", "w") as f:
        f.write(str(os.stat(unit_file(unit)).st_mtime))


def stop(unit):
    terminate(pid_of(unit))
    try:
        os.unlink(f"{STATE}/{unit}.pid")
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


def main(argv=None):
    args = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("-")]
    if not args:
        die("systemctl: this lab's systemctl needs a command", 1)
    cmd, units = args[0], [unit_name(u) for u in args[1:]]
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
        if cmd == "start":
            start(u)
        elif cmd == "stop":
            stop(u)
        elif cmd == "restart":
            if load(u) is None:
                die(f"Failed to restart {u}: Unit {u} not found.", 5)
            warn_if_changed(u)
            stop(u)
            start(u)
        elif cmd == "enable":
            if load(u) is None:
                die(f"Failed to enable unit: Unit file {u} does not exist.", 1)
            os.makedirs(STATE, exist_ok=True)
            if not enabled(u):
                open(f"{STATE}/{u}.enabled", "w").close()
                print(f"Created symlink /etc/systemd/system/multi-user.target.wants/{u} → {unit_file(u)}.", file=sys.stderr)
        elif cmd == "disable":
            if enabled(u):
                os.unlink(f"{STATE}/{u}.enabled")
                print(f"Removed \"/etc/systemd/system/multi-user.target.wants/{u}\".", file=sys.stderr)
        elif cmd == "is-active":
            active = pid_of(u) is not None
            print("active" if active else "inactive")
            code = code or (0 if active else 3)
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
            print(f"● {u} - {conf.get('Description', u)}\n     Loaded: loaded ({unit_file(u)}; "
                  f"{'enabled' if enabled(u) else 'disabled'})\n     Active: "
                  + (f"active (running)\n   Main PID: {pid}" if pid else "inactive (dead)"))
            code = code or (0 if pid else 3)
        else:
            die(f"Unknown command verb {cmd}.", 1)
    return code


if __name__ == "__main__":
    sys.exit(main())
