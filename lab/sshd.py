"""Real OpenSSH servers for the integration tests, on 127.0.0.1 and in network namespaces the
tests create. Every server is started by the test and stopped by it."""
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

USER = "enginetest"      # passwordless sudo; shell /bin/sh (root's shell start-up is slow here)
PW_USER = "enginepw"     # sudo asks for a password
PW = "pw-Sentinel-93"


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def password_is(hashed, password):
    """True when the shadow hash is this password's (False when it cannot tell: set it again)."""
    if not hashed.startswith("$"):
        return False
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # noqa: the standard library's, until Python 3.13
        return crypt.crypt(password, hashed) == hashed
    except (ImportError, OSError):
        return False


def ensure_users():
    """The test users, their passwords and sudo rights, changed only where they differ: labs start
    while others run (the suite's, an operator's), and a sudoers file rewritten in place is empty
    for a moment, when a sudo on a running lab's node asks for a password. One starter at a time:
    on a fresh machine two that both find no user would both run useradd, and the second fails."""
    with open("/run/engine-test-users.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _ensure_users()


def _ensure_users():
    for user in (USER, PW_USER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            run("useradd", "-m", "-s", "/bin/sh", user)
    with open("/etc/shadow") as f:
        hashes = {line.split(":")[0]: line.split(":")[1] for line in f if line.count(":") >= 2}
    # A fresh account is locked ('!'), and sshd without PAM refuses locked accounts even for keys.
    if hashes.get(USER) != "*":
        run("usermod", "-p", "*", USER)
    if not password_is(hashes.get(PW_USER, ""), PW):
        subprocess.run(["chpasswd"], input=f"{PW_USER}:{PW}\n", text=True, check=True)
    rules = f"{USER} ALL=(ALL) NOPASSWD: ALL\n{PW_USER} ALL=(ALL) ALL\nDefaults:{PW_USER} !lecture\n"
    path = "/etc/sudoers.d/engine-tests"
    try:
        with open(path) as f:
            if f.read() == rules and os.stat(path).st_mode & 0o777 == 0o440:
                return
    except OSError:
        pass
    # Written beside it and renamed: sudo reads the old rules or the new, never half. (sudo skips
    # files whose names contain a dot, so the temporary one is never read.)
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(rules)
    os.chmod(tmp, 0o440)
    os.replace(tmp, path)


def descendants(root, only=None):
    """Every process below `root` (optionally only those whose command name is `only`)."""
    children = {}
    names = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
        names[int(d)] = name
    out, frontier = [], [root]
    while frontier:
        for c in children.get(frontier.pop(), []):
            out.append(c)
            frontier.append(c)
    return [p for p in out if only is None or names.get(p) == only]


def wait_for(cond, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise RuntimeError("condition never held")


def poll(cond, limit, step=0.1):
    """cond()'s first true value within `limit` seconds, else None (for the test to assert on)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


class Keys:
    """A client key (ed25519) and its authorized_keys, shared by the servers of a test."""

    def __init__(self, root):
        self.dir = os.path.join(root, "client")
        os.makedirs(self.dir)
        self.key = os.path.join(self.dir, "id_ed25519")
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key)
        self.authorized = os.path.join(self.dir, "authorized_keys")
        shutil.copy(self.key + ".pub", self.authorized)
        os.chmod(self.dir, 0o755)
        os.chmod(self.authorized, 0o644)


# Runs sshd under a child subreaper. When a session ends, OpenSSH's privileged monitor
# ("sshd: user [priv]") exits without reaping the session's process ("sshd: user@notty", which ran
# the channel and the user's shell), so that process, and the CPU it spent, would go to pid 1 and
# escape the listener's reaped-children CPU. As the subreaper, this wrapper reaps it instead.
REAPER = r"""
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
listener = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda n, f: os.kill(listener, n))
while True:
    try:
        if os.wait()[0] == listener:
            break
    except ChildProcessError:
        break
"""


def reaped_cpu(pid):
    """CPU seconds of the children `pid` has reaped (cutime + cstime)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


class Sshd:
    """One sshd on 127.0.0.1:port with its own host key; `known_hosts_line` vouches for it.
    With reaper=True it runs under REAPER, so `cpu()` can count all of its connections' CPU."""

    def __init__(self, root, keys, name="sshd", port=None, netns=None, extra="", reaper=False,
                 kex="curve25519-sha256", log_level="ERROR", log_file=None):
        self.reaper = reaper
        self.log_file = log_file
        self.listener = None
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.port = port or free_port()
        self.netns = netns
        self.host_key = os.path.join(self.dir, "host_ed25519")
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.host_key)
        self.config = os.path.join(self.dir, "sshd_config")
        with open(self.config, "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.dir}/sshd.pid
AuthorizedKeysFile {keys.authorized}
UsePAM no
StrictModes no
UseDNS no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowTcpForwarding yes
MaxStartups 1100:30:1200
MaxSessions 64
LoginGraceTime 60
KexAlgorithms {kex}
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel {log_level}
{extra}
""")
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = None

    def pub(self):
        with open(self.host_key + ".pub") as f:
            t, b = f.read().split()[:2]
        return t, b

    def known_hosts_line(self, host="127.0.0.1"):
        t, b = self.pub()
        return f"[{host}]:{self.port} {t} {b}\n"

    def start(self):
        cmd = ["/usr/sbin/sshd", "-D", "-e", "-f", self.config] + (["-E", self.log_file] if self.log_file else [])
        if self.reaper:
            cmd = [sys.executable, "-c", REAPER] + cmd
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        self.proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, start_new_session=True)
        if not self.netns:
            wait_port("127.0.0.1", self.port)
        else:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                r = subprocess.run(["ip", "netns", "exec", self.netns, "sh", "-c",
                                    f"exec 3<>/dev/tcp/127.0.0.1/{self.port}"], capture_output=True,
                                   executable="/bin/bash")
                if r.returncode == 0:
                    break
                time.sleep(0.05)
        self.listener = descendants(self.proc.pid, only="sshd")[0] if self.reaper else self.proc.pid
        return self

    def cpu(self):
        """CPU seconds spent so far by the connections this sshd's listener forked and that have
        ended. Without the reaper, the sessions' own processes are missing (see REAPER)."""
        total = reaped_cpu(self.listener)
        if self.reaper:
            total += reaped_cpu(self.proc.pid)
        return total

    def kill_all(self):
        """SIGKILL the listener and every sshd it forked for a connection (they call setsid, so
        the listener's process group does not hold them); the commands they ran are left alone."""
        if self.proc:
            for pid in [self.proc.pid] + descendants(self.proc.pid, only="sshd"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
            self.proc = None

    stop = kill_all


class InetdNode:
    """An sshd in a network namespace of its own, reached through a root-namespace port: each
    accepted connection runs `sshd -i` inside the namespace. Whatever listens on the namespace's
    loopback is reachable only through this node."""

    def __init__(self, root, keys, ns):
        self.ns = ns
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        run("ip", "netns", "add", ns)
        run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        self.sshd = Sshd(root, keys, name=f"inetd-{ns}", port=22)
        self.port = free_port()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        self.children = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def known_hosts_line(self):
        t, b = self.sshd.pub()
        return f"[127.0.0.1]:{self.port} {t} {b}\n"

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            p = subprocess.Popen(["ip", "netns", "exec", self.ns, "/usr/sbin/sshd", "-i", "-e", "-f", self.sshd.config],
                                 stdin=conn.fileno(), stdout=conn.fileno(), stderr=subprocess.DEVNULL)
            conn.close()
            self.children.append(p)

    def run_in(self, *cmd):
        return subprocess.Popen(["ip", "netns", "exec", self.ns, *cmd], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self):
        self.stopping = True
        self.listener.close()
        for p in self.children:
            if p.poll() is None:
                p.kill()
            p.wait()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


class Lab:
    """A temporary directory with client keys, servers and a known_hosts file."""

    def __init__(self):
        ensure_users()
        self.root = tempfile.mkdtemp(prefix="engine-ssh-")
        os.chmod(self.root, 0o755)
        self.keys = Keys(self.root)
        self.known_hosts = os.path.join(self.root, "known_hosts")
        open(self.known_hosts, "w").close()
        self.servers = []

    def sshd(self, **kw):
        s = Sshd(self.root, self.keys, name=f"sshd{len(self.servers)}", **kw).start()
        self.servers.append(s)
        return s

    def trust(self, line):
        with open(self.known_hosts, "a") as f:
            f.write(line)

    def stop(self):
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class LabCase(unittest.TestCase):
    """A test class with one Lab and one trusted sshd, shared by its tests."""

    @classmethod
    def setUpClass(cls):
        cls.lab = Lab()
        cls.sshd = cls.lab.sshd()
        cls.lab.trust(cls.sshd.known_hosts_line())

    @classmethod
    def tearDownClass(cls):
        cls.lab.stop()
