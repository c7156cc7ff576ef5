"""CLI tests: run the built engine binary on sample runbooks and check what a user sees."""
import json
import os
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


class TestBadInput(CliTest):
    def test_syntax_error_names_file_line_and_parser_message(self):
        r = self.run_rb("runbooks/syntax.lua")
        self.assertEqual(r.returncode, 2)
        self.assertIn("runbooks/syntax.lua:3: ')' expected near 'inv'", r.stderr)

    def test_an_error_the_runbook_raises_is_said_once_with_its_line(self):
        r = self.run_rb("runbooks/runtime_error.lua")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("runbooks/runtime_error.lua:4: only 3% free on cp1", r.stderr)
        self.assertEqual(r.stderr.count("only 3% free"), 1)  # said once
        self.assertNotIn("only 3% free", r.stdout)
        self.assertNotIn("bug in the runbook", r.stderr)  # an outcome, not a bug: no frames
        # Nothing was recorded as done: no resume to offer.
        self.assertIn("nothing was recorded as done: after fixing the cause, run it again", r.stderr)
        self.assertNotIn("engine resume", r.stderr)

    def test_a_bug_in_the_runbook_shows_the_runbooks_frames(self):
        rb = os.path.join(self.state, "bug.lua")
        with open(rb, "w") as f:
            f.write('local function check_disk(node)\n  return node.free.percent\nend\n'
                    'return runbook { name = "bug", run = function()\n  check_disk({ name = "cp1" })\nend }\n')
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("bug.lua:2: attempt to index a nil value (field 'free')", r.stderr)
        self.assertIn("this is a bug in the runbook, not a failure of the cluster", r.stderr)
        self.assertIn("bug.lua:5:", r.stderr)  # the caller's line, in the frames
        self.assertIn("in upvalue 'check_disk'", r.stderr)
        self.assertNotIn("[C]", r.stderr)  # the engine's frames only with -v
        self.assertEqual(r.stderr.count("attempt to index"), 1)
        r = self.run_rb(rb, "-v")
        self.assertNotIn("-v shows all", r.stderr)

    def test_a_declared_failure_is_said_once_without_a_traceback_and_resume_only_with_steps_done(self):
        rb = os.path.join(self.state, "pre.lua")
        with open(rb, "w") as f:
            f.write('return runbook { name = "pre", run = function()\n  step("one", function() end)\n'
                    '  fail("preflight: cp1 has %d%% free", 2)\nend }\n')
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.count("preflight: cp1 has 2% free"), 1, r.stderr)
        self.assertNotIn("preflight", r.stdout)
        self.assertNotIn("bug in the runbook", r.stderr)
        self.assertIn("continue it with: engine resume", r.stderr)
        # A bug after a step was done: fix it, then resume with --force (the runbook changed).
        with open(rb, "w") as f:
            f.write('local k8s = require "engine.k8s"\nreturn runbook { name = "pre", run = function()\n'
                    '  step("one", function() end)\n  k8s.node("x")\nend }\n')
        r = self.run_rb(rb)
        self.assertIn("attempt to call a nil value (field 'node')", r.stderr)
        self.assertRegex(r.stderr, r"fix the runbook, then continue it with: engine resume \S+ --force")

    def test_a_read_only_runbook_is_run_again_not_resumed_and_makes_no_change(self):
        rb = os.path.join(self.state, "ro.lua")
        body = ('return runbook { name = "ro", read_only = true, run = function(p, inv)\n'
                '  step("look", function() end)\n  %s\nend }\n')
        with open(rb, "w") as f:
            f.write(body % 'fail("2 finding(s)")')
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ro changes nothing: once the cause is fixed, run it again for a fresh answer", r.stderr)
        self.assertIn("Read only: it changes nothing (checked as it runs); a failed run is run again, not resumed.",
                      self.run_rb(rb, "--help").stdout)
        self.assertNotIn("continue it with", r.stderr)
        run_id = os.listdir(os.path.join(self.state, "runs"))[0]
        r = engine("resume", run_id, "--state-dir", self.state)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"ro changes nothing (read_only): a resume would give back the answers {run_id} recorded; "
                      f"run it again: engine run {rb}", r.stderr)
        # A change inside it is a bug in the runbook, refused at its line before anything is sent.
        inv = self.inventory("h1 ansible_host=127.0.0.1 ansible_port=1\n")
        for call, what in (('inv:host("h1"):exec("rm -f /tmp/x")', "exec"),
                           ('inv:host("h1"):write_file("/tmp/x", "y")', "write_file")):
            with open(rb, "w") as f:
                f.write(body % call)
            r = self.run_rb(rb, "-i", inv)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"ro.lua:3: {what}: refused, the runbook ro is declared read_only (it changes nothing)", r.stderr)
            self.assertIn("this is a bug in the runbook", r.stderr)
            self.assertIn("ro changes nothing: fix the runbook, then run it again", r.stderr)
        with open(rb, "w") as f:
            f.write(body % 'inv:host("h1"):exec("cat /tmp/x", { read_only = true })')
        self.assertNotIn("refused, the runbook", self.run_rb(rb, "-i", inv).stderr)  # a read goes on (and fails to connect)
        with open(rb, "w") as f:
            f.write(body.replace("read_only = true", 'read_only = "yes"') % "")
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ro.lua:1: runbook: 'read_only' must be true or false", r.stderr)

    def test_no_kubeconfig_tells_the_operator_where_to_give_one(self):
        rb = os.path.join(self.state, "k.lua")
        with open(rb, "w") as f:
            f.write('local k8s = require "engine.k8s"\nreturn runbook { name = "k", run = function()\n'
                    '  step("nodes", function() return k8s.nodes() end)\nend }\n')
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
        r = subprocess.run([ENGINE, "run", rb, "--state-dir", self.state], capture_output=True, text=True, timeout=60,
                           env={**env, "HOME": self.state})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"runbook failed: kubernetes: no kubeconfig found (looked at {self.state}/.kube/config); give one "
                      "with --kubeconfig FILE, $KUBECONFIG or the inventory's k8s_kubeconfig", r.stderr)
        self.assertNotIn("bug in the runbook", r.stderr)

    def test_a_bad_connection_var_stops_the_run_before_it_starts_naming_inventory_host_and_var(self):
        rb = os.path.join(self.state, "x.lua")
        with open(rb, "w") as f:
            f.write('return runbook { name = "x", run = function(p, inv) print("RAN") end }\n')
        for text, want in (("cp1 ansible_port=22x\n", "host 'cp1': ansible_port '22x' is not a port number (1-65535)"),
                           ("cp1 ansible_port=70000\n", "host 'cp1': ansible_port '70000' is not a port number"),
                           ("all:\n  hosts:\n    cp1:\n      ansible_user: [a, b]\n",
                            'host \'cp1\': ansible_user must be one value, not ["a","b"]')):
            inv = self.inventory(text, "hosts.yml" if text.startswith("all:") else "hosts.ini")
            r = self.run_rb(rb, "-i", inv)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"error: inventory {inv}: {want}", r.stderr)
            self.assertNotIn("RAN", r.stdout)

    def test_file_without_runbook_declaration(self):
        r = self.run_rb("runbooks/no_return.lua")
        self.assertEqual(r.returncode, 2)
        self.assertIn("must end with `return runbook", r.stderr)

    def test_missing_runbook_file(self):
        r = self.run_rb("runbooks/nope.lua")
        self.assertEqual(r.returncode, 2)
        self.assertIn("runbooks/nope.lua: no such runbook file", r.stderr)

    def test_missing_required_param_is_named_with_its_help(self):
        r = self.run_rb("runbooks/params.lua")
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing required param 'version' (string): target, e.g. 1.34.3", r.stderr)

    def test_wrong_type_names_param_expected_type_and_value(self):
        r = self.run_rb("runbooks/params.lua", "-e", "version=1.2.3", "-e", "workers_at_once=many")
        self.assertEqual(r.returncode, 2)
        self.assertIn("param 'workers_at_once' expects an integer, got 'many'", r.stderr)

    def test_pattern_mismatch(self):
        r = self.run_rb("runbooks/params.lua", "-e", "version=v1.34")
        self.assertEqual(r.returncode, 2)
        self.assertIn("'v1.34' does not match the pattern", r.stderr)

    def test_the_shipped_rollouts_refuse_zero_workers_at_once(self):
        # Ansible's `serial: 0` is every host at once; 0 here used to be one at a time, silently.
        r = self.run_rb(os.path.join(ROOT, "runbooks", "k8s-upgrade.lua"), "-e", "version=1.34.3", "-e", "kind=minor",
                        "-e", "workers_at_once=0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("param 'workers_at_once': '0' does not match the pattern", r.stderr)
        self.assertIn("a count from 1, or a percentage of the workers", r.stderr)
        r = self.run_rb(os.path.join(ROOT, "runbooks", "etcd-bootstrap.lua"), "-e", "workers_at_once=0%")
        self.assertEqual(r.returncode, 2)
        self.assertIn("param 'workers_at_once': '0%' does not match the pattern", r.stderr)

    def test_unknown_param_suggests_the_closest(self):
        r = self.run_rb("runbooks/params.lua", "-e", "version=1.2.3", "-e", "workers_at_onc=2")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown param 'workers_at_onc' (did you mean 'workers_at_once'?)", r.stderr)

    def test_extra_without_equals(self):
        r = self.run_rb("runbooks/params.lua", "-e", "version")
        self.assertEqual(r.returncode, 2)
        self.assertIn("-e 'version': expected name=value", r.stderr)

    def test_malformed_yaml_inventory_names_file_line_column(self):
        inv = self.inventory("all:\n  hosts:\n    a:\n      x: [1, 2\n", "bad.yml")
        r = self.run_rb("runbooks/fleet.lua", "-i", inv)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"bad\.yml:\d+:\d+: ")

    def test_malformed_ini_inventory_names_file_line_column(self):
        inv = self.inventory("[web]\nweb1\n[web:varz]\nx=1\n")
        r = self.run_rb("runbooks/fleet.lua", "-i", inv)
        self.assertEqual(r.returncode, 2)
        self.assertIn("hosts.ini:3:6: section [web:varz] has unknown type 'varz'", r.stderr)

    def test_unknown_group_or_host_in_limit_is_named(self):
        inv = self.inventory("[web]\nweb1\nweb2\n[db]\ndb1\n")
        r = self.run_rb("runbooks/fleet.lua", "-i", inv, "--limit", "web:dbs")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--limit: no host or group matches 'dbs' (did you mean 'db'?)", r.stderr)
        r = self.run_rb("runbooks/fleet.lua", "-i", inv, "--limit", "web3")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no host or group matches 'web3'", r.stderr)

    def test_bad_log_format_is_a_usage_error(self):
        r = self.run_rb("runbooks/fleet.lua", "--log-format", "xml")
        self.assertEqual(r.returncode, 2)


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
