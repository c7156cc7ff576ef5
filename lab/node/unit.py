"""What systemd is to one started unit, for a lab node: `python3 -m lab.node.unit NAME.service` runs
the unit's ExecStart with its Environment=/EnvironmentFile=, User=/Group= and LimitNOFILE=, output
appended to /var/log/NAME.log; Type=notify waits for READY=1 on $NOTIFY_SOCKET (etcd sends it once
it serves); Restart=always (or on-failure after a failed exit) starts it again after RestartSec=,
and gives up as systemd does after StartLimitBurst= (5) starts in StartLimitIntervalSec= (10s).
SIGTERM stops the service (TERM, then KILL after TimeoutStopSec=, 10s) and this supervisor.

State, for systemctl: units/NAME.state ("activating", "active", "deactivating", "failed"),
units/NAME.main (the service's pid), units/NAME.result (how it last ended)."""
import os
import pwd
import grp
import resource
import signal
import socket
import subprocess
import sys
import time

from lab.node.common import LAB
from lab.node.unitfile import STATE, environment, last, parse, put, seconds
from lab.node.wake import Wake, exits

class Supervisor:
    def __init__(self, unit):
        self.unit = unit
        self.conf = parse(unit) or {}
        self.stopping = False
        self.child = None

    def spawn(self):
        conf = self.conf
        env = environment(conf)
        kw = {}
        user, group = last(conf, "User"), last(conf, "Group")
        if user:
            pw = pwd.getpwnam(user)
            kw["user"], kw["group"], kw["extra_groups"] = pw.pw_uid, pw.pw_gid, []
            env.update(HOME=pw.pw_dir, USER=user, LOGNAME=user)
        if group:
            kw["group"] = grp.getgrnam(group).gr_gid
        limit = last(conf, "LimitNOFILE")
        if limit:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            n = hard if limit == "infinity" else min(int(limit), hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))
        notify = None
        if last(conf, "Type") == "notify":
            path = f"{STATE}/{self.unit}.notify"
            if os.path.exists(path):
                os.unlink(path)
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind(path)
            os.chmod(path, 0o777)  # the service may run as another user
            env["NOTIFY_SOCKET"] = path
        log = open(f"/var/log/{self.unit[:-len('.service')]}.log", "ab")
        argv = last(conf, "ExecStart").split()
        pinned = f"{LAB}/faults/etcd-new-version-fails"
        if self.unit == "etcd.service" and os.path.exists(pinned):
            with open(pinned) as f:
                keep = f.read().strip()
            have = subprocess.run([argv[0], "--version"], capture_output=True, text=True).stdout
            if f"etcd Version: {keep}\n" not in have:
                argv = ["/bin/sh", "-c", "echo '{\"level\":\"fatal\",\"msg\":\"the lab fault etcd-new-version-fails: "
                        f"only etcd {keep} starts on this node\"}}' >&2; exit 1"]
        if self.unit == "etcd.service" and os.path.exists(f"{LAB}/faults/etcd-unit-fails"):
            # The lab's fault: etcd under systemd exits at once, as one whose certificate key it
            # cannot read does.
            argv = ["/bin/sh", "-c", "echo '{\"level\":\"fatal\",\"msg\":\"listener failed\",\"error\":"
                    "\"open /etc/kubernetes/pki/etcd/server.key: permission denied\"}' >&2; exit 1"]
        self.child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      cwd=last(conf, "WorkingDirectory", "/"), close_fds=True, **kw)
        log.close()
        put(self.unit, "main", self.child.pid)
        return notify

    def wait_ready(self, notify):
        """Type=notify: active on READY=1; exited first: not."""
        notify.settimeout(0.2)
        deadline = time.monotonic() + seconds(last(self.conf, "TimeoutStartSec"), 90.0)
        while time.monotonic() < deadline and not self.stopping:
            try:
                msg = notify.recv(4096).decode(errors="replace")
                if "READY=1" in msg.split("\n"):
                    return True
            except socket.timeout:
                pass
            if self.child.poll() is not None:
                return False
        return False

    def stop_child(self):
        if self.child and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(seconds(last(self.conf, "TimeoutStopSec"), 10.0))
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()

    def run(self):
        def on_term(*_):
            self.stopping = True
        signal.signal(signal.SIGTERM, on_term)
        wake = Wake()
        restart = last(self.conf, "Restart", "no")
        delay = seconds(last(self.conf, "RestartSec"), 0.1)
        burst = int(last(self.conf, "StartLimitBurst", "5"))
        window = seconds(last(self.conf, "StartLimitIntervalSec"), 10.0)
        starts = []
        while not self.stopping:
            now = time.monotonic()
            starts = [t for t in starts if now - t < window] + [now]
            if len(starts) > burst:
                put(self.unit, "result", "start-limit-hit")
                put(self.unit, "state", "failed")
                return 1
            put(self.unit, "state", "activating")
            try:
                notify = self.spawn()
            except (OSError, KeyError, ValueError) as e:
                put(self.unit, "result", f"exec failed: {e}")
                put(self.unit, "state", "failed")
                return 1
            ready = last(self.conf, "Type") != "oneshot"  # a oneshot is activating until it exits
            if notify is not None:
                ready = self.wait_ready(notify)
                notify.close()
            if ready and not self.stopping:
                put(self.unit, "state", "active")
            ends = exits(self.child.pid)
            while ends is not None and not self.stopping and self.child.poll() is None:
                wake.wait(None, [ends])  # the service exits or this supervisor is told to stop
            if ends is not None:
                os.close(ends)
            if self.stopping:
                break
            code = self.child.returncode
            put(self.unit, "result", f"exit-code status={code}" if code >= 0 else f"signal {-code}")
            if restart == "always" or (restart == "on-failure" and code != 0):
                put(self.unit, "state", "activating")  # auto-restart
                end = time.monotonic() + delay
                while not self.stopping and time.monotonic() < end:
                    wake.wait(end - time.monotonic())
                continue
            put(self.unit, "state", "failed" if code != 0 else "inactive")
            return 0
        put(self.unit, "state", "deactivating")
        self.stop_child()
        put(self.unit, "result", "success")
        put(self.unit, "state", "inactive")
        return 0


def next_calendar(spec, now):
    """The next time (epoch) an OnCalendar= spec fires after now: "*-*-* HH:MM[:SS]", "HH:MM[:SS]",
    "daily", "hourly", and any of these after a weekday ("Mon *-*-* 03:00:00": weekly), the forms
    the lab's runbooks write; None for another form."""
    import datetime
    spec = spec.strip()
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    if spec[:3] in days and spec[3:4] == " ":
        want, t = days.index(spec[:3]), now
        for _ in range(8):  # the next of the daily times that falls on the weekday
            t = next_calendar(spec[4:], t)
            if t is None or datetime.datetime.fromtimestamp(t).weekday() == want:
                return t
        return None
    t = datetime.datetime.fromtimestamp(now)
    if spec == "hourly":
        n = t.replace(minute=0, second=0, microsecond=0) + datetime.timedelta(hours=1)
        return n.timestamp()
    if spec == "daily":
        spec = "00:00:00"
    if spec.startswith("*-*-* "):
        spec = spec[6:]
    parts = spec.split(":")
    if not 2 <= len(parts) <= 3 or not all(x.isdigit() for x in parts):
        return None
    h, m, sec = int(parts[0]), int(parts[1]), int(parts[2]) if len(parts) == 3 else 0
    n = t.replace(hour=h, minute=m, second=sec, microsecond=0)
    if n.timestamp() <= now:
        n += datetime.timedelta(days=1)
    return n.timestamp()


class Timer:
    """A started .timer: starts its Unit= (default: the same name's .service) at OnCalendar= times,
    or every OnUnitActiveSec=; units/NAME.timer.next and .last say when, for list-timers."""

    def __init__(self, unit):
        self.unit = unit
        self.conf = parse(unit) or {}
        self.stopping = False

    def run(self):
        def on_term(*_):
            self.stopping = True
        signal.signal(signal.SIGTERM, on_term)
        wake = Wake()
        target = last(self.conf, "Unit", self.unit[:-len(".timer")] + ".service")
        cal = last(self.conf, "OnCalendar")
        every = seconds(last(self.conf, "OnUnitActiveSec") or last(self.conf, "OnActiveSec"), None)
        put(self.unit, "state", "active")
        while not self.stopping:
            now = time.time()
            nxt = next_calendar(cal, now) if cal else (now + every if every else None)
            if nxt is None:
                put(self.unit, "result", f"unsupported OnCalendar={cal}")
                put(self.unit, "state", "failed")
                return 1
            put(self.unit, "next", nxt)
            while not self.stopping and time.time() < nxt:
                wake.wait(min(nxt - time.time(), 60.0))  # bounded: the wall clock may be set
            if self.stopping:
                break
            put(self.unit, "last", time.time())
            subprocess.run(["systemctl", "start", target], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        put(self.unit, "state", "inactive")
        return 0


def main():
    unit = sys.argv[1]
    os.makedirs(STATE, exist_ok=True)
    sys.exit((Timer(unit) if unit.endswith(".timer") else Supervisor(unit)).run())


if __name__ == "__main__":
    main()
