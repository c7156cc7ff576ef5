"""deploy/: the manifests that run the engine in the cluster, kept in step with what they serve.
The ClusterRole lists every API std.removed_apis may need to read (a role that missed one would stop
a real cluster's preflight with "forbidden" while the lab, which serves none of them, passed); the
CronJob and the Jobs k8s-version-check.lua creates name the same account, ConfigMap and Secret.
(That the role is enough for the whole upgrade is tests/integration/test_upgrade.py's main test.)"""
import os
import re
import subprocess
import unittest

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def load(name):
    with open(os.path.join(ROOT, "deploy", name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def removed_since(first_minor):
    """{(group, resource)} std.removed_apis reads for upgrades to first_minor and later."""
    with open(os.path.join(ROOT, "stdlib", "std", "removed_apis.lua")) as f:
        text = f.read()
    table = text[text.index("M.REMOVED = {"):]
    table = table[:table.index("\n}\n")]
    out = set()
    for minor, body in re.findall(r"\[(\d+)\] = (.*?)(?=\n  \[\d+\] = |\Z)", table, re.S):
        if int(minor) < first_minor:
            continue
        for group, resources in re.findall(r'gv\("([^"]*)", "[^"]*", \{((?:\s*\{[^{}]*\},?)+)\s*\}', body, re.S):
            for res in re.findall(r'\{ "([a-z]+)", "[A-Za-z]+"', resources):
                out.add((group, res))
    return out


def allows(rules, group, resource, verb):
    return any(group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r.get("verbs", [])
               and not r.get("resourceNames") for r in rules)


class TestDeploy(unittest.TestCase):
    def test_the_role_reads_every_api_the_removed_apis_preflight_lists(self):
        role = next(d for d in load("rbac.yaml") if d["kind"] == "ClusterRole")
        wanted = removed_since(26)
        self.assertIn(("flowcontrol.apiserver.k8s.io", "flowschemas"), wanted)  # the parse found the table
        missing = sorted(f"{g or 'core'}/{r}" for g, r in wanted if not allows(role["rules"], g, r, "list"))
        self.assertEqual(missing, [], "deploy/rbac.yaml's ClusterRole cannot list these (std.removed_apis reads them)")

    def test_least_privilege_no_secrets_no_wildcards_deletes_only_its_own_records(self):
        docs = load("rbac.yaml")
        for d in docs:
            for r in d.get("rules", []):
                self.assertNotIn("*", r.get("verbs", []) + r.get("resources", []) + r.get("apiGroups", []), d["metadata"])
                self.assertNotIn("secrets", r.get("resources", []), d["metadata"])
                if "delete" in r.get("verbs", []):  # only the runs' own records, in engine's own namespace
                    self.assertEqual((d["kind"], d["metadata"].get("namespace"), r["resources"]), ("Role", "engine", ["configmaps"]))
        extra = next(d for d in load("rbac-delete-blocked-pods.yaml") if d["kind"] == "ClusterRole")
        self.assertEqual(extra["rules"], [{"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}])

    def test_the_upgrade_gates_rule_file_passes_promtool(self):
        path = os.path.join(ROOT, "deploy", "prometheus-rules.yaml")
        r = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: 3 rules found", r.stdout)
        rules = {x["alert"]: x for g in load("prometheus-rules.yaml")[0]["groups"] for x in g["rules"]}
        self.assertEqual(set(rules), {"K8sVersionSkew", "EtcdPreUpgradeSnapshotMissing", "K8sUpgradeStalled"})
        # the gauges they read are the ones k8s-upgrade.lua pushes
        with open(os.path.join(ROOT, "runbooks", "k8s-upgrade.lua")) as f:
            upgrade = f.read()
        for gauge in ("k8s_upgrade_in_flight", "k8s_upgrade_started_timestamp", "k8s_upgrade_snapshot_taken"):
            self.assertIn(gauge, upgrade)
            self.assertTrue(any(gauge in r["expr"] for r in rules.values()), gauge)

    def test_the_pods_run_as_the_images_user_with_no_privilege_and_a_read_only_root(self):
        with open(os.path.join(ROOT, "scripts", "image")) as f:
            image_uid = int(re.search(r"^UID = GID = (\d+)$", f.read(), re.M).group(1))
        cron = load("version-check.yaml")[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        job = load("upgrade-job.yaml")[0]["spec"]["template"]["spec"]
        for name, pod in (("version-check.yaml", cron), ("upgrade-job.yaml", job)):
            sc, c = pod["securityContext"], pod["containers"][0]
            self.assertEqual((sc["runAsNonRoot"], sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]),
                             (True, image_uid, image_uid, image_uid), name)
            self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"}, name)
            self.assertEqual(c["securityContext"], {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                    "capabilities": {"drop": ["ALL"]}}, name)
            # what the engine writes is on a volume: its HOME (state, caches) at least
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
            self.assertIn(mounts.get("/var/lib/engine"), empty, name)
        # the upgrade's etcd snapshot (snapshot_dir's default) too
        with open(os.path.join(ROOT, "runbooks", "k8s-upgrade.lua")) as f:
            snapshot_dir = re.search(r'snapshot_dir = \{ type = "string", default = "([^"]+)"', f.read()).group(1)
        self.assertIn(snapshot_dir, {m["mountPath"] for m in job["containers"][0]["volumeMounts"]})

    def test_the_cronjob_and_the_runbooks_defaults_name_the_same_objects(self):
        sa = next(d for d in load("rbac.yaml") if d["kind"] == "ServiceAccount")
        cron = load("version-check.yaml")[0]
        pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        self.assertEqual(pod["serviceAccountName"], sa["metadata"]["name"])
        self.assertEqual(cron["metadata"]["namespace"], sa["metadata"]["namespace"])
        volumes = {v["name"]: v for v in pod["volumes"]}
        with open(os.path.join(ROOT, "runbooks", "k8s-version-check.lua")) as f:
            text = f.read()

        def default(param):
            return re.search(param + r' = \{ type = "string", default = "([^"]+)"', text).group(1)
        self.assertEqual(default("job_namespace"), sa["metadata"]["namespace"])
        self.assertEqual(default("job_service_account"), sa["metadata"]["name"])
        self.assertEqual(default("job_inventory"), volumes["inventory"]["configMap"]["name"])
        self.assertEqual(default("job_ssh_secret"), volumes["ssh"]["secret"]["secretName"])
        claim = load("snapshots.yaml")[0]
        self.assertEqual((claim["kind"], claim["metadata"]["namespace"]), ("PersistentVolumeClaim", sa["metadata"]["namespace"]))
        self.assertEqual(default("job_snapshot_claim"), claim["metadata"]["name"])
        job = load("upgrade-job.yaml")[0]["spec"]["template"]["spec"]
        self.assertIn({"name": "snapshots", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}, job["volumes"])
        self.assertIn("/usr/share/engine/runbooks/k8s-version-check.lua", pod["containers"][0]["args"])


if __name__ == "__main__":
    unittest.main()
