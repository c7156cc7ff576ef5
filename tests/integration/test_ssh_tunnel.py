"""SSH jump hosts and tunnels against real OpenSSH servers: a node in a network namespace of its
own, reached through ProxyJump chains and ProxyCommand, and tunnels to what listens only on its
loopback (split from test_ssh.py, whose SshTest base and runbook template it uses)."""
import os
import re
import socket
import time
import unittest
import urllib.request

from test_ssh import SshTest, sshlab


class TestJumpAndTunnel(SshTest):
    """A node in a network namespace of its own: what listens on its loopback is reachable only
    through it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ns = f"engt{os.getpid() % 100000}"
        cls.node_ns = sshlab.InetdNode(cls.lab.root, cls.lab.keys, cls.ns)
        cls.lab.trust(cls.node_ns.known_hosts_line())
        # A target sshd and a web server inside the namespace only.
        cls.inner = sshlab.Sshd(cls.lab.root, cls.lab.keys, name="inner", port=2222, netns=cls.ns).start()
        with open(os.path.join(cls.lab.root, "inner_kh"), "w") as f:
            pass
        cls.lab.trust(cls.inner.known_hosts_line())
        cls.www = os.path.join(cls.lab.root, "www")
        os.makedirs(cls.www)
        with open(os.path.join(cls.www, "health"), "w") as f:
            f.write("reachable only through the node\n")
        cls.web_port = 18080
        cls.web = cls.node_ns.run_in("python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", cls.www,
                                     str(cls.web_port))
        time.sleep(0.5)

    @classmethod
    def tearDownClass(cls):
        cls.web.kill()
        cls.web.wait()
        cls.inner.stop()
        cls.node_ns.stop()
        super().tearDownClass()

    def test_a_chain_of_two_jump_hosts(self):
        jumps = f"{sshlab.USER}@127.0.0.1:{self.sshd.port},{sshlab.USER}@127.0.0.1:{self.node_ns.port}"
        inv = (f"inner ansible_host=127.0.0.1 ansible_port=2222 ansible_user={sshlab.USER} "
               f"ansible_ssh_common_args='-o ProxyJump={jumps}'\n"
               f"direct ansible_host=127.0.0.1 ansible_port=2222 ansible_user={sshlab.USER}\n")
        out = self.ok(self.runbook("""
    local r = assert(inv:host("inner"):exec("/usr/bin/ip netns identify $$ || /bin/ip netns identify $$"))
    print("netns", r.stdout)
    local none, err = inv:host("direct"):exec("true")
    assert(none == nil and err == "refused", tostring(err))
""", self.inventory(inv)))
        self.assertIn(f"netns\t{self.ns}", out)

    def test_kubespray_style_proxycommand_bastion(self):
        cmd = f"ssh -W %h:%p -p {self.node_ns.port} {sshlab.USER}@127.0.0.1"
        inv = (f'inner ansible_host=127.0.0.1 ansible_port=2222 ansible_user={sshlab.USER} '
               f'ansible_ssh_common_args="-o ProxyCommand=\'{cmd}\'"\n')
        self.ok(self.runbook('assert(inv:host("inner"):exec("true"))', self.inventory(inv)))

    def test_a_tunnel_reaches_a_server_only_the_node_can_reach(self):
        with self.assertRaises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/health", timeout=2)
        inv = self.inventory(f"node ansible_host=127.0.0.1 ansible_port={self.node_ns.port} ansible_user={sshlab.USER}\n")
        p = self.runbook(f"""
    local t <close> = assert(ssh.tunnel(inv:host("node"), "127.0.0.1", {self.web_port}))
    print("TUNNEL " .. t.port)
    sleep(8)
""", inv, wait=False)
        port = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            m = re.search(r"TUNNEL (\d+)", line)
            if m:
                port = int(m.group(1))
                break
        self.assertIsNotNone(port, "the runbook never opened its tunnel")
        bodies = [urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10).read() for _ in range(3)]
        self.assertEqual(bodies, [b"reachable only through the node\n"] * 3)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, out + err)


    def test_a_tunnel_the_server_closed_while_the_client_holds_it_does_not_spin(self):
        # The web server answers and closes; the client keeps its end open without reading, as
        # curl's pooled connection to an etcd member that restarted does. The session's keepalive
        # replies then arrive with no read pending: the engine must process them, not wake for a
        # readable socket in a loop (it did: 100% of a core for as long as the client held on).
        inv = self.inventory(f"node ansible_host=127.0.0.1 ansible_port={self.node_ns.port} ansible_user={sshlab.USER}\n")
        p = self.runbook(f"""
    ssh.configure {{ keepalive = 1 }}
    local t <close> = assert(ssh.tunnel(inv:host("node"), "127.0.0.1", {self.web_port}))
    print("TUNNEL " .. t.port)
    sleep(9)
""", inv, wait=False)
        self.addCleanup(p.kill)
        port = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and port is None:
            m = re.search(r"TUNNEL (\d+)", p.stdout.readline())
            port = int(m.group(1)) if m else None
        self.assertIsNotNone(port, "the runbook never opened its tunnel")
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(c.close)
        c.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        got = b""
        while b"reachable only through the node" not in got:  # then the server closes; we do not
            chunk = c.recv(65536)
            self.assertTrue(chunk, f"the tunnel ended before the body: {got!r}")
            got += chunk
        time.sleep(3)  # keepalives (1 s) go out and their replies come back

        def cpu():
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        before = cpu()
        time.sleep(4)
        used = cpu() - before
        # Idle, the engine uses a few milliseconds here; spinning, it took all of the 4 s it could get.
        self.assertLess(used, 1.0, f"the engine used {used:.2f} s of CPU in 4 s with an idle tunnel")
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, out + err)


if __name__ == "__main__":
    unittest.main()
