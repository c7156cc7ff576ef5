"""CLI tests: run the built engine binary on sample runbooks and check what a user sees."""
import json
import os
import re
import signal
import shutil
import subprocess
import tempfile
import time
import unittest

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin/engine"))
HERE = os.path.dirname(os.path.abspath(__file__))
RB = os.path.join(HERE, "runbooks")
FIX = os.path.join(HERE, "..", "fixtures", "inventory")
ROOT = os.path.dirname(os.path.dirname(HERE))  # the shipped runbooks


def engine(*args, timeout=60):
    return subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout, cwd=HERE)


class CliTest(unittest.TestCase):
    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="engine-cli-")
        self.addCleanup(shutil.rmtree, self.state, True)

    def run_rb(self, *args, **kw):
        return engine("run", *args, "--state-dir", self.state, **kw)

    def inventory(self, text, name="hosts.ini"):
        return self.write(name, text)

    def write(self, name, text):
        """A file (a runbook, an inventory) in this test's state directory; its path."""
        path = os.path.join(self.state, name)
        with open(path, "w") as f:
            f.write(text)
        return path


class TestCommands(CliTest):
    def test_version_prints_the_version(self):
        r = engine("version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^engine \d+\.\d+\.\d+ \(.+\)\n$")

    def test_no_subcommand_is_a_usage_error(self):
        self.assertEqual(engine().returncode, 2)
        self.assertEqual(engine("frobnicate").returncode, 2)

    def test_runbook_help_lists_params_with_type_default_and_help(self):
        r = engine("run", "runbooks/params.lua", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("params — echo the params", r.stdout)
        self.assertRegex(r.stdout, r"version\s+string, required\n\s+target, e.g. 1.34.3\n\s+must match \^%d\+")
        self.assertRegex(r.stdout, r"workers_at_once\s+integer, default 1\n\s+workers upgraded at once")
        self.assertRegex(r.stdout, r"kind\s+enum \(patch\|minor\), default patch")
        self.assertRegex(r.stdout, r"drain_timeout\s+duration, default 600s")
        self.assertRegex(r.stdout, r"token\s+string, default <secret>, secret")
        self.assertNotIn("s3cr3t-default", r.stdout)

    def test_run_help_without_runbook_is_the_command_help(self):
        r = engine("run", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--dry-run", r.stdout)

    def test_params_arrive_typed(self):
        r = self.run_rb("runbooks/params.lua", "-e", "version=1.34.3", "-e", "workers_at_once=3", "-e", "force=yes",
                        "-e", "ignore=A,B", "-e", "drain_timeout=90s", "-e", "kind=minor")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("version=1.34.3 workers=3 ratio=0.9 force=true kind=minor ignore=A+B drain=90.0", r.stdout)
        self.assertIn("integer? integer", r.stdout)

    def test_check_validates_without_running(self):
        r = engine("check", "runbooks/params.lua", "-e", "version=1.2.3", "-i", os.path.join(FIX, "kubespray-ini/inventory.ini"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok: runbook 'params' (8 params), inventory 4 hosts", r.stdout)
        self.assertNotIn("version=", r.stdout)  # run() never ran

    def test_check_reports_bad_params(self):
        r = engine("check", "runbooks/params.lua", "-e", "workers_at_once=3")  # some given: the set must be whole
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing required param 'version'", r.stderr)
        r = engine("check", "runbooks/params.lua", "-e", "workers_at_once=many")
        self.assertEqual(r.returncode, 2)
        self.assertIn("workers_at_once", r.stderr)

    def test_check_of_a_runbook_alone_lists_what_a_run_needs(self):
        r = engine("check", "runbooks/params.lua")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok: runbook 'params' (8 params)", r.stdout)
        self.assertIn("a run needs: -e version=...", r.stdout)


class TestRuns(CliTest):
    INV = "[web]\nweb1 ansible_host=10.0.0.1\nweb2\n[db]\ndb1\ndb2\n"

    def test_fleet_visits_every_host_with_a_prefix(self):
        r = self.run_rb("runbooks/fleet.lua", "-i", self.inventory(self.INV))
        self.assertEqual(r.returncode, 0, r.stderr)
        for h in ["web1", "web2", "db1", "db2"]:
            self.assertIn(f"[{h}] done", r.stdout)
        self.assertIn("[web1] visiting address=10.0.0.1", r.stdout)
        self.assertIn("summary failed=0 ok=4", r.stdout)

    def test_limit_restricts_the_hosts(self):
        r = self.run_rb("runbooks/fleet.lua", "-i", self.inventory(self.INV), "--limit", "all:!db2:!web2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("[web1] done", r.stdout)
        self.assertIn("[db1] done", r.stdout)
        self.assertNotIn("[db2]", r.stdout)
        self.assertNotIn("[web2]", r.stdout)

    def test_a_failed_host_fails_the_run_and_is_named(self):
        r = self.run_rb("runbooks/fleet.lua", "-i", self.inventory(self.INV), "-e", "fail_on=db1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("[db1] failed error=\"runbooks/fleet.lua:20: planned failure on db1\"", r.stdout)
        self.assertIn("fleet.each: 1 of 4 hosts failed, more than max_failures (0)", r.stderr)
        self.assertIn("db1: runbooks/fleet.lua:20: planned failure on db1", r.stderr)

    def test_failures_within_budget_pass(self):
        r = self.run_rb("runbooks/fleet.lua", "-i", self.inventory(self.INV), "-e", "fail_on=db1", "-e", "max_failures=1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("summary failed=1 ok=3", r.stdout)

    def test_json_logs_are_one_object_per_line_and_the_run_log_is_kept(self):
        r = self.run_rb("runbooks/fleet.lua", "-i", self.inventory(self.INV), "--log-format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(l) for l in r.stdout.splitlines()]
        visits = [l for l in lines if l["msg"] == "visiting"]
        self.assertEqual(sorted(l["host"] for l in visits), ["db1", "db2", "web1", "web2"])
        self.assertEqual(visits[0]["level"], "info")
        run_id = lines[0]["fields"]["run"]
        log_path = os.path.join(self.state, "runs", run_id, "run.log")
        with open(log_path) as f:
            logged = [json.loads(l) for l in f]
        self.assertTrue(any(l["msg"] == "done" and l["host"] == "db2" for l in logged))

    def test_report_json_records_hosts_params_and_outcome(self):
        r = self.run_rb("runbooks/fleet.lua", "-i", self.inventory(self.INV), "-e", "fail_on=db1", "-e", "max_failures=1")
        self.assertEqual(r.returncode, 0, r.stderr)
        runs = os.listdir(os.path.join(self.state, "runs"))
        with open(os.path.join(self.state, "runs", runs[0], "report.json")) as f:
            rep = json.load(f)
        self.assertEqual(rep["outcome"], "ok")
        self.assertEqual(rep["exit_code"], 0)
        self.assertEqual(rep["params"]["fail_on"], ["db1"])
        self.assertEqual(rep["hosts"]["db1"]["status"], "failed")
        self.assertIn("planned failure on db1", rep["hosts"]["db1"]["error"])
        self.assertEqual(rep["hosts"]["web2"]["status"], "ok")
        self.assertTrue(any(e["msg"] == "failed" and e["host"] == "db1" for e in rep["errors"]))

    def test_report_json_redacts_secret_params(self):
        r = self.run_rb("runbooks/params.lua", "-e", "version=1.2.3", "-e", "token=sentinel-XYZZY")
        self.assertEqual(r.returncode, 0, r.stderr)
        runs = os.listdir(os.path.join(self.state, "runs"))
        text = open(os.path.join(self.state, "runs", runs[0], "report.json")).read()
        self.assertNotIn("sentinel-XYZZY", text)
        self.assertEqual(json.loads(text)["params"]["token"], "<secret>")

    def test_host_tables_carry_vars_and_groups_when_read_iterated_or_logged(self):
        inv = self.inventory("[db]\na zone=z1\nb zone=z2\n[web]\nc zone=z3\nd zone=z4\n[db:vars]\nrole=db\n")
        r = self.run_rb("runbooks/hosts.lua", "-i", inv, "--log-format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HOSTS OK", r.stdout)
        line = next(json.loads(l) for l in r.stdout.splitlines() if '"host d"' in l)
        self.assertEqual(line["fields"]["host"]["vars"]["zone"], "z4")
        self.assertIn("web", line["fields"]["host"]["groups"])

    def test_kubespray_inventories_run_unchanged(self):
        for inv in ["kubespray-ini/inventory.ini", "kubespray-yaml/hosts.yaml"]:
            r = self.run_rb("runbooks/fleet.lua", "-i", os.path.join(FIX, inv), "-e", "group=etcd")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("[node3] visiting address=10.1.1.13", r.stdout)
            self.assertNotIn("[node4]", r.stdout)


class TestInterrupt(CliTest):
    INV = "".join(f"h{i}\n" for i in range(1, 21))

    def start(self, *extra):
        inv = self.inventory(self.INV)
        return subprocess.Popen([ENGINE, "run", "runbooks/fleet.lua", "-i", inv, "--state-dir", self.state,
                                 "-e", "nap=1s", "-e", "at_once=2", *extra],
                                cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_for(self, proc, text, limit=20):
        deadline = time.monotonic() + limit
        seen = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            if text in line:
                return seen
        self.fail(f"never saw {text!r}; saw:\n{seen}")

    def test_ctrl_c_once_lets_running_hosts_finish_and_starts_no_more(self):
        p = self.start()
        seen = self.wait_for(p, "[h2] visiting")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        out = seen + out
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("[h1] done", out)
        self.assertIn("[h2] done", out)
        self.assertNotIn("[h3]", out)
        self.assertIn("interrupted", err)

    def test_ctrl_c_twice_cancels_what_is_in_flight(self):
        p = self.start("-e", "nap=30s")
        self.wait_for(p, "[h2] visiting")
        p.send_signal(signal.SIGINT)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)  # far less than the 30 s nap
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("[h1] failed error=cancelled", out)
        self.assertNotIn("[h1] done", out)


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"), "a mount namespace: root and unshare")
class TestLibcurlOnDemand(CliTest):
    """libcurl is opened at the first HTTP client, not at start (its ~30 libraries cost every run
    ~10 ms): a machine whose libcurl is broken still runs what needs no HTTP, and the first HTTP
    call names the library and the runbook's line."""

    def test_a_runbook_without_http_runs_without_libcurl_and_the_first_http_call_names_it(self):
        lib = next((line.split(" => ")[1].strip() for line in subprocess.run(
            ["ldconfig", "-p"], capture_output=True, text=True).stdout.splitlines() if "libcurl.so.4 " in line), None)
        self.assertIsNotNone(lib, "ldconfig knows no libcurl.so.4")
        empty = os.path.join(self.state, "empty")
        open(empty, "w").close()
        rb = os.path.join(self.state, "h.lua")
        with open(rb, "w") as f:
            f.write('local http = require "engine.http"\n'
                    'return runbook { name = "h", params = { url = { type = "string", default = "" } }, run = function(p)\n'
                    '  print("NO HTTP YET")\n'
                    '  if p.url ~= "" then print(http.request { url = p.url }) end\n'
                    'end }\n')
        script = (f"mount --bind {empty} {os.path.realpath(lib)} && "
                  f"{ENGINE} run {rb} --state-dir {self.state}; echo rc=$?; "
                  f"{ENGINE} run {rb} --state-dir {self.state} -e url=http://127.0.0.1:9/; echo rc=$?")
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                           text=True, timeout=60, cwd=HERE)
        out = r.stdout + r.stderr
        first, second = out.split("rc=", 1)[0], out.split("rc=", 1)[1]
        self.assertIn("NO HTTP YET", first, out)
        self.assertIn("run finished exit=0", first, out)
        self.assertTrue(second.startswith("0"), out)
        self.assertIn("rc=1", out)
        self.assertRegex(second, r"h\.lua:4: libcurl\.so\.4 could not be loaded \(.*file too short\): the engine's HTTP "
                                 r"\(the Kubernetes API, etcd, Prometheus\) needs libcurl4 installed")


class TestStubs(CliTest):
    """Every module a runbook can require has one LuaCATS stub file that names it and returns it,
    and declares every function the module really exports (so editors resolve require and
    complete every call)."""
    MODULES = ["engine.check", "engine.etcd", "engine.fleet", "engine.http", "engine.inventory", "engine.k8s",
               "engine.log", "engine.prometheus", "engine.pushgateway", "engine.ssh", "engine.time", "engine.tls",
               ] + sorted("std." + f[:-4] for f in os.listdir(os.path.join(HERE, "..", "..", "stdlib", "std"))
                          if f.endswith(".lua"))

    def test_every_stub_compiles_and_luarc_points_at_them(self):
        # A broken stub file would leave editors without the API: each one compiles as Lua 5.4
        # (compiled by the engine's own Lua, not run), and .luarc.json points editors at them.
        meta = os.path.join(HERE, "..", "..", "stdlib", "meta")
        files = sorted(os.path.relpath(os.path.join(d, f), meta) for d, _, fs in os.walk(meta) for f in fs if f.endswith(".lua"))
        self.assertGreaterEqual(len(files), 20)
        rb = os.path.join(self.state, "stubs.lua")
        with open(rb, "w") as f:
            f.write("local texts = {\n")
            for name in files:
                text = open(os.path.join(meta, name)).read()
                self.assertNotIn("]==]", text)
                f.write(f"  [{json.dumps(name)}] = [==[{text}]==],\n")
            f.write("}\nreturn runbook { name = 'stubs', run = function()\n"
                    "  local names = {}\n  for name in pairs(texts) do names[#names + 1] = name end\n  table.sort(names)\n"
                    "  for _, name in ipairs(names) do\n"
                    "    local chunk, err = load(texts[name], '=' .. name, 't', {})\n"
                    "    print('STUB', name, chunk and 'ok' or err)\n  end\nend }\n")
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in files:
            self.assertIn(f"STUB\t{name}\tok", r.stdout)
        with open(os.path.join(HERE, "..", "..", ".luarc.json")) as f:
            luarc = json.load(f)
        self.assertEqual(luarc["workspace.library"], ["stdlib/meta"])
        self.assertEqual(luarc["runtime.version"], "Lua 5.4")

    def test_every_module_has_a_stub_declaring_its_functions(self):
        rb = os.path.join(self.state, "mods.lua")
        with open(rb, "w") as f:
            f.write("return runbook { name = 'mods', run = function()\n"
                    f"  for _, m in ipairs({json.dumps(self.MODULES)[1:-1].join('{}')}) do\n"
                    "    local names = {}\n"
                    "    for k, v in pairs(require(m)) do if type(v) == 'function' then names[#names + 1] = k end end\n"
                    "    table.sort(names)\n"
                    "    print('MODULE ' .. m .. ' ' .. table.concat(names, ' '))\n"
                    "  end\nend }\n")
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 0, r.stderr)
        exported = {}
        for line in r.stdout.splitlines():
            if "MODULE " in line:
                parts = line.split("MODULE ", 1)[1].split()
                exported[parts[0]] = parts[1:]
        self.assertEqual(sorted(exported), sorted(self.MODULES))
        self.assertIn("drain", exported["engine.k8s"])  # the listing is real
        self.assertIn("options", exported["engine.check"])
        meta = os.path.join(HERE, "..", "..", "stdlib", "meta")
        for mod, names in exported.items():
            path = os.path.join(meta, *mod.split(".")) + ".lua"
            with self.subTest(module=mod):
                self.assertTrue(os.path.exists(path), f"no stub {path}")
                text = open(path).read()
                self.assertTrue(text.startswith(f"---@meta {mod}\n"), f"{path} does not start with ---@meta {mod}")
                self.assertRegex(text.rstrip().splitlines()[-1], r"^return \w+$")
                if mod == "engine.log":
                    continue  # the global log's table, declared in globals.lua
                for name in names:
                    self.assertRegex(text, rf"\n(function \w+\.{name}\(|\w+\.{name} = )", f"{path} does not declare {mod}.{name}")


class TestClusterFlags(CliTest):
    """--kubeconfig and --context are checked before anything runs: a context the kubeconfig does
    not have is a configuration error (exit 2, no resume hint), caught by engine check too."""
    KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: prod, context: {cluster: c, user: u}}]
current-context: prod
"""

    def test_a_misspelt_context_stops_before_the_run(self):
        kc = os.path.join(self.state, "kc.yaml")
        with open(kc, "w") as f:
            f.write(self.KUBECONFIG)
        r = self.run_rb(os.path.join(RB, "fleet.lua"), "--kubeconfig", kc, "--context", "prdo")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("error: --context: kubeconfig has no context 'prdo' (did you mean 'prod'?)", r.stderr)
        self.assertNotIn("engine resume", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.state, "runs")) and os.listdir(os.path.join(self.state, "runs")))
        r = engine("check", os.path.join(RB, "fleet.lua"), "--kubeconfig", kc, "--context", "prdo")
        self.assertEqual(r.returncode, 2)
        self.assertIn("did you mean 'prod'", r.stderr)
        r = engine("check", os.path.join(RB, "fleet.lua"), "--kubeconfig", os.path.join(self.state, "none.yaml"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("--kubeconfig", r.stderr)
        self.assertEqual(engine("check", os.path.join(RB, "fleet.lua"), "--kubeconfig", kc, "--context", "prod").returncode, 0)


class TestLimitHidesMembers(CliTest):
    """--limit hiding some of the control plane: the etcd runbooks that count every member refuse
    before they reach a node (a member of three would be "the only member"); inv:hidden says what."""

    INV = "[k8s-cp]\n" + "".join(f"cp{i} ansible_host=127.0.0.1 ansible_port=1\n" for i in (1, 2, 3)) + "[k8s-worker]\nw1 ansible_host=127.0.0.1 ansible_port=1\n"

    def test_inv_hidden(self):
        rb = self.write("hidden.lua", "return runbook { name = 'h', run = function(p, inv)\n"
                        "print('CP ' .. table.concat(inv:hidden('k8s-cp'), ','))\n"
                        "print('ALL ' .. table.concat(inv:hidden(), ','))\nend }\n")
        inv = self.inventory(self.INV)
        r = self.run_rb(rb, "-i", inv, "--limit", "cp2:w1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("CP cp1,cp3\n", r.stdout)
        self.assertIn("ALL cp1,cp3\n", r.stdout)
        r = self.run_rb(rb, "-i", inv)
        self.assertIn("CP \n", r.stdout)

    def test_the_etcd_runbooks_refuse(self):
        inv = self.inventory(self.INV)
        for runbook, args, hidden, why in [
            ("etcd-member-replace", ["-e", "node=cp3", "--limit", "cp3"], "cp1, cp2",
             "the replacement counts the other members' health and a quorum before it removes one"),
            ("etcd-to-systemd", ["--limit", "k8s-cp:!cp2"], "cp2", "a member moves only while every other member is healthy"),
            ("etcd-upgrade", ["-e", "version=3.5.16", "--limit", "cp1"], "cp2, cp3", "a member is upgraded only while every other"),
            ("etcd-maintenance", ["-e", "mode=defrag", "--limit", "cp1"], "cp2, cp3", "a defragmentation goes through every member"),
        ]:
            r = self.run_rb(os.path.join(ROOT, "runbooks", runbook + ".lua"), "-i", inv, *args)
            self.assertEqual(r.returncode, 1, (runbook, r.stdout + r.stderr))
            self.assertIn(f"runbook failed: --limit hides {hidden} of k8s-cp: {why}", r.stderr, runbook)
            self.assertIn("Run it without --limit", r.stderr, runbook)
            self.assertNotIn("kubeconfig", r.stdout + r.stderr, runbook)  # before the API or a node is sought
        # k8s-upgrade with the whole control plane hidden: said so, not "k8s-cp has no hosts".
        r = self.run_rb(os.path.join(ROOT, "runbooks", "k8s-upgrade.lua"), "-i", inv, "-e", "version=1.34.3", "-e", "kind=minor",
                        "--limit", "w1")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("runbook failed: --limit hides every host of k8s-cp (cp1, cp2, cp3): the upgrade goes through the "
                      "control plane first", r.stderr)
        # A snapshot needs one member: --limit is its own business there.
        r = self.run_rb(os.path.join(ROOT, "runbooks", "etcd-maintenance.lua"), "-i", inv, "-e", "mode=snapshot", "--limit", "cp1",
                        "-e", f"snapshot_dir={self.state}")
        self.assertNotIn("--limit hides", r.stdout + r.stderr)


class TestEtcdRules(CliTest):
    """std.etcd_service's rules for an etcd upgrade and for the files it writes, as the runbooks
    apply them (docs/etcd.md): read by a runbook, no cluster needed."""

    def run_lua(self, body):
        rb = os.path.join(self.state, "rules.lua")
        with open(rb, "w") as f:
            f.write("local svc = require 'std.etcd_service'\nlocal http = require 'engine.http'\n"
                    "return runbook { name = 'rules', run = function()\n" + body + "\nend }\n")
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def problems(self, running, target, kube):
        out = self.run_lua(f"for _, p in ipairs(svc.upgrade_problems({json.dumps(running)[1:-1].join('{}')}, "
                           f"{json.dumps(target)}, {json.dumps(kube)})) do print('P ' .. p) end print('END')")
        return [line.split("P ", 1)[1] for line in out.splitlines() if "P " in line and "END" not in line]

    def test_upgrade_steps(self):
        self.assertEqual(self.problems(["3.4.23", "3.4.23"], "3.5.16", "v1.33.1"), [])
        self.assertEqual(self.problems(["3.5.21"], "3.6.4", "v1.34.0"), [])
        self.assertEqual(self.problems(["3.4.23", "3.4.23", "3.4.23"], "3.6.4", "v1.34.0"),
                         ["3.4.23 → 3.6.4 skips a minor: upgrade one minor at a time (3.5 first)"])
        self.assertEqual(self.problems(["3.5.16", "3.5.21"], "3.6.4", "v1.34.0"),
                         ["a member runs 3.5.16: every member must run 3.5.20 or later before 3.6"])
        self.assertEqual(self.problems(["3.5.21"], "3.6.4", "v1.33.1"),
                         ["Kubernetes v1.33 runs with etcd up to 3.5 (kubeadm ships 3.5.x for it); 3.6.4 is newer"])
        self.assertEqual(self.problems(["3.5.21"], "3.6.4", "v1.40.0"), [])  # past the table: its last row
        self.assertEqual(self.problems(["3.5.16"], "3.5.9", "v1.33.1"), ["3.5.9 is older than the running 3.5.16: etcd does not downgrade"])
        self.assertEqual(self.problems(["3.5.16"], "4.0.0", "v1.33.1"), ["etcd 4.0.0 is not a 3.x.y version"])

    def test_an_etcd_under_systemd_behind_the_one_kubeadm_ships(self):
        out = self.run_lua("print('A ' .. tostring(svc.behind({ '3.4.23', '3.4.23' }, 'v1.33.5')))\n"
                           "print('B ' .. tostring(svc.behind({ '3.5.16' }, 'v1.33.5')))\n"
                           "print('C ' .. tostring(svc.behind({ '3.5.21', '3.6.4' }, 'v1.34.3')))\n"
                           "print('D ' .. tostring(svc.behind({ '3.6.4' }, 'v1.40.0')))")
        self.assertIn("A etcd 3.4.23 under systemd is behind the 3.5 kubeadm ships for v1.33, and kubeadm upgrades only "
                      "its own static-Pod etcd: upgrade it first (runbooks/etcd-upgrade.lua", out)
        self.assertIn("B nil", out)
        self.assertIn("C etcd 3.5.21 under systemd is behind the 3.6 kubeadm ships for v1.34", out)
        self.assertIn("D nil", out)  # past the table: its last row

    def test_removed_settings_and_env_round_trip(self):
        out = self.run_lua(
            "for _, l in ipairs(svc.removed_settings('ETCD_NAME=a\\nETCD_LOGGER=capnslog\\nETCD_ENABLE_V2=true\\n', '3.5.16')) do print('R ' .. l) end\n"
            "for _, l in ipairs(svc.removed_settings('ETCD_LOGGER=zap\\nETCD_ENABLE_V2=true\\n', '3.6.4')) do print('S ' .. l) end\n"
            "local flags, order = svc.flags_of([[\nspec:\n  containers:\n  - image: registry.k8s.io/etcd:3.5.21-0\n    command:\n"
            "    - etcd\n    - --name=cp1\n    - --data-dir=/var/lib/etcd\n    - --client-cert-auth=true\n    - --experimental-initial-corrupt-check\n]])\n"
            "local env = svc.env_text(flags, order, { ['initial-cluster-state'] = 'existing', ['snapshot-count'] = false })\n"
            "print(env)\nlocal back = svc.flags_of_env(env)\n"
            "print('BACK', back.name, back['data-dir'], back['initial-cluster-state'], back['experimental-initial-corrupt-check'])")
        self.assertIn("R ETCD_LOGGER=capnslog (removed in 3.5)", out)
        self.assertNotIn("R ETCD_ENABLE_V2", out)  # 3.5 still starts with it
        self.assertIn("S ETCD_ENABLE_V2=true (removed in 3.6)", out)
        self.assertNotIn("S ETCD_LOGGER", out)
        self.assertIn("ETCD_NAME=cp1\nETCD_DATA_DIR=/var/lib/etcd\nETCD_CLIENT_CERT_AUTH=true\n"
                      "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK=true\nETCD_INITIAL_CLUSTER_STATE=existing\n", out)
        self.assertIn("BACK\tcp1\t/var/lib/etcd\texisting\ttrue", out)
        bad = os.path.join(self.state, "bad.lua")
        with open(bad, "w") as f:
            f.write("local svc = require 'std.etcd_service'\nreturn runbook { name = 'bad', run = function()\n"
                    "  svc.env_text({ name = 'a\\nETCD_EVIL=1' }, { 'name' })\nend }\n")
        r = self.run_rb(bad)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("the value of --name has a line break", r.stdout + r.stderr)

    def test_an_etcd_split_between_static_pods_and_systemd(self):
        # etcd_nodes.split, what doctor's etcd-split and k8s-upgrade's preflight say (docs/etcd.md).
        os.symlink(os.path.join(ROOT, "runbooks", "lib"), os.path.join(self.state, "lib"))
        rb = self.write("split.lua", "local nodes = require 'etcd_nodes'\nreturn runbook { name = 'split', run = function()\n"
                        "  local cases = {\n"
                        "    { { cp1 = 'static', cp2 = 'static' }, { etcd = { ['local'] = {} } } },\n"
                        "    { { cp1 = 'systemd', cp2 = 'systemd' }, { etcd = { external = { endpoints = {} } } } },\n"
                        "    { { cp1 = 'systemd', cp2 = 'static', cp3 = 'none' }, { etcd = { ['local'] = {} } } },\n"
                        "    { { cp1 = 'systemd', cp2 = 'static' }, { etcd = { external = {} } } },\n"
                        "    { { cp1 = 'both', cp2 = 'static' }, { etcd = { ['local'] = {} } } },\n"
                        "  }\n"
                        "  for i, c in ipairs(cases) do print(i .. ': ' .. table.concat(nodes.split(c[1], c[2]), ' | ')) end\n"
                        "end }\n")
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = dict(re.findall(r"INFO  (\d): (.*)$", r.stdout, re.M))
        self.assertEqual(lines["1"], "")  # stacked, as kubeadm made it
        self.assertEqual(lines["2"], "")  # migrated, kubeadm told
        self.assertIn("etcd runs under systemd on cp1; neither a static Pod nor an active etcd.service on cp3 while "
                      "kubeadm-config says etcd.local (a static Pod on cp2): an etcd-to-systemd.lua migration stopped midway", lines["3"])
        self.assertIn("etcd runs as kubeadm's static Pod on cp2 while kubeadm-config names an external etcd", lines["4"])
        self.assertIn("etcd runs both as kubeadm's static Pod and as etcd.service on cp1: two etcds for one member", lines["5"])
