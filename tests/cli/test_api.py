"""The API's one description: the LuaCATS definitions in stdlib/meta. `engine api` prints docs/api.md's
reference tables from them (and JSON); the checker reads the same. These tests keep the docs, the
definitions and the checker from drifting apart."""
import json
import os
import re
import unittest

from test_cli import CliTest, HERE, engine

ROOT = os.path.join(HERE, "..", "..")


class TestApiDescription(CliTest):
    def test_api_md_reference_tables_are_what_the_definitions_say(self):
        r = engine("api")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(ROOT, "docs", "api.md")) as f:
            text = f.read()
        m = re.search(r"<!-- reference tables: begin -->\n(.*)<!-- reference tables: end -->", text, re.S)
        self.assertIsNotNone(m, "docs/api.md has lost its reference-table markers")
        self.assertEqual(m.group(1), r.stdout,
                         "docs/api.md's reference tables differ from stdlib/meta: run scripts/api-reference")
        # the tables are real: a call, an option with its default, a method, an alias
        self.assertIn("| `fleet.each(hosts, opts, fn?)` | yes | `engine.fleet.Results` |", r.stdout)
        self.assertIn("| `at_once?` | `integer\\|string` | `1` |", r.stdout)
        self.assertIn("| `host:exec(cmd, opts?)` | yes |", r.stdout)
        self.assertIn("(the same function as `engine.Host:upload`)", r.stdout)

    def test_every_argument_is_described_so_the_checker_knows_what_a_call_needs(self):
        r = engine("api", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        api = json.loads(r.stdout)
        mods = {m["name"]: m for m in api["modules"]}
        self.assertGreaterEqual(len(mods), 25)
        undocumented = []
        for m in api["modules"]:
            for f in m["functions"]:
                undocumented += [f"{m['file']}: {f['name']}({p['name']})" for p in f["params"] if "type" not in p]
        for c in api["classes"]:
            for f in c["methods"]:
                undocumented += [f"{c['name']}:{f['name']}({p['name']})" for p in f["params"] if "type" not in p]
        self.assertEqual(undocumented, [], "every argument needs a ---@param (with ? when it may be left out)")
        drain = next(f for f in mods["engine.k8s"]["functions"] if f["name"] == "k8s.drain")
        self.assertEqual([(p["name"], p["optional"]) for p in drain["params"]], [("node", False), ("opts", True)])
        self.assertTrue(drain["yields"])
        classes = {c["name"]: c for c in api["classes"]}
        self.assertIn("exec", [f["name"] for f in classes["engine.Host"]["methods"]])
        self.assertIn("vars", [f["name"] for f in classes["engine.Host"]["fields"]])  # one class from two files

    def test_the_shipped_runbooks_params_are_typed_for_editors(self):
        books = sorted(os.path.join("runbooks", f) for f in os.listdir(os.path.join(ROOT, "runbooks")) if f.endswith(".lua"))
        books += sorted(os.path.join("runbooks", "examples", f)
                        for f in os.listdir(os.path.join(ROOT, "runbooks", "examples")) if f.endswith(".lua"))
        books.sort()
        r = engine("api", "--params", *[os.path.join(ROOT, b) for b in books])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(ROOT, "stdlib", "meta", "runbooks.lua")) as f:
            self.assertEqual(f.read(), r.stdout, "stdlib/meta/runbooks.lua is stale: run scripts/api-reference")
        self.assertIn('---@field kind "patch"|"minor"  patch or minor;', r.stdout)
        self.assertIn("---@field drain_timeout number  per node;", r.stdout)
        for b in books:
            with open(os.path.join(ROOT, b)) as f:
                text = f.read()
            name = re.search(r'return runbook\s*\{\s*name\s*=\s*"([^"]+)"', text).group(1)
            cls = "params." + re.sub(r"[^A-Za-z0-9]", "_", name)
            with self.subTest(runbook=b):
                self.assertIn(f"---@class {cls}\n", r.stdout)
                self.assertRegex(text, rf"---@param p {re.escape(cls)}\n\s*---@param inv engine.Inventory\n\s*run = function\(p, inv\)")

    def test_a_wrong_number_of_arguments_is_found_from_the_description(self):
        rb = os.path.join(self.state, "arity.lua")
        with open(rb, "w") as f:
            f.write('local k8s = require "engine.k8s"\nlocal ssh = require "engine.ssh"\n'
                    'return runbook { name = "a", run = function(p, inv)\n'
                    '  local h = inv:host("a")\n'
                    '  k8s.drain()\n  h:exec()\n  ssh.upload(h, "/x")\n  step("only a name")\n'
                    '  k8s.drain("n", {}, 3)\n  k8s.drain(table.unpack({"n"}))\nend }\n')
        r = engine("check", rb)
        self.assertEqual(r.returncode, 2, r.stderr)
        got = [l for l in r.stderr.splitlines() if l.startswith(rb)]
        self.assertEqual(got, [
            f"{rb}:5:7: engine.k8s.drain needs at least 1 argument, given 0",
            f"{rb}:6:5: Host:exec needs at least 1 argument, given 0",
            f"{rb}:7:7: engine.ssh.upload needs at least 3 arguments, given 2",
            f"{rb}:8:3: step needs at least 2 arguments, given 1",
            f"{rb}:9:7: engine.k8s.drain takes at most 2 arguments, given 3",
        ])


if __name__ == "__main__":
    unittest.main()
