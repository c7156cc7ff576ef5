"""The engine resolves a host as OpenSSH does: for configs with Include (globs, conditional inside a
block), Match (host after HostName, originalhost, user, localuser, negations, exec through ssh -G),
wildcards and negated Host patterns, first-value-wins and ProxyJump chains, `engine inventory --ssh`
gives the same hostname, port, user, identity files, jump hops and host-key settings as `ssh -G`.
An option the engine cannot honour is an error naming it."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin/engine"))
HERE = os.path.dirname(os.path.abspath(__file__))
HOME = os.path.expanduser("~")

CONFIG = """# An Include before any Host line applies to every host; inside a block, only to that block's.
Include {d}/extra/*.conf
# first value wins, wildcards, negations
Host first-wins
    Port 1111
Host first-*
    Port 2222
    User second
Host web-*
    User deploy
    Port 2201
    Include {d}/web.conf
Match host db-* user admin
    Port 2300
    IdentityFile {d}/keys/admin
Match originalhost alias-a
    HostName 10.9.9.9
Host 10.9.9.9
    Port 2999
Match host 10.9.9.9
    User viahostname
Match !localuser nobody-at-all user special
    IdentitiesOnly yes
    UserKnownHostsFile {d}/kh1 {d}/kh2
Host bastion
    HostName 192.0.2.1
    User jumper
    Port 2022
Host gw2
    HostName 192.0.2.2
Host inner
    ProxyJump bastion,admin@gw2:2200
Host cond-*
    Include {d}/cond.conf
    ServerAliveInterval 5
Host !skip* *.internal
    Port 2444
    StrictHostKeyChecking accept-new
Host *
    ServerAliveInterval 15
    ServerAliveCountMax 4
    ConnectTimeout 7
"""
EXTRA = """Host alias-b
    HostName %h.example.com
    HostKeyAlias bee
"""
COND = """Port 2555
Host cond-x
    User cx
"""
INVENTORY = """[all]
web-1
db-1 ansible_user=admin
db-2
alias-a
alias-b
inner
x.internal
skip.internal
first-wins
first-other
cond-x
cond-y
plain
special ansible_user=special
web-2 ansible_port=2400
"""


def ssh_g(cfg, host, user=None, port=None):
    cmd = ["ssh", "-G", "-F", cfg]
    if user:
        cmd += ["-l", user]
    if port:
        cmd += ["-p", str(port)]
    r = subprocess.run(cmd + [host], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        k, _, v = line.partition(" ")
        out.setdefault(k, []).append(v)
    return out


def expand(p):
    return HOME + p[1:] if p.startswith("~/") else p


class OpenSshCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="engine-ssh-G-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.makedirs(f"{self.dir}/extra")
        self.cfg = self.write("config", CONFIG.format(d=self.dir))
        self.write("extra/10-b.conf", EXTRA)
        self.write("cond.conf", COND)
        self.write("web.conf", "IdentityFile {d}/keys/web\nHostKeyAlias webs\n".format(d=self.dir))
        self.inv = self.write("hosts.ini", INVENTORY)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def engine(self, cfg=None):
        r = subprocess.run([ENGINE, "inventory", "-i", self.inv, "--ssh", "--ssh-config", cfg or self.cfg],
                           capture_output=True, text=True, timeout=60)
        return r

    def assertSameAsOpenSsh(self, cfg):
        r = self.engine(cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        ours = json.loads(r.stdout)
        defaults = ssh_g("/dev/null", "plain")
        for line in INVENTORY.splitlines()[1:]:
            words = line.split()
            host = words[0]
            hv = dict(w.split("=", 1) for w in words[1:])
            g = ssh_g(cfg, host, hv.get("ansible_user"), hv.get("ansible_port"))
            e = ours[host]
            got = {"hostname": e["hostname"], "port": e["port"], "user": e["user"]}
            want = {"hostname": g["hostname"][0], "port": int(g["port"][0]), "user": g["user"][0]}
            if g["identityfile"] != defaults["identityfile"]:  # set by the config: the same files, in order
                got["identityfile"], want["identityfile"] = e["identityfile"], [expand(f) for f in g["identityfile"]]
            if g.get("userknownhostsfile") != defaults.get("userknownhostsfile"):
                got["known"] = e["knownhostsfiles"][:len(g["userknownhostsfile"][0].split())]
                want["known"] = g["userknownhostsfile"][0].split()
            got["identitiesonly"], want["identitiesonly"] = e["identitiesonly"], g["identitiesonly"][0] == "yes"
            got["hostkeyalias"], want["hostkeyalias"] = e["hostkeyalias"], g.get("hostkeyalias", [""])[0]
            strict = {"true": "strict", "ask": "strict", "false": "off", "accept-new": "accept-new"}[g["stricthostkeychecking"][0]]
            got["strict"], want["strict"] = e["stricthostkeychecking"], strict
            got["alive"], want["alive"] = e.get("serveraliveinterval", 0), float(g["serveraliveinterval"][0])
            got["timeout"], want["timeout"] = e["connecttimeout"], float(g["connecttimeout"][0]) if g["connecttimeout"][0] != "none" else 10.0
            # Each hop of ProxyJump resolved through the config as OpenSSH resolves it.
            hops = []
            for hop in (g.get("proxyjump", ["none"])[0].split(",") if g.get("proxyjump", ["none"])[0] != "none" else []):
                user, _, rest = hop.rpartition("@")
                name, _, port = rest.partition(":")
                hg = ssh_g(cfg, name, user or None, port or None)
                hops.append(f"{hg['user'][0]}@{hg['hostname'][0]}:{hg['port'][0]}")
            got["jumps"], want["jumps"] = e["proxyjump"], hops
            self.assertEqual(got, want, host)
        return ours


class TestSameAsSshG(OpenSshCase):
    def test_include_match_wildcards_first_value_and_jumps(self):
        ours = self.assertSameAsOpenSsh(self.cfg)
        # The cases this exists for, spelled out: an Included file's port, Match host after HostName,
        # a conditional Include, a two-hop ProxyJump.
        self.assertEqual(ours["alias-b"]["hostname"], "alias-b.example.com")
        self.assertEqual((ours["alias-a"]["hostname"], ours["alias-a"]["user"], ours["alias-a"]["port"]), ("10.9.9.9", "viahostname", 22))
        self.assertEqual((ours["cond-x"]["user"], ours["cond-x"]["port"], ours["cond-y"]["port"]), ("cx", 2555, 2555))
        self.assertEqual(ours["inner"]["proxyjump"], ["jumper@192.0.2.1:2022", "admin@192.0.2.2:2200"])
        self.assertEqual(ours["db-1"]["port"], 2300)
        self.assertEqual((ours["web-1"]["hostkeyalias"], ours["db-2"]["hostkeyalias"]), ("webs", ""))

    def test_match_exec_is_evaluated_by_openssh_itself(self):
        cfg = self.write("exec.config", f"Match exec \"test %h = db-2\"\n    Port 2777\n" + CONFIG.format(d=self.dir))
        ours = self.assertSameAsOpenSsh(cfg)
        self.assertEqual((ours["db-2"]["port"], ours["db-1"]["port"]), (2777, 2300))


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"), "a mount namespace: root and unshare")
class TestDefaultFiles(OpenSshCase):
    def test_the_users_config_then_the_system_config_as_ssh_reads_them(self):
        # In a mount namespace of the test's own: ~/.ssh/config and /etc/ssh/ssh_config are files of
        # this test (the machine's stay untouched); the engine reads both, in OpenSSH's order.
        user = self.write("user.cfg", "Host sys-*\n    Port 2100\n")
        system = self.write("system.cfg", f"Include {self.dir}/sysd/*.conf\nHost *\n    User fromsystem\n    Port 2200\n")
        os.makedirs(f"{self.dir}/sysd")
        self.write("sysd/a.conf", "Host sys-b\n    HostName b.example\n")
        inv = self.write("sys.ini", "sys-a\nsys-b\nother\n")
        home = os.path.expanduser("~")
        script = f"""set -e
mount --make-rprivate /
mkdir -p {home}/.ssh && mount -t tmpfs none {home}/.ssh && cp {user} {home}/.ssh/config
mount --bind {system} /etc/ssh/ssh_config
{ENGINE} inventory -i {inv} --ssh > {self.dir}/ours.json
for h in sys-a sys-b other; do ssh -G $h > {self.dir}/$h.G; done
"""
        r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "HOME": home})
        self.assertEqual(r.returncode, 0, r.stderr)
        ours = json.load(open(f"{self.dir}/ours.json"))
        for h in ("sys-a", "sys-b", "other"):
            g = dict(line.split(" ", 1) for line in open(f"{self.dir}/{h}.G").read().splitlines())
            self.assertEqual((ours[h]["hostname"], ours[h]["port"], ours[h]["user"]),
                             (g["hostname"], int(g["port"]), g["user"]), h)
        self.assertEqual((ours["sys-a"]["port"], ours["other"]["port"], ours["sys-b"]["hostname"]), (2100, 2200, "b.example"))


class TestRefused(OpenSshCase):
    def test_an_option_the_engine_cannot_honour_is_an_error_naming_it(self):
        cfg = self.write("cert.config", "Host db-*\n    CertificateFile ~/.ssh/id_ed25519-cert.pub\n")
        r = self.engine(cfg)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("host 'db-1': the ssh config sets CertificateFile for it, which the engine cannot honour", r.stderr)

    def test_an_unknown_match_criterion_names_the_file_and_line(self):
        cfg = self.write("bad.config", "Host a\n    Port 1\nMatch hots x\n    Port 2\n")
        r = self.engine(cfg)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"{cfg}:3:1: Match criterion 'hots' is not one OpenSSH knows", r.stderr)


if __name__ == "__main__":
    unittest.main()
