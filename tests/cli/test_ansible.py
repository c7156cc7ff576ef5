"""The engine reads inventories as Ansible does: for each kind of inventory (INI and YAML with
group_vars, Ansible's documentation examples, a directory, a script with and without _meta, the
JSON of `ansible-inventory --list`, an inventory plugin file), `engine inventory --list` equals
`ansible-inventory --list` (Ansible is installed by scripts/setup). Also: -e @file and -e JSON."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

ENGINE = os.environ.get("ENGINE_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin/engine"))
HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures", "inventory")

SCRIPT = """#!/usr/bin/env python3
import json, sys
inv = {"web": {"hosts": ["w1", "w2"], "vars": {"tier": "front", "ports": [80, 443]}},
       "db": ["d1"], "prod": {"children": ["web", "db"], "vars": {"env": "prod"}}}
meta = {"w1": {"ansible_host": "10.0.0.1", "weight": 1.5}, "d1": {"ansible_port": 2222, "nested": {"a": None}}}
WITH_META
if sys.argv[1] == "--list":
    print(json.dumps(inv))
elif sys.argv[1] == "--host":
    print(json.dumps(meta.get(sys.argv[2], {})))
"""

# Values as Ansible's INI plugin reads them (ast.literal_eval), each checked against Python itself.
LITERALS = ["5", "010", "0x1F", "0o17", "0b101", "1_000", "-3", "+4", "1.5e3", ".5", "5.", "1e5", "True", "None",
            "'q'", '"d"', "'a' 'b'", "r'\\\\n'", "'\\\\x41\\\\u00e9'", "[1, 'two', [3]]", "(1,)", "(1)", "()",
            "{'a': 1, 2: None}", "1, 2", "5 # five", "-'x'", "1-2", "abc", "[1,", "{'a'", "'''t'''",
            "b'by'", "f'x'", "[True, False, None]", "{}", "[]", "''"]


def engine(*args, env=None, timeout=60):
    return subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout, cwd=HERE,
                          env={**os.environ, **(env or {})})


def ansible(source, env=None):
    r = subprocess.run(["ansible-inventory", "-i", source, "--list"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
                            **(env or {})})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


class AnsibleCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="engine-ansible-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def ours(self, *sources, env=None):
        args = ["inventory"]
        for s in sources:
            args += ["-i", s]
        r = engine(*args, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout), r.stderr

    def assertSameAsAnsible(self, source, env=None):
        ours, _ = self.ours(source, env=env)
        self.assertEqual(ours, ansible(source, env=env), source)
        return ours


class TestSameAsAnsible(AnsibleCase):
    def test_kubespray_inventories_with_group_vars(self):
        for inv in ["kubespray-ini/inventory.ini", "kubespray-yaml/hosts.yaml", "kubespray-sample/inventory.ini",
                    "precedence/hosts.yml"]:
            self.assertSameAsAnsible(os.path.join(FIX, inv))

    def test_ansible_documentation_examples_ranges_children_literals_and_group_priority(self):
        ours = self.assertSameAsAnsible(os.path.join(FIX, "ansible-docs/hosts.ini"))
        w = ours["_meta"]["hostvars"]["www01.example.com"]
        self.assertEqual((w["json"], w["lst"], w["num"], w["cmt"]), ({"a": 1, "b": [1, 2]}, [1, 2], "010", 5))
        self.assertNotIn("ansible_group_priority", ours["_meta"]["hostvars"]["host3"])
        self.assertEqual(ours["_meta"]["hostvars"]["host2"]["prio_test"], "raleigh")  # priority 10 wins

    def test_ini_values_are_python_literals_exactly_as_python_reads_them(self):
        # (Sets and complex numbers are left out: Ansible itself cannot print them as JSON.)
        lines = ["[g]"] + [f"h{i} v=\"{v}\"" for i, v in enumerate(LITERALS)]
        src = self.write("lits.ini", "\n".join(lines) + "\n")
        ours = self.assertSameAsAnsible(src)
        self.assertEqual(ours["_meta"]["hostvars"]["h0"]["v"], 5)

    def test_a_directory_skips_what_ansible_skips_and_reads_subdirectories(self):
        self.write("inv/10-hosts.yml", "all:\n  children:\n    web:\n      hosts:\n        w1:\n        w2:\n")
        self.write("inv/20-more", "[db]\nd1 port=5432\n")  # no extension: INI
        self.write("inv/sub/30.yaml", "db:\n  hosts:\n    d2:\n")
        for skipped in ["old.ini", "notes.md", "hosts.bak", "hosts~", ".hidden", "x.retry", "readme.txt", "a.cfg"]:
            self.write("inv/" + skipped, "[extra]\nextra-" + skipped.strip(".~") + "\n")
        self.write("inv/group_vars/web.yml", "tier: front\n")
        self.write("inv/host_vars/d1.yml", "role: primary\n")
        ours = self.assertSameAsAnsible(os.path.join(self.dir, "inv"))
        self.assertEqual(sorted(ours["_meta"]["hostvars"]), ["d1", "w1", "w2"])
        self.assertNotIn("extra", ours)
        _, err = self.ours(os.path.join(self.dir, "inv"))
        self.assertIn("skipped (as Ansible skips it):", err)
        self.assertIn("old.ini", err)
        env = {"ANSIBLE_INVENTORY_IGNORE_REGEX": "^20-", "ANSIBLE_INVENTORY_IGNORE": ".bak,~"}
        ours = self.assertSameAsAnsible(os.path.join(self.dir, "inv"), env=env)
        self.assertNotIn("d1", ours["_meta"]["hostvars"])
        self.assertIn("extra", ours)  # .ini is no longer ignored under that setting

    def test_scripts_with_and_without_meta_and_their_list_json(self):
        with_meta = self.write("with_meta.py", SCRIPT.replace("WITH_META", 'inv["_meta"] = {"hostvars": meta}'), 0o755)
        without = self.write("without_meta.py", SCRIPT.replace("WITH_META", ""), 0o755)
        for script in (with_meta, without):
            ours = self.assertSameAsAnsible(script)
            self.assertEqual(ours["_meta"]["hostvars"]["d1"]["ansible_port"], 2222)
        # The JSON that `ansible-inventory --list` prints, saved and given to the engine as a file.
        listed = self.write("listed.json", json.dumps(ansible(os.path.join(FIX, "ansible-docs/hosts.ini"))))
        ours, _ = self.ours(listed)
        self.assertEqual(ours, ansible(os.path.join(FIX, "ansible-docs/hosts.ini")))

    def test_an_inventory_plugin_file_is_read_through_ansible_inventory(self):
        gen = self.write("gen.yml", "plugin: ansible.builtin.generator\nhosts:\n  name: \"{{ env }}-{{ app }}\"\n"
                                    "  parents:\n    - name: \"{{ env }}\"\nlayers:\n  env: [dev, prod]\n  app: [web, api]\n")
        ours = self.assertSameAsAnsible(gen)
        self.assertEqual(sorted(ours["dev"]["hosts"]), ["dev-api", "dev-web"])
        # Without Ansible on PATH: a clear error that says what the file is and what is needed.
        bin_dir = os.path.join(self.dir, "bin")
        os.mkdir(bin_dir)
        r = engine("inventory", "-i", gen, env={"PATH": bin_dir})
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"{gen}: is the configuration of Ansible's inventory plugin 'ansible.builtin.generator'", r.stderr)
        self.assertIn("ansible-inventory is not installed", r.stderr)


class TestScriptFailures(AnsibleCase):
    def test_a_failing_silent_or_hanging_script_is_a_clear_error(self):
        cases = [("#!/bin/sh\necho 'cloud API: 403 forbidden' >&2\nexit 3\n", "inventory script exited 3: cloud API: 403 forbidden", {}),
                 ("#!/bin/sh\necho not json\n", "inventory script printed no JSON object (it printed: not json)", {}),
                 ("#!/bin/sh\nexec sleep 30\n", "inventory script did not finish within 1 s", {"ENGINE_INVENTORY_TIMEOUT": "1"})]
        for i, (text, want, env) in enumerate(cases):
            path = self.write(f"s{i}.sh", text, 0o755)
            r = engine("inventory", "-i", path, env=env)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"{path}: {want}", r.stderr)
        path = self.write("noexec", "#!/bin/sh\necho '{}'\n", 0o644)
        r = engine("inventory", "-i", path)
        self.assertIn("not executable", r.stderr)


class TestExtraVars(AnsibleCase):
    RB = """return runbook { name = "p",
  params = { n = { type = "integer" }, l = { type = "list" }, b = { type = "boolean", default = false },
             s = { type = "string", default = "" }, pw = { type = "string", secret = true, default = "" } },
  run = function(p) print(string.format("got n=%d l=%s b=%s s=%s", p.n, table.concat(p.l, "|"), tostring(p.b), p.s)) end }
"""

    def test_at_file_and_inline_json_are_typed_against_the_params(self):
        rb = self.write("p.lua", self.RB)
        vars_file = self.write("vars.yml", "n: 5\nl: ['a,b', c]\nb: yes\npw: s3cret-value\n")
        state = os.path.join(self.dir, "state")
        r = engine("run", rb, "-e", f"@{vars_file}", "-e", '{"s": "x y"}', "--state-dir", state)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("got n=5 l=a,b|c b=true s=x y", r.stdout)
        for root, _, files in os.walk(state):  # a secret from a vars file is kept out of the record
            for f in files:
                with open(os.path.join(root, f), errors="replace") as fh:
                    self.assertNotIn("s3cret-value", fh.read(), f)
        for args, want in [(["-e", "@missing.yml"], "-e @missing.yml: no such file"),
                           (["-e", '{"n": null}'], "'n' is null; a runbook param is a string, number, boolean or list"),
                           (["-e", '{"n": "five"}'], "five"),
                           (["-e", "@" + self.write("bad.yml", "n: [1\n")], "bad.yml:")]:
            r = engine("run", rb, *args, "--state-dir", state)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(want, r.stderr)


class TestValuesInLua(AnsibleCase):
    def test_null_inside_a_yaml_list_keeps_its_place(self):
        # Lua's nil would cut the list short; http.null stands for it and is written back as null.
        inv = self.write("n.yml", "all:\n  hosts:\n    h1:\n      lst: [a, null, b]\n      m: {x: null}\n")
        rb = self.write("n.lua", """local http = require "engine.http"
return runbook { name = "n", run = function(p, inv)
  local v = inv:host("h1").vars
  print(string.format("len=%d null=%s json=%s m=%s", #v.lst, tostring(v.lst[2] == http.null), http.json_encode(v.lst), http.json_encode(v.m)))
end }
""")
        r = engine("run", rb, "-i", inv, "--state-dir", os.path.join(self.dir, "state"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('len=3 null=true json=["a",null,"b"] m={}', r.stdout)
        self.assertEqual(self.ours(inv)[0]["_meta"]["hostvars"]["h1"]["lst"], ["a", None, "b"])


class TestHostsAndVersion(AnsibleCase):
    def test_list_hosts_prints_the_hosts_after_limit_and_runs_nothing(self):
        rb = self.write("rb.lua", 'return runbook { name = "x", run = function() error("ran") end }\n')
        inv = os.path.join(FIX, "ansible-docs/hosts.ini")
        r = engine("run", rb, "-i", inv, "--limit", "southeast:!host3", "--list-hosts", "--state-dir", self.dir)
        self.assertEqual((r.returncode, r.stdout), (0, "host1\nhost2\n"), r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "runs")))

    def test_version_flag_names_the_commit(self):
        r = engine("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^engine \d+\.\d+\.\d+ \((\w{7,}(-dirty)?|unknown commit)\)\n$")


if __name__ == "__main__":
    unittest.main()
