"""Pushgateway and Prometheus primitives against Debian's real servers, started by the tests on
127.0.0.1, and the gate that halts a rollout on alerts (failing closed)."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin/engine"))
PUSHGATEWAY = shutil.which("prometheus-pushgateway")
PROMETHEUS = shutil.which("prometheus")

TEMPLATE = """
local push = require "engine.pushgateway"
local prometheus = require "engine.prometheus"
local gates = require "std.gates"
return runbook {
  name = "metrics-test",
  params = { pgw = { type = "string", default = "" }, prom = { type = "string", default = "" } },
  run = function(p, inv)
    if p.pgw ~= "" then push.configure { url = p.pgw } end
    if p.prom ~= "" then prometheus.configure { url = p.prom } end
%s
  end,
}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, limit=30):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="engine-metrics-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_lua(self, body, *args):
        path = os.path.join(self.tmp, f"t{time.monotonic_ns()}.lua")
        with open(path, "w") as f:
            f.write(TEMPLATE % body)
        return subprocess.run([ENGINE, "run", path, *args, "--state-dir", os.path.join(self.tmp, "state")],
                              capture_output=True, text=True, timeout=120)

    def ok(self, r):
        self.assertEqual(r.returncode, 0, f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
        return r.stdout


@unittest.skipUnless(PUSHGATEWAY, "prometheus-pushgateway is not installed")
class TestPushgateway(Base):
    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{self.port}",
                                      f"--persistence.file={self.tmp}/pushgateway.data"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.url + "/-/ready")

    def tearDown(self):
        self.proc.kill()
        self.proc.wait()
        super().tearDown()

    def groups(self):
        return json.load(urllib.request.urlopen(self.url + "/api/v1/metrics"))["data"]

    def metric(self, group, name):
        m = group.get(name)
        return m and m["metrics"]

    def test_push_replace_delete_and_label_escaping(self):
        self.ok(self.run_lua("""
    assert(push.push("k8s_upgrade", { cluster = "prod/eu" }, {
      { name = "upgrade_in_flight", value = 1, help = "1 while an upgrade runs" },
      { name = "upgrade_started_timestamp", value = 1763712000, type = "gauge" },
      { name = "upgrade_nodes_done_total", value = 3, type = "counter", labels = { note = 'a "quoted"\\\\path\\nline' } },
    }))
""", "-e", f"pgw={self.url}"))
        groups = self.groups()
        self.assertEqual(len(groups), 1)
        g = groups[0]
        self.assertEqual(g["labels"]["job"], "k8s_upgrade")
        self.assertEqual(g["labels"]["cluster"], "prod/eu")  # a '/' travelled base64-encoded
        self.assertEqual(self.metric(g, "upgrade_in_flight")[0]["value"], "1")
        self.assertEqual(g["upgrade_in_flight"]["help"], "1 while an upgrade runs")
        self.assertEqual(g["upgrade_nodes_done_total"]["type"], "COUNTER")
        self.assertEqual(self.metric(g, "upgrade_nodes_done_total")[0]["labels"]["note"], 'a "quoted"\\path\nline')
        # PUT replaces the whole group; POST only the metrics it names.
        self.ok(self.run_lua("""
    assert(push.push("k8s_upgrade", { cluster = "prod/eu" }, { upgrade_in_flight = 0 }))
    assert(push.push("k8s_upgrade", { cluster = "prod/eu" }, { snapshot_taken = 1 }, { method = "post" }))
""", "-e", f"pgw={self.url}"))
        g = self.groups()[0]
        self.assertEqual(self.metric(g, "upgrade_in_flight")[0]["value"], "0")
        self.assertEqual(self.metric(g, "snapshot_taken")[0]["value"], "1")
        self.assertIsNone(g.get("upgrade_started_timestamp"))
        self.ok(self.run_lua('assert(push.delete("k8s_upgrade", { cluster = "prod/eu" }))', "-e", f"pgw={self.url}"))
        self.assertEqual(self.groups(), [])

    def test_bad_names_are_misuse(self):
        r = self.run_lua('push.push("job", {}, { ["bad-name"] = 1 })', "-e", f"pgw={self.url}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("metric name 'bad-name' is not a valid Prometheus name", r.stderr)

    def test_a_pushgateway_that_is_down_warns_and_the_run_goes_on(self):
        self.proc.kill()
        self.proc.wait()
        out = self.ok(self.run_lua("""
    local ok, err = push.push("k8s_upgrade", {}, { upgrade_in_flight = 1 })
    assert(ok == nil and err == "unreachable", tostring(err))
    print("carried on")
""", "-e", f"pgw={self.url}"))
        self.assertIn("WARN  pushgateway PUT failed", out)
        self.assertIn("carried on", out)
        runs = os.path.join(self.tmp, "state", "runs")
        with open(os.path.join(runs, os.listdir(runs)[0], "report.json")) as f:
            rep = json.load(f)
        self.assertEqual(rep["outcome"], "ok")
        self.assertTrue(any(w["msg"] == "pushgateway PUT failed" and w["fields"]["job"] == "k8s_upgrade" for w in rep["warnings"]))
        r = self.run_lua('push.push("k8s_upgrade", {}, { upgrade_in_flight = 1 }, { required = true })', "-e", f"pgw={self.url}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("pushgateway PUT failed", r.stderr)


@unittest.skipUnless(PUSHGATEWAY, "prometheus-pushgateway is not installed")
class TestPushgatewayTlsAndAuth(Base):
    def test_push_over_tls_with_basic_auth(self):
        import crypt  # libxcrypt's bcrypt, for the Pushgateway's web config
        d = self.tmp
        for cmd in (["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                     "-subj", "/CN=test-ca", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt"],
                    ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=pgw",
                     "-keyout", f"{d}/pgw.key", "-out", f"{d}/pgw.csr"]):
            subprocess.run(cmd, check=True, capture_output=True)
        with open(f"{d}/ext", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        subprocess.run(["openssl", "x509", "-req", "-in", f"{d}/pgw.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
                        "-CAcreateserial", "-days", "1", "-extfile", f"{d}/ext", "-out", f"{d}/pgw.crt"], check=True, capture_output=True)
        with open(f"{d}/web.yml", "w") as f:
            f.write(f"tls_server_config:\n  cert_file: {d}/pgw.crt\n  key_file: {d}/pgw.key\n"
                    f"basic_auth_users:\n  engine: '{crypt.crypt('push-pw-1', crypt.mksalt(crypt.METHOD_BLOWFISH))}'\n")
        port = free_port()
        proc = subprocess.Popen([PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={d}/web.yml"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import ssl
            ctx = ssl.create_default_context(cafile=f"{d}/ca.crt")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"https://127.0.0.1:{port}/-/ready", context=ctx, timeout=1)
                    break
                except urllib.error.HTTPError:
                    break  # 401: up, and asking for the password
                except OSError:
                    time.sleep(0.1)
            out = self.ok(self.run_lua(f"""
    push.configure {{ url = "https://127.0.0.1:{port}", ca_file = "{d}/ca.crt", basic_auth = {{ user = "engine", password = "push-pw-1" }} }}
    assert(push.push("k8s_upgrade", {{}}, {{ in_flight = 1 }}))
    push.configure {{ basic_auth = {{ user = "engine", password = "wrong" }} }}
    local ok, err, why = push.push("k8s_upgrade", {{}}, {{ in_flight = 2 }})
    assert(ok == nil and err == "failed", tostring(err))
    print(why)
"""))
            self.assertIn("HTTP 401", out)
            req = urllib.request.Request(f"https://127.0.0.1:{port}/api/v1/metrics")
            import base64
            req.add_header("Authorization", "Basic " + base64.b64encode(b"engine:push-pw-1").decode())
            groups = json.load(urllib.request.urlopen(req, context=ctx))["data"]
            self.assertEqual(groups[0]["in_flight"]["metrics"][0]["value"], "1")
        finally:
            proc.kill()
            proc.wait()


@unittest.skipUnless(PROMETHEUS, "prometheus is not installed")
class TestPrometheus(Base):
    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = os.path.join(self.tmp, "rules.yml")
        with open(rules, "w") as f:
            f.write("groups:\n- name: test\n  interval: 1s\n  rules:\n"
                    "  - alert: AlwaysFiring\n    expr: vector(1) > 0\n    labels: {severity: critical}\n"
                    "  - alert: Watchdog\n    expr: vector(1)\n")
        cfg = os.path.join(self.tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(f"global: {{evaluation_interval: 1s, scrape_interval: 5s}}\nrule_files: [{rules}]\n")
        self.proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={self.tmp}/data",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.url + "/-/ready", 60)
        deadline = time.monotonic() + 60  # until the rules have been evaluated once
        while time.monotonic() < deadline:
            alerts = json.load(urllib.request.urlopen(self.url + "/api/v1/alerts"))["data"]["alerts"]
            if len([a for a in alerts if a["state"] == "firing"]) == 2:
                break
            time.sleep(0.5)

    def tearDown(self):
        self.proc.kill()
        self.proc.wait()
        super().tearDown()

    def test_query_and_alerts(self):
        out = self.ok(self.run_lua("""
    local r = assert(prometheus.query("vector(42)"))
    assert(r[1].value == 42, tostring(r[1].value))
    local bad, err = prometheus.query("sum(")
    assert(bad == nil and err == "failed", tostring(err))
    for _, a in ipairs(assert(prometheus.alerts())) do print("ALERT", a.name, a.state, a.labels.severity) end
""", "-e", f"prom={self.url}"))
        self.assertIn("ALERT\tAlwaysFiring\tfiring\tcritical", out)

    def test_the_gate_halts_on_a_firing_alert_and_passes_when_it_is_ignored(self):
        out = self.ok(self.run_lua("""
    local ok, word, why = gates.no_firing_alerts { ignore = { "Watchdog" } }
    assert(word == "firing", word)
    assert(ok == nil, "the gate passed")
    print(why)
    assert(gates.no_firing_alerts { ignore = { "Watchdog", "AlwaysFiring" } })
    print("passed when ignored")
""", "-e", f"prom={self.url}"))
        self.assertIn("alerts firing: AlwaysFiring (firing)", out)
        self.assertIn("passed when ignored", out)

    def test_the_gate_halts_when_prometheus_is_down(self):
        self.proc.kill()
        self.proc.wait()
        out = self.ok(self.run_lua("""
    local ok, word, why = gates.no_firing_alerts { ignore = { "Watchdog", "AlwaysFiring" } }
    assert(ok == nil, "the gate passed with Prometheus down")
    assert(word == "unknown", word)
    print(why)
""", "-e", f"prom={self.url}"))
        self.assertIn("cannot tell whether alerts fire (unreachable", out)

    def test_the_gate_fails_closed_on_every_shape_it_does_not_expect(self):
        import http.server
        import json as js
        import threading
        shapes = [
            {"alerts": {"X": {"labels": {"alertname": "X"}, "state": "firing"}}},  # an object, not a list
            {"alerts": [{"labels": {"alertname": "X"}, "state": "resolved-ish"}]},  # an unknown state
            {"alerts": [{"labels": {"alertname": "X"}}]},                          # no state
            {"alerts": ["X"]},                                                     # not an alert
            {"alerts": []},                                                        # the control: quiet
        ]
        served = []

        class Fake(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = js.dumps({"status": "success", "data": shapes[min(len(served), len(shapes) - 1)]}).encode()
                served.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            out = self.ok(self.run_lua("""
    for i = 1, 5 do
      local ok, word, why = gates.no_firing_alerts {}
      print("GATE", i, ok, why, word)
    end
""", "-e", f"prom=http://127.0.0.1:{server.server_port}"))
        finally:
            server.shutdown()
            server.server_close()
        self.assertIn("GATE\t1\tnil\tcannot tell whether alerts fire (malformed: the answer's alerts are not a list)", out)
        self.assertIn('GATE\t2\tnil\tcannot tell whether alerts fire (alert X has state "resolved-ish"); halting', out)
        self.assertIn("GATE\t3\tnil\tcannot tell whether alerts fire (alert X has state none); halting", out)
        self.assertIn("GATE\t4\tnil\tcannot tell whether alerts fire (malformed: alert #1 is not an object)", out)
        self.assertIn("GATE\t5\ttrue", out)

    def test_the_gate_halts_on_a_malformed_answer(self):
        # Something that is not Prometheus answers on the port: a plain HTTP server.
        self.proc.kill()
        self.proc.wait()
        web = subprocess.Popen(["python3", "-m", "http.server", "--bind", "127.0.0.1", str(self.port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.tmp)
        try:
            wait_http(self.url + "/")
            out = self.ok(self.run_lua("""
    local ok, _, why = gates.no_firing_alerts {}
    assert(ok == nil)
    print(why)
""", "-e", f"prom={self.url}"))
            self.assertIn("cannot tell whether alerts fire", out)
        finally:
            web.kill()
            web.wait()


if __name__ == "__main__":
    unittest.main()
