"""engine check before anything runs: API typos found with file:line:column (engine.lint), a module
typo named with the closest module, every shipped runbook and module clean."""
import json
import os
import subprocess
import unittest

from test_cli import CliTest, ENGINE, HERE, engine


class TestStaticCheck(CliTest):
    RB = """local k8s = require "engine.k8s"
local fleet = require "engine.fleet"
return runbook { name = "typos", run = function(p, inv)
  fleet.each(inv:hosts("all"), { at_onec = 2 }, function(h)
    h:exce("true", { suod = true })
    local r = h:exec("true", { sudo = true, timeot = 5 })
    k8s.node("x")
    local closing <close> = nil
    count = (undefinedd or 0) + 1
    prnt("x")
  end)
end }
"""

    def test_api_typos_are_found_before_anything_runs_with_file_line_column(self):
        rb = os.path.join(self.state, "typos.lua")
        with open(rb, "w") as f:
            f.write(self.RB)
        r = engine("check", rb)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        want = [f"{rb}:4:34: engine.fleet.each: unknown option 'at_onec' (did you mean 'at_once'?)",
                f"{rb}:5:7: no object the engine knows has a method 'exce' (did you mean 'exec'?)",
                f"{rb}:6:11: warning: unused local 'r'",
                f"{rb}:6:45: Host:exec: unknown option 'timeot' (did you mean 'timeout'?)",
                f"{rb}:7:9: module 'engine.k8s' has no field 'node' (did you mean 'nodes'?)",
                f"{rb}:9:5: assignment to undeclared global 'count' (declare it: local count = ...)",
                f"{rb}:9:14: undefined global 'undefinedd'",
                f"{rb}:10:5: undefined global 'prnt' (did you mean 'print'?)"]
        got = [l for l in r.stderr.splitlines() if l.startswith(rb)]
        self.assertEqual(got, want)
        self.assertIn("7 problems in the runbook (above); nothing ran", r.stderr)
        # Too many arguments to a documented function; an unused local is a warning (check passes).
        with open(rb, "w") as f:
            f.write('local fleet = require "engine.fleet"\nlocal unused_thing = 5\n'
                    'return runbook { name = "ar", run = function() fleet.each({}, {}, function() end, "extra") end }\n')
        r = engine("check", rb)
        self.assertIn(f"{rb}:2:7: warning: unused local 'unused_thing'", r.stderr)
        self.assertIn(f"{rb}:3:54: engine.fleet.each takes at most 3 arguments, given 4", r.stderr)
        self.assertIn("1 problem in the runbook", r.stderr)
        with open(rb, "w") as f:
            f.write(self.RB)
        # engine run says the same before it starts (engine check is the gate).
        r = self.run_rb(rb, "-i", "a,")
        self.assertIn(f"warning: {rb}:4:34: engine.fleet.each: unknown option 'at_onec'", r.stderr)

    def test_a_local_that_shadows_a_module_alias_is_its_own_variable(self):
        # k8s-upgrade's `local text = tostring(err)` inside a function, beside `local text = require
        # "std.text"`: text:find there is a string's, and the module is checked again after the block.
        rb = self.write("shadow.lua", 'local text = require "std.text"\n'
                        'return runbook { name = "s", run = function()\n'
                        '  do local text = tostring(1); print(text:find("1"), text.len) end\n'
                        '  print(text.columns({ { "A" } }), text.colums)\nend }\n')
        r = engine("check", rb)
        self.assertEqual([l for l in r.stderr.splitlines() if l.startswith(rb)],
                         [f"{rb}:4:41: module 'std.text' has no field 'colums' (did you mean 'columns'?)"])

    def test_every_shipped_runbook_and_stdlib_module_passes(self):
        root = os.path.join(HERE, "..", "..")
        for d in ("runbooks", "runbooks/examples"):
            for name in sorted(os.listdir(os.path.join(root, d))):
                if name.endswith(".lua"):
                    r = engine("check", os.path.join(root, d, name))
                    self.assertEqual(r.returncode, 0, f"{d}/{name}: {r.stderr}")
                    self.assertNotIn("warning", r.stderr, f"{d}/{name}")
        for d in ("stdlib/std", "stdlib/engine", "runbooks/lib"):
            for name in sorted(os.listdir(os.path.join(root, d))):
                if name.endswith(".lua"):
                    r = engine("check", "--module", os.path.join(root, d, name))
                    self.assertEqual((r.returncode, r.stderr), (0, ""), f"{d}/{name}")


class TestScopesStepsParams(CliTest):
    """The checker knows Lua's scopes (a local is visible to the end of its block), the runbook's
    params, how many arguments each documented call needs, and step names reused in one block."""
    RB = """local k8s = require "engine.k8s"
local svc = require "std.etcd_service"
return runbook { name = "scopes", params = { version = { type = "string" }, dry = { type = "boolean" } },
  run = function(p, inv)
    if p.version then
      local target = p.version
      print(target)
    end
    print(target)
    local node = k8s.get("Node")
    print(p.verison, p.dry, node)
    step("drain", function() end)
    step("drain", function() end)
    if p.dry then step("drain", function() end) else step("drain", function() end) end
    for _, h in ipairs(inv:hosts()) do
      local seen = svc.version(h)
      repeat local again = seen until again
      local never = 1
    end
    helper()
  end }
"""

    def test_scopes_params_arity_and_step_names(self):
        rb = os.path.join(self.state, "scopes.lua")
        with open(rb, "w") as f:
            f.write(self.RB)
        r = engine("check", rb)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        got = [l for l in r.stderr.splitlines() if l.startswith(rb)]
        self.assertEqual(got, [
            # a local of the if's block is gone after its end
            f"{rb}:9:11: undefined global 'target' (a local 'target' ended with its block at line 8)",
            f"{rb}:10:22: engine.k8s.get needs at least 2 arguments, given 1",
            f"{rb}:11:13: the runbook declares no param 'verison' (did you mean 'version'?)",
            f"{rb}:13:10: warning: step 'drain' is already used at line 12 in this block: give each step its own name",
            f"{rb}:18:13: warning: unused local 'never'",
            f"{rb}:20:5: undefined global 'helper'",
        ])
        # the same name in two branches of an if is two blocks; a repeat's local is seen by its until;
        # svc.version(h) leaves out an optional argument
        self.assertIn("4 problems in the runbook", r.stderr)

    def test_a_global_function_definition_is_refused_as_the_sandbox_would(self):
        rb = os.path.join(self.state, "glob.lua")
        with open(rb, "w") as f:
            f.write('local function ok_helper() return 1 end\n'
                    'local x = "(" .. ")" .. "=" -- strings are not brackets\n'
                    'return runbook { name = "g", run = function()\n'
                    '  function helper() return ok_helper() end\n'
                    '  step("s", function() return x end, {})\nend }\n')
        r = engine("check", rb)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"{rb}:4:12: assignment to undeclared global 'helper' (declare it: local function helper)", r.stderr)
        self.assertIn("1 problem in the runbook", r.stderr)
        # and the run would have failed there, after whatever ran before it: the sandbox refuses new globals
        r = self.run_rb(rb, "-i", "a,")
        self.assertIn("warning: " + f"{rb}:4:12: assignment to undeclared global 'helper'", r.stderr)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("assignment to undeclared global 'helper'", r.stderr)


class TestModuleTypo(CliTest):
    def test_a_module_typo_is_a_configuration_error_with_a_suggestion(self):
        rb = os.path.join(self.state, "typo.lua")
        os.makedirs(os.path.join(self.state, "lib"))
        with open(os.path.join(self.state, "lib", "upgrade_steps.lua"), "w") as f:
            f.write("return {}\n")
        for name, want in [("engine.k8", "engine.k8s"), ("std.txt", "std.text"), ("upgrade_step", "upgrade_steps")]:
            with open(rb, "w") as f:
                f.write(f'local m = require "{name}"\nreturn runbook {{ name = "t", run = function() end }}\n')
            for cmd in (["check", rb], ["run", rb, "--state-dir", self.state]):
                r = engine(*cmd)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(f"typo.lua:1: module '{name}' not found (did you mean '{want}'?)", r.stderr)
                self.assertNotIn("stack traceback", r.stderr)
                self.assertNotIn("resume", r.stdout + r.stderr)


class TestLintCache(CliTest):
    """The static check's findings are kept between runs (ENGINE_CACHE_DIR) and used only while
    everything they came from is unchanged: the runbook, the modules it requires, the engine."""

    def check(self, rb, cache):
        return subprocess.run([ENGINE, "check", rb], capture_output=True, text=True, timeout=60, cwd=HERE,
                              env={**os.environ, "ENGINE_CACHE_DIR": cache})

    def entries(self, cache):
        return sorted(os.listdir(cache)) if os.path.isdir(cache) else []

    def test_findings_come_from_the_cache_until_a_source_or_a_required_module_changes(self):
        cache = os.path.join(self.state, "cache")
        rb = os.path.join(self.state, "rb.lua")
        helpers = os.path.join(self.state, "helpers.lua")
        with open(helpers, "w") as f:
            f.write("local M = {}\nfunction M.greet() return 1 end\nreturn M\n")
        with open(rb, "w") as f:
            f.write('local helpers = require "helpers"\n'
                    'return runbook { name = "c", run = function() helpers.greett() end }\n')
        finding = f"{rb}:2:55: module 'helpers' has no field 'greett' (did you mean 'greet'?)"
        r = self.check(rb, cache)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(finding, r.stderr)
        [entry] = self.entries(cache)
        self.assertEqual(oct(os.stat(cache).st_mode & 0o777), "0o700")
        # The entry is what the next check reports: a planted finding shows it is read, not redone.
        path = os.path.join(cache, entry)
        with open(path) as f:
            kept = json.load(f)
        self.assertEqual(kept["findings"], [finding])
        self.assertIn(helpers, kept["deps"])
        with open(path, "w") as f:
            json.dump({**kept, "findings": [f"{rb}:1:1: planted"]}, f)
        r = self.check(rb, cache)
        self.assertIn(f"{rb}:1:1: planted", r.stderr)
        self.assertNotIn(finding, r.stderr)
        # The required module changes (it now has greett): the entry no longer holds.
        with open(helpers, "w") as f:
            f.write("local M = {}\nfunction M.greett() return 1 end\nreturn M\n")
        r = self.check(rb, cache)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("planted", r.stderr)
        # The runbook changes: a new key, its own findings.
        with open(rb, "w") as f:
            f.write('local helpers = require "helpers"\n'
                    'return runbook { name = "c", run = function() helpers.greet() end }\n')
        r = self.check(rb, cache)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"{rb}:2:55: module 'helpers' has no field 'greet' (did you mean 'greett'?)", r.stderr)
        self.assertEqual(len(self.entries(cache)), 2)

    def test_a_corrupt_entry_is_ignored_and_an_empty_cache_dir_turns_the_cache_off(self):
        cache = os.path.join(self.state, "cache")
        rb = os.path.join(self.state, "rb.lua")
        with open(rb, "w") as f:
            f.write('local fleet = require "engine.fleet"\n'
                    'return runbook { name = "c", run = function() fleet.eachh() end }\n')
        finding = f"{rb}:2:53: module 'engine.fleet' has no field 'eachh' (did you mean 'each'?)"
        self.assertIn(finding, self.check(rb, cache).stderr)
        [entry] = self.entries(cache)
        for junk in ('{"deps": {}, "findings": [', "not json", '{"deps": [], "findings": []}'):
            with open(os.path.join(cache, entry), "w") as f:
                f.write(junk)
            r = self.check(rb, cache)
            self.assertEqual(r.returncode, 2, junk)
            self.assertIn(finding, r.stderr, junk)
        other = os.path.join(self.state, "off")
        r = subprocess.run([ENGINE, "check", rb], capture_output=True, text=True, timeout=60, cwd=HERE,
                           env={**os.environ, "ENGINE_CACHE_DIR": "", "HOME": other, "XDG_CACHE_HOME": other})
        self.assertIn(finding, r.stderr)
        self.assertFalse(os.path.exists(other))
        # A symlink where the cache would be is not followed: nothing is written through it.
        target = os.path.join(self.state, "elsewhere")
        os.makedirs(target)
        link = os.path.join(self.state, "link")
        os.symlink(target, link)
        self.assertIn(finding, self.check(rb, link).stderr)
        self.assertEqual(os.listdir(target), [])


if __name__ == "__main__":
    unittest.main()
