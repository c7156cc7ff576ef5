"""What a user sees for bad input and expected failures: a syntax error, a bug in the runbook, a
declared failure, a read-only runbook's rules, a bad inventory var or kubeconfig, a missing file."""
import json
import os
import subprocess
import unittest

from test_cli import ENGINE, ROOT, CliTest, engine


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
        # A step that failed, and nothing done: run again too (a resume would only repeat it, and a
        # new run may take the param the failure asks to change).
        rb = self.write("failed_step.lua", 'return runbook { name = "fs", run = function()\n'
                                           '  step("preflight", function() fail("node w1 flapped; -e quiet_hours=0 if understood") end)\nend }\n')
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("nothing was recorded as done: after fixing the cause, run it again", r.stderr)
        self.assertNotIn("engine resume", r.stderr)

    def test_a_bug_in_the_runbook_shows_the_runbooks_frames(self):
        rb = self.write("bug.lua", 'local function check_disk(node)\n  return node.free.percent\nend\n'
                                   'return runbook { name = "bug", run = function()\n'
                                   '  check_disk({ name = "cp1" })\nend }\n')
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
        rb = self.write("pre.lua", 'return runbook { name = "pre", run = function()\n  step("one", function() end)\n'
                                   '  fail("preflight: cp1 has %d%% free", 2)\nend }\n')
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.count("preflight: cp1 has 2% free"), 1, r.stderr)
        # As the runbook worded it; where fail() was called is in the run log, for its author.
        self.assertIn("runbook failed: preflight: cp1 has 2% free\n", r.stderr)
        self.assertNotIn("pre.lua:3", r.stderr)
        run_dir = os.path.join(self.state, "runs", os.listdir(os.path.join(self.state, "runs"))[0])
        with open(os.path.join(run_dir, "run.log")) as f:
            failed = [json.loads(l) for l in f if '"runbook failed"' in l]
        self.assertEqual(failed[0]["fields"], {"error": "preflight: cp1 has 2% free", "where": f"{rb}:3"})
        # A failure caught by pcall does not make a later error that merely ends alike a declared one.
        rb2 = self.write("caught.lua", 'return runbook { name = "caught", run = function()\n  pcall(fail, "free")\n'
                                       '  error("cp1 has 2% free")\nend }\n')
        self.assertIn(f"runbook failed: {rb2}:3: cp1 has 2% free\n", self.run_rb(rb2).stderr)
        self.assertNotIn("preflight", r.stdout)
        self.assertNotIn("bug in the runbook", r.stderr)
        self.assertIn("continue it with: engine resume", r.stderr)
        # A bug after a step was done: fix it, then resume with --force (the runbook changed).
        self.write("pre.lua", 'local k8s = require "engine.k8s"\nreturn runbook { name = "pre", run = function()\n'
                              '  step("one", function() end)\n  k8s.node("x")\nend }\n')
        r = self.run_rb(rb)
        self.assertIn("attempt to call a nil value (field 'node')", r.stderr)
        self.assertRegex(r.stderr, r"fix the runbook, then continue it with: engine resume \S+ --force")

    def test_a_dry_run_is_listed_as_one_and_never_resumed_as_a_real_run(self):
        # A failed rehearsal listed as "failed" invited `engine resume`, which ran the whole runbook
        # for real: a dry run records no step, so the resume had nothing to skip.
        rb = self.write("dry.lua", 'return runbook { name = "dry", params = { at = { type = "string" } },\n'
                                   '  run = function(p)\n  step("one", function() end)\n  if p.at == "x y" then fail("not yet") end\nend }\n')
        inv = self.inventory("h1\nh2\n")
        r = self.run_rb(rb, "--dry-run", "-i", inv, "-e", "at=x y", "--limit", "!h2")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.run_rb(rb, "--dry-run")
        runs = engine("runs", "--state-dir", self.state)
        states = sorted(line.split()[2] for line in runs.stdout.splitlines()[1:])
        self.assertEqual(states, ["dry-run-failed", "dry-run-finished"], runs.stdout)
        failed = next(line.split()[0] for line in runs.stdout.splitlines() if "dry-run-failed" in line)
        self.assertIn("dry run   nothing was changed; a resume is refused", engine("show", failed, "--state-dir", self.state).stdout)
        r = engine("resume", failed, "--state-dir", self.state)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"run '{failed}' was a dry run: it changed nothing and recorded no step, so there is nothing to "
                      f"resume; to do it for real:\n  engine run '{rb}' -i '{inv}' -e 'at=x y' --limit '!h2'", r.stderr)
        self.assertNotIn("run resumed", r.stderr + r.stdout)

    def test_a_read_only_runbook_is_run_again_not_resumed_and_makes_no_change(self):
        body = ('return runbook { name = "ro", read_only = true, run = function(p, inv)\n'
                '  step("look", function() end)\n  %s\nend }\n')
        rb = self.write("ro.lua", body % 'fail("2 finding(s)")')
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
            self.write("ro.lua", body % call)
            r = self.run_rb(rb, "-i", inv)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"ro.lua:3: {what}: refused, the runbook ro is declared read_only (it changes nothing)", r.stderr)
            self.assertIn("this is a bug in the runbook", r.stderr)
            self.assertIn("ro changes nothing: fix the runbook, then run it again", r.stderr)
        self.write("ro.lua", body % 'inv:host("h1"):exec("cat /tmp/x", { read_only = true })')
        self.assertNotIn("refused, the runbook", self.run_rb(rb, "-i", inv).stderr)  # a read goes on (and fails to connect)
        self.write("ro.lua", body.replace("read_only = true", 'read_only = "yes"') % "")
        r = self.run_rb(rb)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ro.lua:1: runbook: 'read_only' must be true or false", r.stderr)

    def test_a_host_not_connected_to_is_named_with_the_limit_that_leaves_it_out(self):
        # h1 refuses (nothing listens on port 1), h2 is not asked; the run's own --limit is kept in front.
        inv = self.inventory("[web]\nh1 ansible_host=127.0.0.1 ansible_port=1\nh2 ansible_host=127.0.0.1 ansible_port=1\n")
        rb = self.write("each.lua", 'local fleet = require "engine.fleet"\nreturn runbook { name = "each", run = function(p, inv)\n'
                        '  fleet.each(inv:hosts("all"), {}, function(h) assert(h:exec("true")) end)\nend }\n')
        r = self.run_rb(rb, "-i", inv, "--limit", "web:!h2")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("h1 was not reachable over SSH: refused (connect 127.0.0.1:1: Connection refused)", r.stderr)
        self.assertIn("a run with --limit 'web:!h2:!h1' leaves it out", r.stderr)
        self.assertNotIn("h2 was not", r.stderr)
        # A runbook that can skip such hosts itself is told about instead (--limit would leave the
        # host out of its checks too).
        self.write("each.lua", 'local fleet = require "engine.fleet"\nreturn runbook { name = "each", params = {\n'
                   '  skip_unreachable = { type = "boolean", default = false, help = "such a worker is skipped" } },\n'
                   '  run = function(p, inv)\n'
                   '  fleet.each(inv:hosts("all"), {}, function(h) assert(h:exec("true")) end)\nend }\n')
        r = self.run_rb(rb, "-i", inv, "--limit", "h1")
        self.assertIn("h1 was not reachable over SSH: refused", r.stderr)
        self.assertIn("a run with -e skip_unreachable=true: such a worker is skipped", r.stderr)
        self.assertNotIn("--limit 'h1:!h1'", r.stderr)
        # Many: ten named, the rest counted, every one in the --limit.
        many = self.inventory("".join(f"m{i:02} ansible_host=127.0.0.1 ansible_port=1\n" for i in range(12)), "many.ini")
        each_all = self.write("many.lua", 'local fleet = require "engine.fleet"\nreturn runbook { name = "many", run = function(p, inv)\n'
                              '  fleet.each(inv:hosts("all"), { max_failures = 12 }, function(h) assert(h:exec("true")) end)\n'
                              '  fail("after them")\nend }\n')
        r = self.run_rb(each_all, "-i", many)
        self.assertEqual(r.stderr.count("was not reachable over SSH"), 10, r.stderr)
        self.assertIn("... and 2 more hosts not reachable over SSH", r.stderr)
        self.assertIn("'!m00:!m01:!m02:!m03:!m04:!m05:!m06:!m07:!m08:!m09:!m10:!m11'", r.stderr)
        # A failure that is not about reaching the host offers nothing of the kind.
        self.write("each.lua", 'return runbook { name = "each", run = function() fail("no") end }\n')
        self.assertNotIn("--limit", self.run_rb(rb, "-i", inv).stderr)

    def test_a_resume_can_leave_out_the_host_it_could_not_reach_and_finish_it_later(self):
        # Steps done on "ok" before h1 refused: the way on is the same run without h1 (its done
        # steps skipped), not a new one; the run then says what is left on h1 is not done, `engine runs`
        # says partial, and a plain resume once h1 answers finishes it.
        inv = self.inventory("ok ansible_host=127.0.0.1 ansible_port=1\nh1 ansible_host=127.0.0.1 ansible_port=1\n")
        rb = self.write("resume.lua", 'local fleet = require "engine.fleet"\nreturn runbook { name = "resume",\n'
                        '  params = { token = { type = "string", secret = true } },\n  run = function(p, inv)\n'
                        '  fleet.each(inv:hosts("all"), {}, function(h) step("one", function()\n'
                        '    if h.name == "h1" and p.token ~= "up" then assert(h:exec("true")) end\n'
                        '    print("DID " .. h.name) end) end)\nend }\n')
        r = self.run_rb(rb, "-i", inv, "-e", "token=down")
        self.assertEqual(r.returncode, 1, r.stderr)
        run_id = os.listdir(os.path.join(self.state, "runs"))[0]
        self.assertIn("h1 was not reachable over SSH: refused", r.stderr)
        self.assertIn(f"to go on without it: engine resume {run_id} --state-dir {self.state} --limit '!h1'", r.stderr)
        self.assertNotIn("a run with --limit", r.stderr)
        # Never widened: a host outside the run is not added, and nothing left is refused.
        r = engine("resume", run_id, "--state-dir", self.state, "-e", "token=down", "--limit", "nosuch")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--limit: no host or group matches 'nosuch'", r.stderr)
        r = engine("resume", run_id, "--state-dir", self.state, "-e", "token=down", "--limit", "!all")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--limit !all leaves no host of the run", r.stderr)
        r = engine("resume", run_id, "--state-dir", self.state, "-e", "token=down", "--limit", "!h1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("DID", r.stdout)  # ok's step was done; h1 not visited
        self.assertIn(f"left out by --limit '!h1': h1; whatever the run still has to do there is not done: once it can be "
                      f"reached, engine resume {run_id} --state-dir {self.state} does it (the steps done are skipped)", r.stderr)
        runs = engine("runs", "--state-dir", self.state)
        self.assertRegex(runs.stdout, rf"{run_id}\s+resume\s+partial\s")
        with open(os.path.join(self.state, "runs", run_id, "report.json")) as f:
            self.assertEqual(json.load(f)["left_out"], ["h1"])
        self.assertIn(f"left out  h1 (by a resume's --limit: engine resume {run_id} finishes them)",
                      engine("show", run_id, "--state-dir", self.state).stdout)
        r = engine("resume", run_id, "--state-dir", self.state, "-e", "token=up")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("DID h1", r.stdout)
        self.assertNotIn("DID ok", r.stdout)
        self.assertRegex(engine("runs", "--state-dir", self.state).stdout, rf"{run_id}\s+resume\s+finished\s")

    def test_no_kubeconfig_tells_the_operator_where_to_give_one(self):
        rb = self.write("k.lua", 'local k8s = require "engine.k8s"\nreturn runbook { name = "k", run = function()\n'
                                 '  step("nodes", function() return k8s.nodes() end)\nend }\n')
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
        r = subprocess.run([ENGINE, "run", rb, "--state-dir", self.state], capture_output=True, text=True, timeout=60,
                           env={**env, "HOME": self.state})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"runbook failed: kubernetes: no kubeconfig found (looked at {self.state}/.kube/config); give one "
                      "with --kubeconfig FILE, $KUBECONFIG or the inventory's k8s_kubeconfig", r.stderr)
        self.assertNotIn("bug in the runbook", r.stderr)

    def test_a_bad_connection_var_stops_the_run_before_it_starts_naming_inventory_host_and_var(self):
        rb = self.write("x.lua", 'return runbook { name = "x", run = function(p, inv) print("RAN") end }\n')
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
        self.assertIn("param 'version': 'v1.34' is refused: target, e.g. 1.34.3 (it must match the Lua pattern", r.stderr)

    def test_the_shipped_rollouts_refuse_zero_workers_at_once(self):
        # Ansible's `serial: 0` is every host at once; 0 here used to be one at a time, silently.
        r = self.run_rb(os.path.join(ROOT, "runbooks", "k8s-upgrade.lua"), "-e", "version=1.34.3", "-e", "kind=minor",
                        "-e", "workers_at_once=0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("param 'workers_at_once': '0' is refused", r.stderr)
        self.assertIn("a count from 1, or a percentage of the workers", r.stderr)
        r = self.run_rb(os.path.join(ROOT, "runbooks", "etcd-bootstrap.lua"), "-e", "workers_at_once=0%")
        self.assertEqual(r.returncode, 2)
        self.assertIn("param 'workers_at_once': '0%' is refused", r.stderr)

    def test_a_value_outside_a_params_range_is_refused_before_the_run(self):
        # A ratio of 1.5 would fail the postflight after every node was upgraded; gate_interval=0
        # would poll Prometheus and the API without a pause.
        r = self.run_rb(os.path.join(ROOT, "runbooks", "k8s-upgrade.lua"), "-e", "version=1.34.3", "-e", "kind=minor",
                        "-e", "pod_ready_ratio=1.5", "-e", "gate_interval=0", "-e", "canary=-1")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("param 'pod_ready_ratio': '1.5' is refused: it must be from 0 to 1 "
                      "(postflight: share of pods that must be ready)", r.stderr)
        self.assertIn("param 'gate_interval': '0' is refused: it must be at least 1s", r.stderr)
        self.assertIn("param 'canary': '-1' is refused: it must be at least 0", r.stderr)
        self.assertNotIn("run started", r.stderr + r.stdout)
        r = engine("run", os.path.join(ROOT, "runbooks", "k8s-upgrade.lua"), "--help")
        self.assertRegex(r.stdout, r"pod_ready_ratio\s+number from 0 to 1, default 0.9\n")

    def test_a_range_declared_wrong_is_the_runbooks_error_at_its_line(self):
        for decl, want in [('{ type = "string", min = 1 }', "param 'x': 'min' applies to integer, number and duration params only"),
                           ('{ type = "integer", min = 5, max = 1 }', "param 'x': min is above max"),
                           ('{ type = "integer", max = 10, default = 20 }', "param 'x': default 20 is not at most 10"),
                           ('{ type = "duration", min = "soon" }', "param 'x': 'min' must be a number or a duration"),
                           ('{ type = "string", values = { "a" } }', "param 'x': 'values' applies to enum and list params only")]:
            path = self.write("ranged.lua", "return runbook {\n  name = 'ranged',\n  params = { x = %s },\n"
                                            "  run = function() end,\n}\n" % decl)
            r = self.run_rb(path)
            self.assertEqual(r.returncode, 1, r.stderr)  # the runbook's own bug, as any it raises
            self.assertIn("ranged.lua:1: " + want, r.stderr)

    def test_an_amount_over_100_percent_is_refused_before_the_run(self):
        # It used to pass the param's pattern and stop the run when the rollout reached the workers:
        # on a cluster, after the control plane was upgraded.
        r = self.run_rb(os.path.join(ROOT, "runbooks", "k8s-upgrade.lua"), "-e", "version=1.34.3", "-e", "kind=minor",
                        "-e", "workers_at_once=150%", "-e", "max_failures=101%")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("param 'workers_at_once' expects a count such as 3 or a percentage such as 10% (at most 100%), "
                      "got '150%'", r.stderr)
        self.assertIn("param 'max_failures' expects a count such as 3 or a percentage such as 10% (at most 100%), "
                      "got '101%'", r.stderr)
        self.assertNotIn("run started", r.stderr + r.stdout)

    def test_a_workload_without_its_kind_is_refused_before_the_run(self):
        # The gate parsed wait_workloads only when the run started: after the inventory was read and
        # the hosts connected. Each item is now checked with the other -e values.
        r = self.run_rb(os.path.join(ROOT, "runbooks", "k8s-upgrade.lua"), "-e", "version=1.34.3", "-e", "kind=minor",
                        "-e", "wait_workloads=shop/deployment/web,shop/web")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("param 'wait_workloads': 'shop/web' is refused: before each next worker, these have every "
                      "replica ready: NS/KIND/NAME or NS/KIND?SELECTOR", r.stderr)
        self.assertNotIn("run started", r.stderr + r.stdout)

    def test_a_time_of_day_out_of_range_is_refused_before_the_run(self):
        # cert-renew checked timer_at only when it reached the timers: after renewing every node's
        # certificates and restarting their components.
        for rb, param, *more in (("cert-renew.lua", "timer_at", "-e", "timer=true"), ("etcd-maintenance.lua", "at"),
                                 ("recover-disk.lua", "cleanup_at")):
            r = self.run_rb(os.path.join(ROOT, "runbooks", rb), "-e", f"{param}=25:99", *more)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"param '{param}' expects a time of day, HH:MM or HH:MM:SS (00:00 to 23:59:59), got '25:99'",
                          r.stderr)
            self.assertNotIn("run started", r.stderr + r.stdout)

    def test_a_file_to_write_in_a_directory_that_does_not_exist_is_refused_before_the_run(self):
        # cert-renew wrote admin_conf last: after renewing every node, the write failed.
        missing = os.path.join(self.state, "no-such-dir", "admin.conf")
        r = self.run_rb(os.path.join(ROOT, "runbooks", "cert-renew.lua"), "-e", f"admin_conf={missing}")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"param 'admin_conf' expects a file this machine can write (its directory "
                      f"{os.path.dirname(missing)} does not exist), got '{missing}'", r.stderr)
        self.assertNotIn("run started", r.stderr + r.stdout)

    def test_a_user_name_and_a_webhook_url_are_checked_before_the_run(self):
        # etcd-to-systemd refused 'root;rm' only at its user step on each node (after the
        # snapshot); a notify_url that is no URL was found when the first notice failed.
        for rb, given, param in (("etcd-to-systemd.lua", ("-e", "user=root;rm"), "user"),
                                 ("k8s-upgrade.lua", ("-e", "version=1.34.3", "-e", "kind=minor", "-e", "notify_url=hooks"),
                                  "notify_url")):
            r = self.run_rb(os.path.join(ROOT, "runbooks", rb), *given)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"param '{param}': '", r.stderr)
            self.assertIn("is refused", r.stderr)
            self.assertNotIn("run started", r.stderr + r.stdout)

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

    def test_a_conventional_group_the_inventory_leaves_out_is_none_a_mistyped_one_is_named(self):
        # std.groups.optional: the shipped runbooks' leader (else the first control-plane host) and
        # workers (else none) when the inventory has no such group; a name given otherwise that
        # matches nothing still stops the run, with the nearest name.
        inv = self.inventory("[k8s-cp]\ncp1 ansible_host=127.0.0.1\ncp2 ansible_host=127.0.0.1\n")
        rb = self.write("groups.lua", 'local groups = require "std.groups"\n'
                                      'return runbook { name = "g", params = { workers = { default = "k8s-worker" } },\n'
                                      '  run = function(p, inv)\n'
                                      '    local leader = groups.optional(inv, "k8s-cp-leader", "k8s-cp-leader")[1] or inv:hosts("k8s-cp")[1]\n'
                                      '    print("leader " .. leader.name .. " workers " .. #groups.optional(inv, p.workers, "k8s-worker"))\n'
                                      '    print("cps " .. #groups.optional(inv, "k8s-cp", "k8s-cp"))\n'
                                      '  end }\n')
        r = self.run_rb(rb, "-i", inv)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("leader cp1 workers 0", r.stdout)
        self.assertIn("cps 2", r.stdout)
        r = self.run_rb(rb, "-i", inv, "-e", "workers=k8s-cpp")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no host or group matches 'k8s-cpp' (did you mean 'k8s-cp'?)", r.stderr)

    def test_bad_log_format_is_a_usage_error(self):
        r = self.run_rb("runbooks/fleet.lua", "--log-format", "xml")
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main()
