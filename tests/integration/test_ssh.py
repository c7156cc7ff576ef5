"""SSH against real OpenSSH servers the tests start: exec, sudo, host keys, fan-out, a server killed
mid-command, SFTP (jump hosts and tunnels: test_ssh_tunnel.py). Each test runs a small runbook with
the built engine."""
import glob
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab import sshd as sshlab  # noqa: E402

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin/engine"))

TEMPLATE = """
local ssh = require "engine.ssh"
local fleet = require "engine.fleet"
local time = require "engine.time"
return runbook {
  name = "ssh-test",
  params = { kh = { type = "string" }, key = { type = "string" }, policy = { type = "string", default = "strict" },
             arg = { type = "string", default = "", secret = true } },
  run = function(p, inv)
    ssh.configure { known_hosts = p.kh, identity_files = { p.key }, host_key_policy = p.policy }
%s
  end,
}
"""


class SshTest(sshlab.LabCase):
    def inventory(self, text):
        fd, path = tempfile.mkstemp(dir=self.lab.root, suffix=".ini")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def node(self, user=sshlab.USER, port=None, name="n1", extra=""):
        return f"{name} ansible_host=127.0.0.1 ansible_port={port or self.sshd.port} ansible_user={user} {extra}\n"

    def runbook(self, body, inventory, *extra, kh=None, timeout=120, wait=True, netns=None, wrap=()):
        fd, path = tempfile.mkstemp(dir=self.lab.root, suffix=".lua")
        with os.fdopen(fd, "w") as f:
            f.write(TEMPLATE % body)
        cmd = [ENGINE, "run", path, "-i", inventory, "-e", f"kh={kh or self.lab.known_hosts}",
               "-e", f"key={self.lab.keys.key}", "--state-dir", os.path.join(self.lab.root, "state"), *extra]
        if netns:  # the engine inside a network namespace of the test's own
            cmd = ["ip", "netns", "exec", netns] + cmd
        cmd = list(wrap) + cmd  # e.g. strace, to count the engine's system calls
        if not wait:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def ok(self, r):
        self.assertEqual(r.returncode, 0, f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
        return r.stdout


class TestExec(SshTest):
    def test_exit_codes_signals_and_output(self):
        out = self.ok(self.runbook("""
    local h = inv:host("n1")
    local r = assert(h:exec("echo out; echo err >&2; exit 3"))
    assert(r.code == 3 and r.stdout == "out\\n" and r.stderr == "err\\n" and r.signal == nil, r.stdout)
    r = assert(h:exec("kill -KILL $$"))
    assert(r.signal == "KILL" and r.code == -1, tostring(r.signal))
    r = assert(h:exec("cat; echo \\"[$A]\\"; pwd", { stdin = "from stdin\\n", env = { A = "x 'y'" }, cwd = "/tmp" }))
    assert(r.stdout == "from stdin\\n[x 'y']\\n/tmp\\n", r.stdout)
    print("exec ok")
""", self.inventory(self.node())))
        self.assertIn("exec ok", out)

    def test_env_values_reach_the_command_but_no_process_argv_on_the_node(self):
        secret = f"sentinel-ENV-{os.getpid()}"
        seen, stop = [], threading.Event()

        def scan():  # the node is this machine: every process's argv, as `ps` shows it to anyone
            while not stop.is_set():
                for pid in os.listdir("/proc"):
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            if secret.encode() in f.read():
                                seen.append(pid)
                    except OSError:
                        pass
        t = threading.Thread(target=scan, daemon=True)
        t.start()
        try:
            out = self.ok(self.runbook(f"""
    local h = inv:host("n1")
    local env = {{ TOKEN = "{secret}", ODD = "a 'b' \\"c\\" $d `e`\\nline2" }}
    local r = assert(h:exec("sleep 1; printf '%s|%s|' \\"$TOKEN\\" \\"$ODD\\"; cat", {{ env = env, stdin = "payload\\n" }}))
    assert(r.stdout == "{secret}|a 'b' \\"c\\" $d `e`\\nline2|payload\\n", r.stdout)
    r = assert(h:exec("sleep 1; echo \\"$TOKEN\\"", {{ env = env, sudo = true, timeout = 30 }}))
    assert(r.stdout == "{secret}\\n", r.stdout)
    print("env ok")
""", self.inventory(self.node())))
        finally:
            stop.set()
            t.join()
        self.assertIn("env ok", out)
        self.assertEqual(seen, [], "the secret was in a process's argv")

    def test_streamed_output_obeys_max_output_and_binary_is_summed_up(self):
        out = self.ok(self.runbook("""
    local r = assert(inv:host("n1"):exec("echo first; head -c 3000 /dev/urandom; echo; yes line | head -n 2000000",
      { stream = true, max_output = 200000, timeout = 120 }))
    print("TRUNCATED", r.truncated, #r.stdout)
""", self.inventory(self.node()), timeout=300))
        self.assertIn("TRUNCATED\ttrue\t200000", out)
        self.assertIn("[n1] first", out)
        self.assertRegex(out, r"\[n1\] \[\d+ bytes of binary output\]")
        self.assertRegex(out, r"\[n1\] \[\d+ more bytes not shown: max_output\]")
        self.assertLess(out.count("[n1] line"), 200000 // 5 + 1)  # at most max_output of lines
        run_log = max(glob.glob(os.path.join(self.lab.root, "state", "runs", "*", "run.log")), key=os.path.getmtime)
        # 14 MB of output (~150 MB as log lines): the log holds the 200 KB shown, as ~40,000 JSON lines.
        self.assertLess(os.path.getsize(run_log), 5_000_000)

    def test_10mb_stdout_interleaved_with_10mb_stderr_does_not_hang(self):
        out = self.ok(self.runbook("""
    local r = assert(inv:host("n1"):exec(
      "head -c 10485760 /dev/zero | tr '\\\\0' o & head -c 10485760 /dev/zero | tr '\\\\0' e >&2; wait", { timeout = 60 }))
    assert(#r.stdout == 10485760 and #r.stderr == 10485760, #r.stdout .. " " .. #r.stderr)
    assert(not r.stdout:find("e", 1, true) and not r.stderr:find("o", 1, true))
    print("sizes", #r.stdout, #r.stderr)
""", self.inventory(self.node())))
        self.assertIn("sizes\t10485760\t10485760", out)

    def test_max_output_truncates_and_says_so(self):
        self.ok(self.runbook("""
    local r = assert(inv:host("n1"):exec("seq 1 100000", { max_output = 1000 }))
    assert(#r.stdout == 1000 and r.truncated == true and r.code == 0)
""", self.inventory(self.node())))

    def test_a_streamed_1000_line_output_arrives_in_order_with_the_host_prefix(self):
        out = self.ok(self.runbook("""
    local r = assert(inv:host("n1"):exec("seq 1 1000", { stream = true }))
    assert(r.code == 0)
""", self.inventory(self.node())))
        lines = [int(m.group(1)) for m in re.finditer(r"INFO  \[n1\] (\d+)$", out, re.M)]
        self.assertEqual(lines, list(range(1, 1001)))

    def test_a_timeout_ends_sleep_100(self):
        t0 = time.monotonic()
        out = self.ok(self.runbook("""
    local t0 = time.monotonic()
    local tag = "engine-timeout-" .. math.random(1, 1e9)
    local r, err = inv:host("n1"):exec("sleep 100 && echo " .. tag, { timeout = 1 })
    assert(r == nil and err == "timeout", tostring(err))
    print(string.format("waited %.1f", time.monotonic() - t0))
    -- the node's own deadline stops the command too (the bracket keeps pgrep from finding itself)
    sleep(2.5)
    local pattern = "[" .. tag:sub(1, 1) .. "]" .. tag:sub(2)
    local ps = assert(inv:host("n1"):exec("pgrep -f '" .. pattern .. "' || true"))
    assert(ps.stdout == "", "still running: " .. ps.stdout)
""", self.inventory(self.node())))
        waited = float(re.search(r"waited ([\d.]+)", out).group(1))
        self.assertLess(waited, 5)  # a bound on a hang, not a speed claim: the timeout is 1 s
        self.assertLess(time.monotonic() - t0, 60)

    def test_timeout_wrapper_cuts_an_exec_short(self):
        self.ok(self.runbook("""
    local r, err = timeout(0.5, function() return inv:host("n1"):exec("sleep 5") end)
    assert(r == nil and err == "timeout", tostring(err))
""", self.inventory(self.node())))

    def test_dry_run_does_not_run_commands_unless_read_only(self):
        marker = os.path.join("/tmp", f"engine-dry-{os.getpid()}")
        out = self.ok(self.runbook(f"""
    local r = assert(inv:host("n1"):exec("touch {marker}"))
    assert(r.dry_run == true)
    local ro = assert(inv:host("n1"):exec("echo looked", {{ read_only = true }}))
    assert(ro.stdout == "looked\\n")
""", self.inventory(self.node()), "--dry-run"))
        self.assertFalse(os.path.exists(marker))
        self.assertIn("dry-run: would run", out)


class TestTimeline(SshTest):
    def test_each_exec_is_on_the_reports_timeline(self):
        state = os.path.join(self.lab.root, "state")
        out = self.ok(self.runbook("""
    local h = inv:host("n1")
    assert(h:exec("sleep 0.2; exit 3"))
    assert(h:exec("true"))
""", self.inventory(self.node())))
        run = re.search(r" run=(\S+)", out).group(1)
        rep = json.load(open(os.path.join(state, "runs", run, "report.json")))
        execs = [s for s in rep["spans"] if s["kind"] == "exec"]
        self.assertEqual([(s["host"], s["name"], s["outcome"]) for s in execs],
                         [("n1", "sleep 0.2; exit 3", "exit 3"), ("n1", "true", "exit 0")])
        self.assertLessEqual(execs[0]["end"], execs[1]["start"] + 0.001)
        r = subprocess.run([ENGINE, "show", run, "--state-dir", state], capture_output=True, text=True, timeout=30)
        self.assertRegex(r.stdout, r"n1 +2 commands")


class TestSudo(SshTest):
    def test_sudo_without_a_password(self):
        self.ok(self.runbook("""
    local r = assert(inv:host("n1"):exec("id -un", { sudo = true }))
    assert(r.stdout == "root\\n", r.stdout)
    r = assert(inv:host("n1"):exec("id -un", { sudo_user = "nobody" }))
    assert(r.stdout == "nobody\\n", r.stdout)
""", self.inventory(self.node())))

    def test_sudo_with_a_password_keeps_it_out_of_every_output(self):
        r = self.runbook(f"""
    local r = assert(inv:host("n1"):exec("id -un; cat", {{ sudo_password = p.arg, stdin = "payload\\n", stream = true }}))
    assert(r.stdout == "root\\npayload\\n", r.stdout)
    local none, err = inv:host("n1"):exec("id -un", {{ sudo = true }})
    assert(none == nil and err == "sudo failed", tostring(err))
    local bad, err2 = inv:host("n1"):exec("id -un", {{ sudo_password = "wrong" }})
    assert(bad == nil and err2 == "sudo failed", tostring(err2))
    print("sudo ok")
""", self.inventory(self.node(user=sshlab.PW_USER)), "-e", f"arg={sshlab.PW}", "--log-level", "debug")
        out = self.ok(r)
        self.assertIn("sudo ok", out)
        self.assertNotIn(sshlab.PW, out + r.stderr)
        for root, _, files in os.walk(os.path.join(self.lab.root, "state")):
            for f in files:
                with open(os.path.join(root, f), errors="replace") as fh:
                    self.assertNotIn(sshlab.PW, fh.read(), f)


    def test_inventory_become_runs_commands_and_writes_under_sudo_as_ansible_does(self):
        # ansible_become in the inventory: a command without its own sudo option runs as root (or
        # ansible_become_user), sudo = false opts out, files are written by root.
        path = f"/tmp/engine-become-{os.getpid()}"
        self.addCleanup(lambda: os.path.exists(path) and os.remove(path))
        out = self.ok(self.runbook(f"""
    local h = inv:host("n1")
    assert(assert(h:exec("id -un")).stdout == "root\\n")
    assert(assert(h:exec("id -un", {{ sudo = false }})).stdout == "{sshlab.USER}\\n")
    assert(assert(h:exec("id -un", {{ sudo_user = "nobody" }})).stdout == "nobody\\n")
    assert(h:write_file("{path}", "x", {{ mode = "0600" }}))
    assert(assert(inv:host("n2"):exec("id -un")).stdout == "nobody\\n")
    print("become ok")
""", self.inventory(self.node(extra="ansible_become=yes") +
                    self.node(name="n2", extra="ansible_become=True ansible_become_user=nobody"))))
        self.assertIn("become ok", out)
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (0, 0o600))

    def test_become_password_is_used_by_every_sudo_and_never_shown(self):
        # ansible_become_password (a secret, never in any output) serves the become default and an
        # explicit sudo = true alike; without it, sudo -n fails with the stable word.
        inv = self.inventory(self.node(user=sshlab.PW_USER, extra=f"ansible_become=true ansible_become_password={sshlab.PW}") +
                             self.node(user=sshlab.PW_USER, name="n2", extra="ansible_become=true"))
        r = self.runbook("""
    assert(assert(inv:host("n1"):exec("id -un")).stdout == "root\\n")
    assert(assert(inv:host("n1"):exec("id -un", { sudo = true })).stdout == "root\\n")
    local none, err = inv:host("n2"):exec("id -un")
    assert(none == nil and err == "sudo failed", tostring(err))
    print("become password ok")
""", inv, "--log-level", "debug")
        self.assertIn("become password ok", self.ok(r))
        self.assertNotIn(sshlab.PW, r.stdout + r.stderr)

    def test_a_become_method_other_than_sudo_is_an_error_naming_it(self):
        r = self.runbook("""
    inv:host("n1"):exec("id -un")
""", self.inventory(self.node(extra="ansible_become=true ansible_become_method=su")))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("host 'n1': ansible_become_method 'su' is not supported", r.stdout + r.stderr)
        r = self.runbook("""
    inv:host("n1"):exec("id -un")
""", self.inventory(self.node(extra="ansible_become=perhaps")))
        self.assertIn("ansible_become 'perhaps' is not a boolean", r.stdout + r.stderr)


class TestHostKeys(SshTest):
    def test_unknown_key_is_refused_under_strict(self):
        empty = os.path.join(self.lab.root, "empty_known_hosts")
        open(empty, "w").close()
        out = self.ok(self.runbook("""
    local r, err, detail = inv:host("n1"):exec("true")
    assert(r == nil and err == "host key unknown", tostring(err))
    print(detail)
""", self.inventory(self.node()), kh=empty))
        self.assertIn("is not in", out)
        self.assertEqual(open(empty).read(), "")

    def test_changed_key_is_refused_even_with_accept_new(self):
        other = sshlab.Sshd(self.lab.root, self.lab.keys, name=f"other{time.monotonic_ns()}")
        t, b = other.pub()  # a different key, claimed for our server's address
        wrong = os.path.join(self.lab.root, "wrong_known_hosts")
        with open(wrong, "w") as f:
            f.write(f"[127.0.0.1]:{self.sshd.port} {t} {b}\n")
        for policy in ("strict", "accept-new"):
            self.ok(self.runbook("""
    local r, err = inv:host("n1"):exec("true")
    assert(r == nil and err == "host key changed", tostring(err))
""", self.inventory(self.node()), "-e", f"policy={policy}", kh=wrong))
        with open(wrong) as f:
            self.assertEqual(len(f.readlines()), 1)

    def test_accept_new_records_a_key_once(self):
        fresh = os.path.join(self.lab.root, "fresh_known_hosts")
        for _ in range(2):
            self.ok(self.runbook("""
    assert(inv:host("n1"):exec("true"))
""", self.inventory(self.node()), "-e", "policy=accept-new", kh=fresh))
        with open(fresh) as f:
            lines = f.readlines()
        self.assertEqual(lines, [self.sshd.known_hosts_line()])

    def test_hashed_known_hosts_entries_match(self):
        hashed = os.path.join(self.lab.root, "hashed_known_hosts")
        with open(hashed, "w") as f:
            f.write(self.sshd.known_hosts_line())
        subprocess.run(["ssh-keygen", "-H", "-f", hashed], check=True, capture_output=True)
        self.assertTrue(open(hashed).read().startswith("|1|"))
        self.ok(self.runbook('assert(inv:host("n1"):exec("true"))', self.inventory(self.node()), kh=hashed))

    def test_policy_off_connects_and_warns(self):
        empty = os.path.join(self.lab.root, "off_known_hosts")
        open(empty, "w").close()
        out = self.ok(self.runbook('assert(inv:host("n1"):exec("true"))', self.inventory(self.node()), "-e", "policy=off", kh=empty))
        self.assertIn("host key not checked (policy off)", out)


class TestFanout(SshTest):
    def test_200_aliases_of_one_sshd_with_at_once_64(self):
        inv = "".join(self.node(name=f"alias{i:03d}") for i in range(200))
        out = self.ok(self.runbook("""
    local res = fleet.each(inv:group("all"), { at_once = 64 }, function(h)
      local r = assert(h:exec("echo " .. h.name))
      assert(r.stdout == h.name .. "\\n")
    end)
    print("fanout ok", res.ok)
""", self.inventory(inv), timeout=300))
        self.assertIn("fanout ok\t200", out)

    def test_an_idle_session_is_closed_and_the_next_call_reconnects(self):
        # $PPID of a command is its session's sshd process: the same while the session lives.
        out = self.ok(self.runbook("""
    local h = inv:host("n1")
    local function session() return assert(h:exec("echo $PPID")).stdout end
    ssh.configure { idle_timeout = "1s", keepalive = 0.3 }  -- keepalives do not count as use
    local first = session()
    sleep(0.3)
    print("reused", session() == first)
    -- Each command's end restarts the idle clock: used every 0.6 s for 3 s, never idle for 1 s.
    local busy = true
    for _ = 1, 5 do
      sleep(0.6)
      busy = busy and session() == first
    end
    print("kept while used", busy)
    sleep(2.5)
    print("reconnected", session() ~= first)
    ssh.configure { idle_timeout = 0 }  -- 0: kept to the end of the run (for sessions made from now on)
    sleep(2.5)
    local kept = session()
    sleep(2.5)
    print("kept", session() == kept)
""", self.inventory(self.node()), timeout=60))
        for want in ("reused\ttrue", "kept while used\ttrue", "reconnected\ttrue", "kept\ttrue"):
            self.assertIn(want, out)


    def test_sessions_closed_for_idleness_give_their_memory_back(self):
        # 300 hosts, 64 at a time: kept to the end of the run, all 300 sessions' memory (libssh2's
        # ~52 KB structure each, their buffers) is live at once; closed 0.05 s after each command,
        # a closed one's is freed for the next host's, so the peak stays near 64 sessions' worth.
        inv = self.inventory("".join(self.node(name=f"alias{i:03d}") for i in range(300)))
        body = """
    ssh.configure { idle_timeout = tonumber(p.arg) }
    local res = fleet.each(inv:group("all"), { at_once = 64 }, function(h) assert(h:exec("true")) end)
    print("ok", res.ok)
"""
        peak = ("import resource,subprocess,sys;p=subprocess.run(sys.argv[1:]);"
                "sys.stderr.write('peak %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);sys.exit(p.returncode)")
        rss = {}
        for idle in ("60", "0.05"):
            r = self.runbook(body, inv, "-e", f"arg={idle}", wrap=[sys.executable, "-c", peak], timeout=300)
            self.assertIn("ok\t300", self.ok(r))
            rss[idle] = int(re.search(r"peak (\d+)", r.stderr).group(1)) / 1024
        self.assertLess(rss["0.05"], rss["60"] - 6, f"peak RSS in MB, by idle_timeout: {rss}")

    def test_a_session_the_server_closed_while_idle_is_replaced(self):
        # The server ends an idle session (its sshd process killed 2.2 s after the command: as a
        # reboot, sshd's ClientAlive limits or a firewall's idle timeout do). The next call runs on
        # a new connection, with the server's keepalive answers read meanwhile (keepalive = 0.3: one
        # a second, libssh2's least) and without any.
        out = self.ok(self.runbook("""
    for name, keepalive in pairs({ n1 = 0.3, n2 = 0 }) do
      local h = inv:host(name)
      ssh.configure { keepalive = keepalive }  -- for the connections made from now on: this host's
      local first = assert(h:exec("echo $PPID; (sleep 2.2; kill -TERM $PPID) >/dev/null 2>&1 </dev/null &"))
      sleep(3.5)
      local r, err, msg = h:exec("echo $PPID")
      print("after", keepalive, r and r.code, r and r.stdout ~= first.stdout, err, msg)
    end
""", self.inventory(self.node() + self.node(name="n2")), timeout=60))
        self.assertIn("after\t0.3\t0\ttrue", out)
        self.assertIn("after\t0\t0\ttrue", out)


class TestAuthAndTransport(SshTest):
    def key(self, kind, passphrase="", fmt=None):
        path = os.path.join(self.lab.root, f"extra_{kind}_{len(passphrase)}_{fmt or 'openssh'}")
        if not os.path.exists(path):
            args = ["-t", kind] + (["-b", "3072"] if kind == "rsa" else []) + (["-m", fmt] if fmt else [])
            sshlab.run("ssh-keygen", "-q", *args, "-N", passphrase, "-f", path)
            with open(self.lab.keys.authorized, "a") as f, open(path + ".pub") as pub:
                f.write(pub.read())
        return path

    def test_a_server_offering_only_weak_crypto_is_refused_before_authentication(self):
        log = os.path.join(self.lab.root, f"weak{time.monotonic_ns()}.log")
        weak = sshlab.Sshd(self.lab.root, self.lab.keys, name=f"weak{time.monotonic_ns()}", kex="diffie-hellman-group1-sha1",
                           extra="Ciphers 3des-cbc\nMACs hmac-md5", log_level="DEBUG1", log_file=log).start()
        self.addCleanup(weak.stop)
        self.lab.trust(weak.known_hosts_line())
        marker = os.path.join(self.lab.root, f"weak-ran-{time.monotonic_ns()}")
        out = self.ok(self.runbook(f"""
    local r, err, detail = inv:host("n1"):exec("touch {marker}")
    assert(r == nil, "a command ran over weak crypto")
    print("ERR", err, detail)
""", self.inventory(self.node(port=weak.port))))
        self.assertIn("ERR\tweak crypto\trefused 127.0.0.1:", out)
        self.assertIn("The engine accepts kex curve25519-sha256", out)
        self.assertIn("The server offers: kex diffie-hellman-group1-sha1", out)
        self.assertIn("ciphers 3des-cbc; macs hmac-md5", out)
        self.assertFalse(os.path.exists(marker))
        with open(log) as f:
            text = f.read()
        self.assertIn("no matching", text)  # sshd saw the negotiation fail...
        self.assertNotIn("userauth", text)  # ...and no authentication was ever attempted
        # The per-host opt-in: allowed, and warned about on every connection.
        out = self.ok(self.runbook(f"""
    local r = assert(inv:host("n1"):exec("echo legacy ok"))
    print(r.stdout)
""", self.inventory(self.node(port=weak.port, extra="engine_ssh_legacy_crypto=true"))))
        self.assertIn("legacy ok", out)
        self.assertIn("legacy SSH cryptography allowed for this host", out)

    def test_rsa_keys_sign_with_rsa_sha2_512(self):
        # OpenSSH 8.8+ refuses ssh-rsa (SHA-1) signatures; libssh2 1.10 makes only those itself.
        # OpenSSH's own format, then PEM (PKCS#1) plain and encrypted, then encrypted PKCS#8.
        for fmt, passphrase in [(None, ""), ("PEM", ""), ("PEM", "correct horse"), ("PKCS8", "correct horse")]:
            key = self.key("rsa", passphrase, fmt)
            out = self.ok(self.runbook(f"""
    ssh.configure {{ identity_files = {{ "{key}" }}, passphrase = p.arg }}
    local r = assert(inv:host("n1"):exec("echo via rsa"))
    print(r.stdout)
""", self.inventory(self.node()), "-e", f"arg={passphrase or 'none'}"))
            self.assertIn("via rsa", out, (fmt, passphrase))  # sshd 9.2 accepts no ssh-rsa: this was SHA-2

    def test_an_encrypted_openssh_format_rsa_key_is_refused_with_the_reason(self):
        key = self.key("rsa", "correct horse")
        out = self.ok(self.runbook(f"""
    ssh.configure {{ identity_files = {{ "{key}" }}, passphrase = "correct horse" }}
    local r, err, detail = inv:host("n1"):exec("true")
    assert(r == nil and err == "auth failed", tostring(err))
    print(detail)
""", self.inventory(self.node())))
        self.assertIn("signed only with ssh-rsa/SHA-1, which OpenSSH 8.8+ refuses: add it to ssh-agent", out)

    def test_ecdsa_and_passphrase_protected_keys(self):
        for kind, passphrase in [("ecdsa", ""), ("ed25519", "correct horse")]:
            key = self.key(kind, passphrase)
            self.ok(self.runbook(f"""
    ssh.configure {{ identity_files = {{ "{key}" }}, passphrase = p.arg }}
    local r = assert(inv:host("n1"):exec("echo via {kind}"))
    assert(r.stdout == "via {kind}\\n")
""", self.inventory(self.node()), "-e", f"arg={passphrase or 'none'}"))

    def test_a_wrong_passphrase_is_auth_failed(self):
        key = self.key("ed25519", "correct horse")
        self.ok(self.runbook(f"""
    ssh.configure {{ identity_files = {{ "{key}" }}, passphrase = "wrong" }}
    local r, err = inv:host("n1"):exec("true")
    assert(r == nil and err == "auth failed", tostring(err))
""", self.inventory(self.node())))

    def test_ssh_agent(self):
        sock = os.path.join(self.lab.root, "agent.sock")
        agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = dict(os.environ, SSH_AUTH_SOCK=sock, SSH_ASKPASS_REQUIRE="never")
        fd, path = tempfile.mkstemp(dir=self.lab.root, suffix=".lua")
        with os.fdopen(fd, "w") as f:
            f.write(TEMPLATE % """
    ssh.configure { identity_files = { "/nonexistent/key" } }
    assert(inv:host("n1"):exec("true"))
""")
        try:
            sshlab.wait_for(lambda: os.path.exists(sock))
            # The agent holding only an RSA key (it must sign with rsa-sha2-512), then only an ed25519 key.
            for key in (self.key("rsa", "correct horse"), self.lab.keys.key):
                subprocess.run(["ssh-add", "-D"], env=env, check=True, capture_output=True)
                subprocess.run(["ssh-add", key], env=env, check=True, capture_output=True, text=True,
                               input="correct horse\n" if "rsa" in key else "")
                r = subprocess.run([ENGINE, "run", path, "-i", self.inventory(self.node()), "-e", f"kh={self.lab.known_hosts}",
                                    "-e", "key=/nonexistent/key", "--state-dir", os.path.join(self.lab.root, "state")],
                                   capture_output=True, text=True, timeout=60, env=env)
                self.ok(r)
        finally:
            agent.kill()
            agent.wait()

    def test_password_from_the_inventory(self):
        inv = self.inventory(self.node(user=sshlab.PW_USER, extra=f"ansible_password={sshlab.PW}"))
        self.ok(self.runbook("""
    ssh.configure { identity_files = { "/nonexistent/key" } }
    local r = assert(inv:host("n1"):exec("id -un"))
    assert(r.stdout == "enginepw\\n")
""", inv))

    def test_a_refused_key_then_the_password_and_a_refusal_that_names_what_was_tried(self):
        # Keys are offered before the server is asked which methods it takes (that question costs a
        # round trip on every host): a refused key must still fall through to the password, and a
        # refusal must still name the server's methods and each key tried.
        stranger = os.path.join(self.lab.root, "stranger_ed25519")  # in no authorized_keys
        if not os.path.exists(stranger):
            sshlab.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger)
        self.ok(self.runbook(f"""
    ssh.configure {{ identity_files = {{ "{stranger}" }} }}
    local r = assert(inv:host("n1"):exec("id -un"))
    assert(r.stdout == "enginepw\\n", r.stdout)
""", self.inventory(self.node(user=sshlab.PW_USER, extra=f"ansible_password={sshlab.PW}"))))
        out = self.ok(self.runbook(f"""
    ssh.configure {{ identity_files = {{ "{stranger}" }} }}
    local r, err, detail = inv:host("n1"):exec("true")
    assert(r == nil and err == "auth failed", tostring(err))
    print(detail)
""", self.inventory(self.node())))
        self.assertIn("refused every method (server offers publickey,password)", out)
        self.assertIn(f"key {stranger} as ssh-ed25519 (refused)", out)

    def test_ipv6_loopback(self):
        v6 = sshlab.Sshd(self.lab.root, self.lab.keys, name=f"v6{time.monotonic_ns()}", extra="ListenAddress ::1")
        v6.start()
        try:
            self.lab.trust(v6.known_hosts_line("::1"))
            self.ok(self.runbook("""
    local r = assert(inv:host("n1"):exec("echo $SSH_CONNECTION"))
    assert(r.stdout:find("::1", 1, true), r.stdout)
""", self.inventory(f"n1 ansible_host=::1 ansible_port={v6.port} ansible_user={sshlab.USER}\n")))
        finally:
            v6.stop()

    def test_a_server_that_never_answers_times_out(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts into the backlog, never speaks SSH
        try:
            port = silent.getsockname()[1]
            self.ok(self.runbook("""
    ssh.configure { connect_timeout = 1 }
    local t0 = time.monotonic()
    local r, err = inv:host("n1"):exec("true")
    assert(r == nil and err == "timeout", tostring(err))
    assert(time.monotonic() - t0 < 20)
""", self.inventory(self.node(port=port))))
        finally:
            silent.close()


if __name__ == "__main__":
    unittest.main()
