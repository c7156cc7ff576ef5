"""engine.k8s's conventions as a runbook author meets them: options checked with a did-you-mean at
the runbook's line, durations as strings, a node as a host or its name; and the cluster reached
another way than the kubeconfig says (a kubeconfig held in memory, another server, a TLS name)."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_k8s import ENGINE, K8sTest  # noqa: E402


class TestConventions(K8sTest):
    def test_a_kubeconfig_held_in_memory_reached_another_way(self):
        # What a recovery does when the controller's own credentials are expired: the node's
        # admin.conf read over SSH (here: from a param), the API reached by another address, its
        # certificate still checked against the name it was issued for.
        with open(self.cluster.kubeconfig) as f:
            text = f.read()
        port = self.cluster.port
        out = self.ok(self.run_lua(f"""
    k8s.configure {{ kubeconfig_data = p.arg, server = "https://localhost:{port}" }}
    print("BY NAME", k8s.get("nodes", "w1").metadata.name)
    k8s.configure {{ kubeconfig_data = p.arg, tls_server_name = "localhost" }}
    print("SNI", k8s.get("nodes", "w1").metadata.name)
    k8s.configure {{ kubeconfig_data = p.arg, tls_server_name = "api.wrong.example" }}
    print("WRONG", select(2, k8s.get("nodes", "w1")))
    print("BAD", select(2, pcall(k8s.configure, {{ kubeconfig_data = "clusters: [" }})))
    print("TYPO", select(2, pcall(k8s.configure, {{ kubeconfg = "x" }})))
""", "-e", f"arg={text}"))
        self.assertIn("BY NAME\tw1", out)
        self.assertIn("SNI\tw1", out)
        self.assertIn("WRONG\tunreachable\tthe server's certificate is not trusted: SSL: no alternative certificate subject name matches target host name 'api.wrong.example'", out)
        self.assertIn("k8s.configure: kubeconfig_data:", out)
        self.assertIn("k8s.configure: unknown option 'kubeconfg' (did you mean 'kubeconfig'?)", out)
        self.assertNotIn("BEGIN", out)  # no key material in the output

    def test_the_runs_own_kubeconfig_reached_another_way(self):
        # seed 002's route cut: the operator's credentials still good, only the address changes
        # (a tunnel through a node). `server` alone keeps the run's --kubeconfig, not ~/.kube/config.
        port = self.cluster.port
        path = os.path.join(self.tmp, "another-way.lua")
        with open(path, "w") as f:
            f.write("""local k8s = require "engine.k8s"
return runbook { name = "another-way", run = function()
  k8s.configure { server = "https://localhost:%d" }
  print("ANOTHER WAY", k8s.get("nodes", "w1").metadata.name)
  k8s.configure { server = "https://localhost:%d", tls_server_name = "api.wrong.example" }
  print("WRONG", select(2, k8s.get("nodes", "w1")))
end }
""" % (port, port))
        r = subprocess.run([ENGINE, "run", path, "--kubeconfig", self.cluster.kubeconfig, "--state-dir", os.path.join(self.tmp, "state")],
            capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": self.tmp, "KUBECONFIG": ""})
        out = self.ok(r)
        self.assertIn("ANOTHER WAY\tw1", out)
        self.assertIn("WRONG\tunreachable", out)

    def test_one_convention_for_options_durations_and_nodes(self):
        # A typo in an option raises at the runbook's line with the closest valid one, instead of
        # surfacing later as a refused drain; durations are "90s" as well as 90; a node is a host
        # table or its name.
        r = self.run_lua("""
    local r, err = k8s.drain("w1", { ignore_daemonset = true })
""")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"t\d+\.lua:10: k8s.drain: unknown option 'ignore_daemonset' \(did you mean 'ignore_daemonsets'\?\)")
        self.assertFalse(self.cluster.get("/api/v1/nodes/w1")["spec"].get("unschedulable"))
        out = self.ok(self.run_lua("""
    local host = { name = "w2", vars = {} }
    local res = assert(k8s.drain(host, { ignore_daemonsets = true, timeout = "90s", retry_interval = "500ms" }))
    print("DRAINED", res.evicted)
    assert(k8s.wait_node(host, { timeout = "30s" }))
    assert(k8s.uncordon(host))
    for _, call in ipairs {
      function() return k8s.wait("nodes", "w2", function() return true end, { timeout = "soon" }) end,
      function() return k8s.list("pods", { label_selectr = "app=x" }) end,
      function() return k8s.get("nodes", "w1", "default") end,
      function() return k8s.cordon(42) end,
    } do
      print("REFUSED", select(2, pcall(call)))
    end
"""))
        self.assertIn("DRAINED\t", out)
        self.assertIn("k8s.wait: timeout 'soon' is not a duration", out)
        self.assertIn("k8s.list: unknown option 'label_selectr' (did you mean 'label_selector'?)", out)
        self.assertIn("k8s.get: options must be a table, not a string", out)
        self.assertIn("k8s.cordon: node must be a name or an inventory host, not a number", out)
        self.assertFalse(self.cluster.get("/api/v1/nodes/w2")["spec"].get("unschedulable"))


if __name__ == "__main__":
    unittest.main()
