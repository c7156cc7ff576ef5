"""lab/yamltext.py, the lab's YAML in Python's standard library, held to PyYAML as the reference."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # the lab package

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE = os.environ.get("ENGINE_BIN", os.path.join(ROOT, "build", "bin", "engine"))

class YamlTextTest(unittest.TestCase):
    """lab/yamltext.py, the lab's YAML without PyYAML: what it reads is what PyYAML (the reference
    here, an independent reader) reads, for the lab's own files, the engine's http.yaml_encode and
    the styles kubectl and kubeadm write; what it writes PyYAML reads back unchanged."""

    TRICKY = """# a comment line
int: 1
octal: 0755
hex: 0x1F
negative: -12
float: 1.5
not_a_float: 1e5
inf: .inf
bool: yes
quoted_bool: "yes"
single: 'it''s # not a comment'
double: "tab\\there \\u00e9 \\x41 # not a comment"
null_tilde: ~
null_empty:
empty_list: []
empty_map: {}
flow: [a, "b, c", 3, {x: 1, y: [2, 3]}]
flow_map: {a: 1, b: two words, c: http://x:1}
flow_lines: [one,
  two]
literal: |
  line one
    indented
  line three

folded: >-
  folded
  text

  para
keep: |+
  kept

strip: |-
  stripped
plain: text here # a trailing comment
multi_plain: first
  second
multi_double: "first
  second"
at_key_indent:
- a
- b: 1
  c: 2
- - x
  - y
indented:
  - item
  - key: val
    more: [1]
url: https://127.0.0.1:6443
flag: --advertise-address=127.0.0.1
dash: -x
"quoted key": 1
---
second: document
...
"""

    def setUp(self):
        import yaml
        from lab import yamltext
        self.yaml, self.yt = yaml, yamltext

    def same_as_pyyaml(self, text, what):
        want = list(self.yaml.safe_load_all(text))
        self.assertEqual(self.yt.load_all(text), want, what)
        for doc in want:  # and written back, PyYAML reads the same
            self.assertEqual(self.yaml.safe_load(self.yt.dump(doc)), doc, what)
            self.assertEqual(self.yt.load(self.yt.dump(doc)), doc, what)

    def test_reads_what_pyyaml_reads(self):
        self.same_as_pyyaml(self.TRICKY, "the styles above")
        loaded = self.yt.load_all(self.TRICKY)[0]
        self.assertEqual((loaded["octal"], loaded["bool"], loaded["not_a_float"], loaded["folded"], loaded["keep"]),
                         (493, True, "1e5", "folded text\npara", "kept\n\n"))

    def test_the_labs_own_files(self):
        from lab import cluster
        from lab.node import certs, manifests
        cfg = {"name": "cp1", "ip": "127.0.83.1", "cluster": "cp1=https://127.0.83.1:2380,cp2=https://127.0.83.2:2380"}
        for c in manifests.BUILDERS:
            text = manifests.render(c, cfg, "1.34.3")
            self.same_as_pyyaml(text, c)
            self.assertIn("image: registry.k8s.io/", text)  # block style, as kubeadm writes it
        self.same_as_pyyaml(cluster.cluster_configuration("v1.34.3", "127.0.83.100:6443"), "ClusterConfiguration")
        d = tempfile.mkdtemp(prefix="engine-yamltext-")
        for name in ("ca.crt", "c.crt", "c.key"):
            with open(f"{d}/{name}", "w") as f:
                f.write("-----BEGIN X-----\n")
        certs.kubeconfig(f"{d}/admin.conf", "https://127.0.83.100:6443", f"{d}/ca.crt", f"{d}/c.crt", f"{d}/c.key", "admin")
        with open(f"{d}/admin.conf") as f:
            self.same_as_pyyaml(f.read(), "kubeconfig")

    def test_reads_the_engines_yaml_encode(self):
        d = tempfile.mkdtemp(prefix="engine-yamltext-")
        with open(f"{d}/enc.lua", "w") as f:
            f.write('local http = require("engine.http")\nreturn runbook { name = "enc", run = function()\n'
                    '  print("BEGIN\\n" .. http.yaml_encode({ apiServer = { extraArgs = { { name = "profiling", value = "false" } } },\n'
                    '    etcd = { external = { endpoints = { "https://127.0.0.1:2379" } } }, empty = {}, n = 3, f = 1.5,\n'
                    '    s = "a: b", m = "two\\nlines", q = "it\'s", y = "yes", nested = { { 1, 2 }, { 3 } } }) .. "END")\nend }\n')
        r = subprocess.run([ENGINE, "run", f"{d}/enc.lua", "--state-dir", f"{d}/state"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout)
        text = r.stdout.split("BEGIN\n", 1)[1].split("END", 1)[0]  # print() goes to the run's log
        self.same_as_pyyaml(text, "http.yaml_encode")
        self.assertEqual(self.yt.load(text)["etcd"]["external"]["endpoints"], ["https://127.0.0.1:2379"])

    def test_writes_strings_that_read_back_as_strings(self):
        for s in ("yes", "no", "on", "null", "~", "", "1", "0755", "1e5", "0o17", "1.0", ".inf", "y", "2026-01-01",
                  "a: b", "a #b", "#x", "- x", "-", "---", "it's", "two\nlines", " padded ", "[x]", "{x}", "*x", "&x",
                  "!x", "|", ">", "%x", "@x", "`x", "\"q\"", "tab\there", "ends:", "?x", ":x", "\x01"):
            out = self.yt.dump({"k": s})
            self.assertEqual(self.yaml.safe_load(out), {"k": s}, out)
            self.assertEqual(self.yt.load(out), {"k": s}, out)
        self.assertEqual(self.yt.dump({"f": 1e20, "none": None, "t": True, "l": [[1], {"a": []}]}),
                         "f: 1.0e+20\nnone: null\nt: true\nl:\n- - 1\n- a: []\n")

    def test_errors_name_the_line(self):
        for text, line, words in (("a: 1\n  b: 2\n", 2, "mapping entry"),
                                  ("a:\n  - x\n  y: 1\n", 3, "indented more"),
                                  ("- a\nb: 1\n", 2, "unexpected content"),
                                  ("a: &anchor 1\n", 1, "anchors"),
                                  ("a:\n  b: [1, 2\n", 2, "not closed"),
                                  ("a: \"open\n", 1, "not closed"),
                                  ("a:\n\tb: 1\n", 2, "tab")):
            with self.assertRaises(self.yt.YAMLError, msg=text) as e:
                self.yt.load(text)
            self.assertIn(f"line {line}", str(e.exception), text)
            self.assertIn(words, str(e.exception), text)
        with self.assertRaises(self.yaml.YAMLError):  # PyYAML refuses the first as well
            self.yaml.safe_load("a: 1\n  b: 2\n")



if __name__ == "__main__":
    unittest.main()
