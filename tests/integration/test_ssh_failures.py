"""SSH faults against real OpenSSH servers the tests start: refused, unreachable and denied hosts, a
server killed mid-command, and dead peers that fail nothing (a blackholed link, a link dropped in a
network namespace, a frozen sshd), each bounded by the keepalive and left unknown in the journal."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab import sshd as sshlab  # noqa: E402
from lab.netfaults import BlackholeProxy, CoalescingProxy, ForgetfulProxy, TricklingProxy  # noqa: E402
from labtest import text_server  # noqa: E402
from test_ssh import ENGINE, SshTest  # noqa: E402


class TestFailures(SshTest):
    def test_refused_auth_failed_and_unreachable_are_words(self):
        port = sshlab.free_port()
        inv = self.inventory(self.node(port=port, name="closed") + self.node(user="no-such-user", name="denied")
                             + "ghost ansible_host=no-such-host.invalid ansible_port=22\n")
        self.ok(self.runbook("""
    local r, err = inv:host("closed"):exec("true")
    assert(r == nil and err == "refused", tostring(err))
    r, err = inv:host("denied"):exec("true")
    assert(r == nil and err == "auth failed", tostring(err))
    r, err = inv:host("ghost"):exec("true")
    assert(r == nil and err == "unreachable", tostring(err))
""", inv))

    def test_the_servers_line_and_its_key_exchange_in_one_segment(self):
        # The engine reads the server's identification line in one read (libssh2 asks a byte at a
        # time); what that read takes beyond the line is the key exchange's start, given back to
        # libssh2 before the socket is read again. Here both arrive together, every time.
        proxy = CoalescingProxy(self.sshd.port)
        try:
            t, b = self.sshd.pub()
            self.lab.trust(f"[127.0.0.1]:{proxy.port} {t} {b}\n")
            inv = self.inventory(self.node(port=proxy.port) + self.node(port=proxy.port, name="n2"))
            self.ok(self.runbook("""
    for _, name in ipairs({ "n1", "n2" }) do
      local r = assert(inv:host(name):exec("echo hi-" .. name))
      assert(r.code == 0 and r.stdout == "hi-" .. name .. "\\n", r.stdout)
    end
    print("BOTH OK")
""", inv))
            self.assertEqual(len(proxy.held), 2)  # both connections went through the coalescing
            self.assertTrue(all(v is None for v in proxy.held.values()))
        finally:
            proxy.close()

    def test_the_servers_bytes_in_small_pieces(self):
        # The engine tells libssh2 "nothing yet" without asking the kernel once the socket was found
        # empty, and reads again only after epoll says more came: here every read can find part of a
        # packet, and more always follows. Two commands on one connection (the second after the
        # session sat idle, its socket found empty), 289 KB of output, a key exchange in pieces.
        proxy = TricklingProxy(self.sshd.port)
        try:
            t, b = self.sshd.pub()
            self.lab.trust(f"[127.0.0.1]:{proxy.port} {t} {b}\n")
            self.ok(self.runbook("""
    local h = inv:host("n1")
    local r = assert(h:exec("seq 1 50000"))
    local want = {}
    for i = 1, 50000 do want[i] = tostring(i) end
    assert(r.code == 0 and r.stdout == table.concat(want, "\\n") .. "\\n", #r.stdout)
    time.sleep(0.3)
    r = assert(h:exec("echo second"))
    assert(r.code == 0 and r.stdout == "second\\n", r.stdout)
    print("PIECES OK")
""", self.inventory(self.node(port=proxy.port)), timeout=60))
            self.assertGreater(proxy.pieces, 100)
        finally:
            proxy.close()

    def test_a_connection_a_firewall_forgot_is_replaced_before_the_command_is_sent(self):
        # A stateful firewall dropped the idle connection: nothing told the engine, and its next
        # packet (the channel's opening, before any command) is answered with a reset. Nothing ran
        # on the node, so the engine sends the command on a new connection, once; a command running
        # when its connection goes is never sent again (test_sshd_killed_mid_command_...).
        proxy = ForgetfulProxy(self.sshd.port, forget_after=1.0)
        try:
            t, b = self.sshd.pub()
            self.lab.trust(f"[127.0.0.1]:{proxy.port} {t} {b}\n")
            out = self.ok(self.runbook("""
    ssh.configure { keepalive = 0 }  -- the engine's keepalives would keep the firewall's memory fresh
    local h = inv:host("n1")
    local first = assert(h:exec("echo $PPID"))
    sleep(1.5)
    local r, err, msg = h:exec("echo $PPID")
    print("after", r and r.code, r and r.stdout ~= first.stdout, err, msg)
""", self.inventory(self.node(port=proxy.port)), timeout=60))
            self.assertIn("after\t0\ttrue", out)
            self.assertEqual(proxy.resets, 1)
        finally:
            proxy.close()

    def test_file_operations_after_a_firewall_forgot_the_connection(self):
        # The same forgetting before each of the file operations: each opens its SFTP channel
        # first, so nothing reached the node when the reset came, and each runs on a new connection.
        proxy = ForgetfulProxy(self.sshd.port, forget_after=1.0)
        d = tempfile.mkdtemp(prefix="engine-forgotten-")  # the login user's to write in
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o1777)
        path = os.path.join(d, "forgotten.txt")
        try:
            t, b = self.sshd.pub()
            self.lab.trust(f"[127.0.0.1]:{proxy.port} {t} {b}\n")
            out = self.ok(self.runbook(f"""
    ssh.configure {{ keepalive = 0 }}
    local h = inv:host("n1")
    assert(h:exec("true"))
    sleep(1.5)
    local w, err, msg = h:write_file("{path}", "written after the reset\\n")
    print("write", w and w.bytes, err, msg)
    sleep(1.5)
    local text
    text, err, msg = h:read_file("{path}")
    print("read", text, err, msg)
    sleep(1.5)
    local st
    st, err, msg = h:stat("{path}")
    print("stat", st and st.size, err, msg)
""", self.inventory(self.node(port=proxy.port)), timeout=60))
            self.assertIn("write\t24\tnil", out)
            self.assertIn("read\twritten after the reset\n\tnil", out)
            self.assertIn("stat\t24\tnil", out)
            self.assertEqual(proxy.resets, 3)
            with open(path) as f:
                self.assertEqual(f.read(), "written after the reset\n")
            self.assertEqual(os.listdir(d), ["forgotten.txt"])  # no temporary file left beside it
        finally:
            proxy.close()

    def test_a_host_behind_a_jump_host_whose_session_a_firewall_forgot(self):
        # b's connection opens its channel on the jump host's session, idle since a's command: the
        # reset comes before anything of b's was sent, and b connects through a new jump session.
        # That new session's socket takes the old one's descriptor number while the old libssh2
        # session is still being freed (it closes its channels then): its writes must not reach
        # the new connection (before: two stray packets, and "Invalid SSH identification string").
        proxy = ForgetfulProxy(self.sshd.port, forget_after=1.0)
        try:
            t, b = self.sshd.pub()
            self.lab.trust(f"[127.0.0.1]:{proxy.port} {t} {b}\n")
            via = f"-o ProxyJump={sshlab.USER}@127.0.0.1:{proxy.port}"
            inv = self.inventory(self.node(name="a", extra=f"ansible_ssh_common_args='{via}'")
                                 + self.node(name="b", extra=f"ansible_ssh_common_args='{via}'"))
            out = self.ok(self.runbook("""
    ssh.configure { keepalive = 0 }
    assert(inv:host("a"):exec("true"))
    sleep(1.5)
    local r, err, msg = inv:host("b"):exec("echo behind the jump")
    print("b", r and r.stdout, err, msg)
""", inv, timeout=60))
            self.assertIn("b\tbehind the jump\n\tnil", out)
            self.assertEqual(proxy.resets, 1)
        finally:
            proxy.close()

    def test_a_tunnel_connection_after_a_firewall_forgot_the_session(self):
        # A tunnel's next client connection opens a channel on the forgotten session: the reset
        # comes before any of the client's bytes left, and the connection goes through a new session.
        web = text_server(lambda: b"hello through the tunnel")
        proxy = ForgetfulProxy(self.sshd.port, forget_after=1.0)
        try:
            t, b = self.sshd.pub()
            self.lab.trust(f"[127.0.0.1]:{proxy.port} {t} {b}\n")
            out = self.ok(self.runbook(f"""
    local http = require "engine.http"
    ssh.configure {{ keepalive = 0 }}
    local t <close> = assert(ssh.tunnel(inv:host("n1"), "127.0.0.1", {web.server_address[1]}))
    local url = "http://127.0.0.1:" .. t.port .. "/"
    print("first", assert(http.request {{ url = url, retries = 0 }}).body)
    sleep(1.5)
    local r, err, msg = http.request {{ url = url, retries = 0 }}
    print("after", r and r.body, err, msg)
""", self.inventory(self.node(port=proxy.port)), timeout=60))
            self.assertIn("first\thello through the tunnel", out)
            self.assertIn("after\thello through the tunnel\tnil", out)
            self.assertEqual(proxy.resets, 1)
        finally:
            proxy.close()
            web.shutdown()
            web.server_close()

    @unittest.skipUnless(shutil.which("strace"), "strace (scripts/setup test) is not installed")
    def test_waiting_for_the_socket_costs_one_system_call(self):
        # Each time libssh2 must wait for the server, the session's wait is a read asio tries once
        # and otherwise leaves on the descriptor's registration. A bare wait re-registered the
        # descriptor (epoll_ctl) every time, and libssh2 asked recv again back to back before it
        # (EAGAIN): 33 such calls a connection here before, 18 now.
        n = 20
        inv = self.inventory("".join(self.node(name=f"h{i:02d}") for i in range(n)))
        trace = os.path.join(self.lab.root, "syscalls.trace")
        self.ok(self.runbook("""
    local res = fleet.each(inv:group("all"), { at_once = 10 }, function(h)
      local r = assert(h:exec("true"))
      assert(r.code == 0)
    end)
    assert(res.ok == %d, res.ok)
""" % n, inv, wrap=["strace", "-f", "-o", trace, "-e", "trace=epoll_ctl,recvfrom,read"]))
        with open(trace) as f:
            lines = f.read().splitlines()
        ctl = sum(1 for ln in lines if "epoll_ctl(" in ln)
        futile = sum(1 for ln in lines if re.search(r"(recvfrom|read)\(.*= -1 EAGAIN", ln))
        connected = sum(1 for ln in lines if "recvfrom(" in ln or "read(" in ln)
        self.assertGreater(connected, n)  # the trace saw the sessions' reads
        self.assertLess((ctl + futile) / n, 24, f"{ctl} epoll_ctl and {futile} reads that found nothing for {n} connections")

    # A dead peer that fails nothing: the engine hears nothing back and says so, within
    # keepalive x keepalive_count, and the step that was running is left unknown, not failed.
    DEAD_PEER = """
    if p.arg == "configure" then ssh.configure { keepalive = 1, keepalive_count = 2 }
    elseif p.arg ~= "" then ssh.configure { config = p.arg } end
    step("long", function()
      local r, err, detail = inv:host("n1"):exec("echo START; sleep 120", { stream = true })
      print("ERR", err, detail)
      assert(r, err)
    end)
"""

    def dead_peer(self, port, fault, how, netns=None):
        # The interval and count, set each of the three ways a user can.
        extra, arg = "", "configure"
        if how == "common_args":
            extra, arg = 'ansible_ssh_common_args="-o ServerAliveInterval=1 -o ServerAliveCountMax=2"', ""
        elif how == "ssh_config":
            arg = os.path.join(self.lab.root, f"alive_config{time.monotonic_ns()}")
            with open(arg, "w") as f:
                f.write("Host *\n  ServerAliveInterval 1\n  ServerAliveCountMax 2\n")
        p = self.runbook(self.DEAD_PEER, self.inventory(self.node(port=port, extra=extra)), *(["-e", f"arg={arg}"] if arg else []),
                         wait=False, netns=netns)
        try:
            for _ in range(50):  # the run log comes first
                if "START" in p.stdout.readline():
                    break
            t0 = time.monotonic()
            fault()
            out, err = p.communicate(timeout=60)  # before the fix: the sleep's full 120 s, or forever
            elapsed = time.monotonic() - t0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 1, out + err)
        self.assertIn("ERR\tunreachable\tno answer from n1 for 2s (2 keepalives unanswered)", out)
        self.assertLess(elapsed, 30)
        run_id = re.search(r"run=(\S+)", out).group(1)
        show = subprocess.run([ENGINE, "show", run_id, "--state-dir", os.path.join(self.lab.root, "state")],
                              capture_output=True, text=True)
        self.assertRegex(show.stdout, r"unknown\s+-\s+long\s+running\s+started, no record of finishing")
        self.assertIn("step outcome unknown: a command's connection died while it ran", out)

    def test_a_blackholed_link_mid_command_is_unreachable_within_the_keepalive_bound(self):
        victim = sshlab.Sshd(self.lab.root, self.lab.keys, name=f"hole{time.monotonic_ns()}").start()
        proxy = BlackholeProxy(victim.port)
        try:
            t, b = victim.pub()
            self.lab.trust(f"[127.0.0.1]:{proxy.port} {t} {b}\n")
            self.dead_peer(proxy.port, proxy.cut, "common_args")
        finally:
            proxy.close()
            victim.stop()

    def test_a_link_dropped_in_a_network_namespace_mid_command_is_unreachable(self):
        # The engine and the node's sshd in a namespace of their own; its only link goes down.
        ns = f"engine-link-{os.getpid()}"
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        sshlab.run("ip", "netns", "add", ns)
        sshlab.run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        node = sshlab.Sshd(self.lab.root, self.lab.keys, name=f"link{time.monotonic_ns()}", netns=ns).start()
        try:
            self.lab.trust(node.known_hosts_line())
            self.dead_peer(node.port, lambda: sshlab.run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "down"),
                           "configure", netns=ns)
        finally:
            node.stop()
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def frozen_sshd(self, how):
        victim = sshlab.Sshd(self.lab.root, self.lab.keys, name=f"frozen{time.monotonic_ns()}").start()
        self.lab.trust(victim.known_hosts_line())
        frozen = []

        def freeze():  # the connection's own sshd processes, not the listener
            for pid in sshlab.descendants(victim.proc.pid, only="sshd"):
                os.kill(pid, signal.SIGSTOP)
                frozen.append(pid)
        try:
            self.dead_peer(victim.port, freeze, how)
            self.assertTrue(frozen)
        finally:
            for pid in frozen:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            victim.stop()

    def test_a_frozen_sshd_mid_command_is_unreachable_within_the_keepalive_bound(self):
        self.frozen_sshd("ssh_config")

    def test_keepalive_options_of_ssh_configure_bound_a_frozen_sshd_too(self):
        self.frozen_sshd("configure")

    def test_sshd_killed_mid_command_is_closed_and_not_retried(self):
        victim = sshlab.Sshd(self.lab.root, self.lab.keys, name=f"victim{time.monotonic_ns()}").start()
        try:
            self.lab.trust(victim.known_hosts_line())
            count = f"/tmp/engine-count-{os.getpid()}"
            if os.path.exists(count):
                os.remove(count)
            self.addCleanup(lambda: os.path.exists(count) and os.remove(count))
            p = self.runbook(f"""
    fleet.each(inv:group("all"), function(h)
      local r, err = h:exec("echo ran >> {count}; echo started; sleep 30")
      assert(r == nil and err == "closed", "expected closed, got " .. tostring(err))
      error("lost the connection mid-command: " .. err)
    end)
""", self.inventory(self.node(port=victim.port)), wait=False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not os.path.exists(count):
                time.sleep(0.05)
            time.sleep(0.2)
            victim.kill_all()
            out, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 1, out + err)
            self.assertIn("lost the connection mid-command: closed", out + err)
            with open(count) as f:
                self.assertEqual(f.read(), "ran\n")  # ran once, never re-run
            os.remove(count)
        finally:
            victim.stop()


if __name__ == "__main__":
    unittest.main()
