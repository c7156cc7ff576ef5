"""etcd primitives against a real 3-member etcd 3.4 cluster with TLS and client-cert auth."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package
from lab import etcd as etcdlab  # noqa: E402

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin/engine"))
HAVE_ETCD = shutil.which("etcd") is not None and shutil.which("etcdctl") is not None

TEMPLATE = """
local etcd = require "engine.etcd"
local time = require "engine.time"
return runbook {
  name = "etcd-test",
  params = { dir = { type = "string" }, endpoints = { type = "list" }, arg = { type = "string", default = "" } },
  run = function(p, inv)
    etcd.configure { endpoints = p.endpoints, ca_file = p.dir .. "/ca.crt", cert_file = p.dir .. "/client.crt",
      key_file = p.dir .. "/client.key" }
%s
  end,
}
"""


@unittest.skipUnless(HAVE_ETCD, "etcd-server and etcd-client are not installed")
class TestEtcd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = etcdlab.EtcdCluster()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="engine-etcd-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_lua(self, body):
        path = os.path.join(self.tmp, f"t{time.monotonic_ns()}.lua")
        with open(path, "w") as f:
            f.write(TEMPLATE % body)
        return path

    def run_lua(self, body, endpoints=None, arg=""):
        path = self.write_lua(body)
        return subprocess.run([ENGINE, "run", path, "-e", f"dir={self.cluster.dir}",
                               "-e", "endpoints=" + ",".join(endpoints or self.cluster.endpoints), "-e", f"arg={arg}",
                               "--state-dir", os.path.join(self.tmp, "state")], capture_output=True, text=True, timeout=300)

    def ok(self, r):
        self.assertEqual(r.returncode, 0, f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
        return r.stdout

    def test_1_status_members_health_keys(self):
        out = self.ok(self.run_lua("""
    local st = assert(etcd.status())
    assert(st.version:match("^3%.4"), st.version)
    assert(type(st.member_id) == "string" and type(st.cluster_id) == "string" and st.db_size > 0)
    local members = assert(etcd.members())
    assert(#members == 3)
    for _, m in ipairs(members) do print("MEMBER", m.name, m.id, m.client_urls[1]) end
    local h = assert(etcd.cluster_health())
    assert(h.healthy, table.concat(h.problems, "; "))
    assert(etcd.members_match({ "m1", "m2", "m3" }))
    local ok, word, why = etcd.members_match({ "m1", "m2", "cp3" })
    assert(not ok and word == "mismatch", word); print(why)
    assert(etcd.put("/engine/run/step", "drained"))
    assert(etcd.put("/engine/run/node", "w1"))
    assert(etcd.get("/engine/run/step") == "drained")
    local all = assert(etcd.get("/engine/run/", { prefix = true }))
    assert(all["/engine/run/node"] == "w1")
    assert(etcd.delete("/engine/run/", { prefix = true }) == 2)
    local none, err = etcd.get("/engine/run/step")
    assert(none == nil and err == "not found")
    assert(#assert(etcd.alarms()) == 0)
    assert(etcd.compact(st.revision))
"""))
        ids = [l.split("\t")[2] for l in out.splitlines() if "MEMBER" in l]
        self.assertTrue(all(i.isdigit() for i in ids))
        self.assertTrue(any(int(i) > 2 ** 63 for i in ids) or all(len(i) > 10 for i in ids))  # kept as strings, exactly
        listed = self.cluster.etcdctl("member", "list", "-w", "json")
        want = sorted(str(m["ID"]) for m in json.loads(listed.stdout)["members"])
        self.assertEqual(sorted(ids), want)
        self.assertIn("no member named cp3", out)
        self.assertIn("member m3", out)

    def test_1b_a_read_only_runbook_reads_but_writes_nothing(self):
        path = self.write_lua("""
    assert(etcd.status())
    etcd.put("/engine/ro", "x")""")
        with open(path) as f:
            text = f.read().replace('name = "etcd-test",', 'name = "etcd-test", read_only = true,')
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([ENGINE, "run", path, "-e", f"dir={self.cluster.dir}", "-e",
                            "endpoints=" + ",".join(self.cluster.endpoints), "--state-dir", os.path.join(self.tmp, "state")],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"t\d+\.lua:12: etcd.put: refused, the runbook etcd-test is declared read_only")
        self.assertEqual(self.cluster.etcdctl("get", "/engine/ro").stdout, "")

    def test_2_snapshot_of_50000_keys_passes_etcdctl_snapshot_status(self):
        self.cluster.fill(50000)
        path = os.path.join(self.tmp, "snap.db")
        out = self.ok(self.run_lua(f"""
    local r = assert(etcd.snapshot(nil, "{path}"))
    print("SNAP", r.size, r.sha256, r.revision)
"""))
        _, size, sha, rev = [l for l in out.splitlines() if "SNAP" in l][0].split("\t")
        self.assertEqual(int(size), os.path.getsize(path))
        import hashlib
        self.assertEqual(hashlib.sha256(open(path, "rb").read()).hexdigest(), sha)
        st = self.cluster.etcdctl("snapshot", "status", path, "-w", "json")
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertGreaterEqual(json.loads(st.stdout)["totalKey"], 50000)
        self.assertFalse(os.path.exists(path + ".part"))

    def test_2b_no_connection_to_a_member_is_kept_once_its_answer_is_in(self):
        # An idle connection (HTTP/2) left open to a member kept its stop waiting a second for the
        # engine to read etcd's GOAWAY, at every member a runbook restarts: none may stay.
        path = os.path.join(self.tmp, "snap.db")
        p = subprocess.Popen([ENGINE, "run", self.write_lua(f"""
    assert(etcd.status())
    assert(etcd.cluster_health().healthy)
    assert(etcd.put("/engine-test/keepalive", "x"))
    assert(etcd.get("/engine-test/keepalive"))
    assert(etcd.snapshot(nil, "{path}"))
    print("CALLS DONE")
    sleep(60)
"""), "-e", f"dir={self.cluster.dir}", "-e", "endpoints=" + ",".join(self.cluster.endpoints),
                              "--state-dir", os.path.join(self.tmp, "state")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in p.stdout:
                if "CALLS DONE" in line:
                    break
            ports = {int(e.rsplit(":", 1)[1]) for e in self.cluster.endpoints}
            ss = subprocess.run(["ss", "-Htnp", "state", "established"], capture_output=True, text=True).stdout
            held = [l for l in ss.splitlines() if f"pid={p.pid}," in l and int(l.split()[3].rsplit(":", 1)[1]) in ports]
            self.assertIsNone(p.poll(), "the run ended before it was looked at")
            self.assertEqual(held, [], "the engine keeps connections to etcd members open")
        finally:
            p.kill()
            p.wait()

    def test_3_a_cut_snapshot_stream_leaves_no_file(self):
        proxy = etcdlab.CuttingProxy(self.cluster.client_ports[0], limit=300_000)
        try:
            path = os.path.join(self.tmp, "cut.db")
            out = self.ok(self.run_lua(f"""
    local r, err, msg = etcd.snapshot("https://127.0.0.1:{proxy.port}", "{path}")
    assert(r == nil, "a cut stream gave a snapshot")
    print("ERR", err, msg)
"""))
            self.assertIn("ERR\tcut\tthe snapshot stream was cut after", out)
            self.assertEqual(os.listdir(self.tmp), [p for p in os.listdir(self.tmp) if not p.startswith("cut.db")])
        finally:
            proxy.stop()

    def test_3b_a_stalled_snapshot_stream_times_out_and_leaves_no_file(self):
        proxy = etcdlab.CuttingProxy(self.cluster.client_ports[0], limit=800_000, stall=True)
        try:
            path = os.path.join(self.tmp, "stalled.db")
            t0 = time.monotonic()
            out = self.ok(self.run_lua(f"""
    etcd.configure {{ idle_timeout = 2 }}
    local r, err, msg = etcd.snapshot("https://127.0.0.1:{proxy.port}", "{path}")
    assert(r == nil, "a stalled stream gave a snapshot")
    print("ERR", err, msg)
"""))
            self.assertLess(time.monotonic() - t0, 60)  # a bound, not a benchmark: without it, it hangs forever
            self.assertRegex(out, r"ERR\ttimeout\t")
            self.assertFalse([p for p in os.listdir(self.tmp) if p.startswith("stalled.db")])
        finally:
            proxy.stop()

    def test_3c_a_symlink_at_the_snapshot_or_its_part_file_is_refused(self):
        victim = os.path.join(self.tmp, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.chmod(victim, 0o644)
        for link in ("viapart.db.part", "viadest.db"):
            os.symlink(victim, os.path.join(self.tmp, link))
        out = self.ok(self.run_lua(f"""
    for _, name in ipairs {{ "viapart.db", "viadest.db" }} do
      local r, err, msg = etcd.snapshot(nil, "{self.tmp}/" .. name)
      print("ERR", name, err, msg)
    end
    local r = assert(etcd.snapshot(nil, "{self.tmp}/fresh.db"))
"""))
        self.assertIn(f"ERR\tviapart.db\tfailed\trefusing to write through the symlink at {self.tmp}/viapart.db.part", out)
        self.assertIn(f"ERR\tviadest.db\tfailed\trefusing to write through the symlink at {self.tmp}/viadest.db", out)
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertEqual(os.stat(victim).st_mode & 0o777, 0o644)
        # A snapshot holds every Secret of the cluster: only its owner reads it, whatever the umask.
        self.assertEqual(os.stat(os.path.join(self.tmp, "fresh.db")).st_mode & 0o777, 0o600)

    def test_4_defrag_all_one_member_at_a_time_leader_last(self):
        out = self.ok(self.run_lua("""
    local leader = assert(etcd.status()).leader
    local done = assert(etcd.defrag_all(nil, { leader_last = true, pause = 0.2 }))
    for _, d in ipairs(done) do
      print(string.format("DEFRAG %s %.6f %.6f %s", d.endpoint, d.started, d.finished, tostring(d.leader)))
    end
"""))
        rows = [l.split() for l in out.splitlines() if "DEFRAG" in l]
        self.assertEqual(len(rows), 3)
        spans = [(float(r[-3]), float(r[-2])) for r in rows]
        for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
            self.assertLessEqual(e1, s2)  # never two at once
        self.assertEqual([r[-1] for r in rows], ["false", "false", "true"])  # the leader last
        self.assertEqual(len(set(re.findall(r"defragmented .*member=(m\d)", out))), 3)  # named in the log

    def test_4b_defrag_all_asks_the_endpoints_it_was_given(self):
        # Proxies stand for tunnels: the members' advertised URLs are not what this controller uses.
        proxies = [etcdlab.CuttingProxy(port, limit=1 << 40) for port in self.cluster.client_ports]
        try:
            eps = [f"https://127.0.0.1:{p.port}" for p in proxies]
            out = self.ok(self.run_lua("""
    local h = assert(etcd.cluster_health(p.endpoints))
    for _, m in ipairs(h.members) do print("VIA", m.name, m.endpoint) end
    local done = assert(etcd.defrag_all(nil, { pause = 0.1 }))
    print("DONE", #done)
""", endpoints=eps))
        finally:
            for p in proxies:
                p.stop()
        for name, ep in zip(self.cluster.names, eps):
            self.assertIn(f"VIA\t{name}\t{ep}", out)
        self.assertIn("DONE\t3", out)

    def test_7_served_certificates_are_read_as_served(self):
        import socket
        import threading
        silent = socket.socket()  # accepts and says nothing: a handshake that never comes
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        plain = socket.socket()  # answers, but not with TLS
        plain.bind(("127.0.0.1", 0))
        plain.listen(4)

        def babble():
            try:
                while True:
                    c, _ = plain.accept()
                    c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
                    c.close()
            except OSError:
                pass
        threading.Thread(target=babble, daemon=True).start()
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        client, peer = self.cluster.client_ports[0], self.cluster.peer_ports[0]
        try:
            out = self.ok(self.run_lua(f"""
    local tls = require "engine.tls"
    local served = assert(tls.served("https://127.0.0.1:{client}"))
    local leaf = served[1]
    print("SERVED", leaf.common_name, leaf.serial, leaf.days_left, leaf.is_ca, #leaf.ip_addresses)
    -- etcd's peer port asks for a client certificate: its own is seen all the same
    local peer = assert(tls.served("127.0.0.1:{peer}", {{ timeout = "5s" }}))
    print("PEER", peer[1].common_name, peer[1].serial)
    for _, ep in ipairs {{ "127.0.0.1:{closed_port}", "127.0.0.1:{plain.getsockname()[1]}" }} do
      print("FAIL", select(2, tls.served(ep, {{ timeout = 5 }})))
    end
    local t0 = time.monotonic()
    local none, word = tls.served("127.0.0.1:{silent.getsockname()[1]}", {{ timeout = 1 }})
    print("SILENT", none, word, time.monotonic() - t0 < 4)
    print("BAD", tls.inspect("not a certificate"))
    print("MISUSE", select(2, pcall(tls.served, "127.0.0.1:{client}", {{ sni = "x" }})))
    print("MISUSE", select(2, pcall(tls.served, "https://")))
"""))
        finally:
            silent.close()
            plain.close()
        files = {}
        for name in ("server", "peer"):
            r = subprocess.run(["openssl", "x509", "-noout", "-serial", "-subject", "-in", f"{self.cluster.dir}/{name}.crt"],
                               capture_output=True, text=True, check=True)
            files[name] = r.stdout
        m = re.search(r"SERVED\t(\S+)\t(\w+)\t(\d+)\tfalse\t(\d+)", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(m.group(2).upper().lstrip("0"), re.search(r"serial=(\w+)", files["server"]).group(1).lstrip("0"))
        self.assertIn(m.group(1), files["server"])
        p = re.search(r"PEER\t(\S+)\t(\w+)", out)
        self.assertEqual(p.group(1), "etcd-peer")
        self.assertEqual(p.group(2).upper().lstrip("0"), re.search(r"serial=(\w+)", files["peer"]).group(1).lstrip("0"))
        self.assertIn("FAIL\trefused\tconnection refused", out)
        self.assertIn("FAIL\tnot tls\tno certificate from the server", out)
        self.assertIn("SILENT\tnil\ttimeout\ttrue", out)
        self.assertIn("BAD\tnil\tinvalid\tno certificate in the PEM text", out)
        self.assertIn("tls.served: unknown option 'sni'", out)
        self.assertIn("tls.served: cannot read a host in https://", out)

    def test_5_through_a_node_tunnel_and_etcdctl_on_the_node(self):
        from lab import sshd as sshlab
        lab = sshlab.Lab()
        try:
            node = lab.sshd()
            lab.trust(node.known_hosts_line())
            inv = os.path.join(self.tmp, "inv.ini")
            marker = os.path.join(self.tmp, "injected")
            with open(inv, "w") as f:
                f.write(f"cp1 ansible_host=127.0.0.1 ansible_port={node.port} ansible_user={sshlab.USER} "
                        f"etcd_access_address=\"127.0.0.1:1; touch {marker}; echo \"\n")
            # The cluster's PKI directory is root's (0700): only sudo on the node reads it.
            d, port = self.cluster.dir, self.cluster.client_ports[0]
            path = os.path.join(self.tmp, "node-snap.db")
            script = os.path.join(self.tmp, "node.lua")
            with open(script, "w") as f:
                f.write(f"""
local etcd = require "engine.etcd"
local ssh = require "engine.ssh"
return runbook {{ name = "via-node", run = function(p, inv)
  ssh.configure {{ known_hosts = "{lab.known_hosts}", identity_files = {{ "{lab.keys.key}" }} }}
  local cp1 = inv:host("cp1")
  local t <close> = assert(etcd.via_node(cp1, {{ port = {port}, ca = "{d}/ca.crt", cert = "{d}/client.crt", key = "{d}/client.key" }}))
  local st = assert(etcd.status())
  print("VIA", st.version, #assert(etcd.members()))
  -- A client file the node does not have: nil, "failed", and the message names the host and the file.
  print("MISSING", select(2, etcd.via_node(cp1, {{ port = {port}, ca = "{d}/ca.crt", cert = "{d}/client.crt", key = "{d}/gone.key" }})))
  local r = assert(etcd.snapshot_via_ssh(cp1, "{path}", {{ port = {port}, ca = "{d}/ca.crt", cert = "{d}/client.crt", key = "{d}/client.key" }}))
  print("NODE SNAP", r.size, r.sha256)
  -- An inventory value with shell metacharacters never reaches the node's shell: it is refused, named.
  local bad = cp1.vars.etcd_access_address
  print("REFUSED", select(2, pcall(etcd.snapshot_via_ssh, cp1, "{path}.2", {{ address = bad, port = {port} }})))
  print("REFUSED", select(2, pcall(etcd.via_node, cp1, {{ address = bad }})))
  print("REFUSED", select(2, pcall(etcd.snapshot_via_ssh, cp1, "{path}.3", {{ port = "1; touch {marker}" }})))
  -- The certificate an endpoint serves, seen from the node through a tunnel (the host by its name).
  local tls = require "engine.tls"
  local direct = assert(tls.served("127.0.0.1:{port}"))
  local via = assert(tls.served("127.0.0.1:{port}", {{ via = "cp1" }}))
  print("TLS VIA", via[1].serial == direct[1].serial, via[1].common_name)
end }}
""")
            r = subprocess.run([ENGINE, "run", script, "-i", inv, "--state-dir", os.path.join(self.tmp, "state")],
                               capture_output=True, text=True, timeout=300)
            out = self.ok(r)
            self.assertIn("VIA\t3.4", out)
            self.assertIn(f"MISSING\tfailed\treading etcd's client files on cp1: cat: {d}/gone.key: No such file", out)
            self.assertIn("TLS VIA\ttrue\t", out)
            self.assertIn('etcd.snapshot_via_ssh: address "127.0.0.1:1; touch', out)
            self.assertIn('etcd.via_node: address "127.0.0.1:1; touch', out)
            self.assertIn('etcd.snapshot_via_ssh: port "1; touch', out)
            self.assertFalse(os.path.exists(marker), "an inventory value ran as a command on the node")
            self.assertFalse(os.path.exists(path + ".2") or os.path.exists(path + ".3"))
            st = self.cluster.etcdctl("snapshot", "status", path, "-w", "json")
            self.assertEqual(st.returncode, 0, st.stderr)
            self.assertFalse(os.path.exists(path + ".part"))
        finally:
            lab.stop()

    def test_6_endpoints_from_the_inventory(self):
        inv = os.path.join(self.tmp, "inv.yml")
        with open(inv, "w") as f:
            f.write("all:\n  children:\n    etcd:\n      hosts:\n")
            for name, port in zip(self.cluster.names, self.cluster.client_ports):
                f.write(f"        {name}: {{ansible_host: 127.0.0.1, etcd_client_port: {port}}}\n")
        path = os.path.join(self.tmp, "inv.lua")
        with open(path, "w") as f:
            f.write(TEMPLATE % """
    local eps = etcd.from_inventory(inv:group("etcd"))
    assert(#eps == 3 and eps[1]:match("^https://127%.0%.0%.1:%d+$"), eps[1])
    assert(etcd.members_match(inv:group("etcd")))
    assert(assert(etcd.cluster_health()).healthy)
""")
        r = subprocess.run([ENGINE, "run", path, "-i", inv, "-e", f"dir={self.cluster.dir}", "-e", "endpoints=x",
                            "--state-dir", os.path.join(self.tmp, "state")], capture_output=True, text=True, timeout=120)
        self.ok(r)

    def test_7_health_reports_a_killed_member(self):
        victim = self.cluster.names[2]
        self.cluster.kill(victim)
        out = self.ok(self.run_lua("""
    local h = assert(etcd.cluster_health())
    assert(not h.healthy)
    print(table.concat(h.problems, "; "))
    local ok, err = etcd.health(p.arg)
    assert(ok == nil and (err == "unreachable" or err == "timeout"), tostring(err))
""", endpoints=self.cluster.endpoints[:2], arg=self.cluster.endpoints[2]))
        # The reason, as the connection failed (doctor showed "no client URL: nil" here).
        self.assertRegex(out, rf"{victim} unhealthy \((unreachable|timeout): [^)]*127\.0\.0\.1[^)]*\)")
        self.assertNotIn("nil", out)

    def test_8_defrag_all_with_a_member_down_defragments_nothing(self):
        # test_7 left the third member dead; the two live ones are the endpoints given.
        victim = self.cluster.names[2]
        out = self.ok(self.run_lua("""
    local done, err, msg, partial = etcd.defrag_all(nil, { pause = 0.1 })
    print("RESULT", done, err, msg, partial and #partial)
""", endpoints=self.cluster.endpoints[:2]))
        self.assertIn(f"RESULT\tnil\tunhealthy\tnothing defragmented: {victim} unhealthy (unreachable: none of the endpoints given answers for it)\t0", out)
        self.assertNotIn("defragmented member=", out)


class TestSnapshotTrailer(unittest.TestCase):
    """The sha256 trailer check, through the JSON gateway path (http endpoints), with a fake etcd
    that streams a database whose trailer is right, or wrong."""

    def serve(self, good):
        import base64, hashlib, http.server, threading
        data = os.urandom(300_000)
        trailer = hashlib.sha256(data).digest() if good else bytes(32)
        blob = data + trailer

        class Fake(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/v3/maintenance/status":
                    body = json.dumps({"header": {"revision": "42", "member_id": "1"}, "version": "3.4.23", "leader": "1"}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    return self.wfile.write(body)
                chunks = [blob[i:i + 65536] for i in range(0, len(blob), 65536)]
                lines = b""
                for n, c in enumerate(chunks):
                    left = len(blob) - sum(len(x) for x in chunks[:n + 1])
                    lines += json.dumps({"result": {"remaining_bytes": str(left), "blob": base64.b64encode(c).decode()}}).encode() + b"\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(lines)))
                self.end_headers()
                self.wfile.write(lines)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, len(blob)

    def snapshot(self, server, path):
        tmp = os.path.dirname(path)
        rb = os.path.join(tmp, "snap.lua")
        with open(rb, "w") as f:
            f.write(f"""local etcd = require "engine.etcd"
return runbook {{ name = "s", run = function()
  local r, err, msg = etcd.snapshot("http://127.0.0.1:{server.server_port}", "{path}")
  print("RESULT", r and r.size or "nil", err, msg)
end }}""")
        return subprocess.run([ENGINE, "run", rb, "--state-dir", os.path.join(tmp, "state")], capture_output=True, text=True, timeout=60)

    def test_a_bad_trailer_leaves_nothing_and_a_good_one_is_kept(self):
        tmp = tempfile.mkdtemp(prefix="engine-trailer-")
        try:
            for good in (False, True):
                server, size = self.serve(good)
                path = os.path.join(tmp, f"{good}.db")
                r = self.snapshot(server, path)
                server.shutdown()
                self.assertEqual(r.returncode, 0, r.stderr)
                if good:
                    self.assertIn(f"RESULT\t{size}", r.stdout)
                    self.assertEqual(os.path.getsize(path), size)
                else:
                    self.assertIn("RESULT\tnil\tcorrupt\tthe snapshot's sha256 trailer does not match its data", r.stdout)
                    self.assertFalse(os.path.exists(path))
                    self.assertFalse(os.path.exists(path + ".part"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
