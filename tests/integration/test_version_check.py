"""runbooks/k8s-version-check.lua in the lab (seed 004's weekly detection): a newer patch of the
running minor first, else the next minor from its repository, nothing while a rollout is half done;
the Pushgateway gauges; the upgrade Job created once per target, never under --dry-run."""
import json
import os
import subprocess
import unittest
import urllib.request

from labtest import ROOT, LabClass  # noqa: E402
CHECK = os.path.join(ROOT, "runbooks", "k8s-version-check.lua")
SUBNET = "127.0.76"


class VersionCheckCase(LabClass):
    SUBNET = SUBNET

    def check(self, *extra):
        return self.engine_run(CHECK, *extra, timeout=120)

    def kubectl(self, *args):
        return subprocess.run(["kubectl", "--kubeconfig", f"{self.dir}/kubeconfig", *args], capture_output=True, text=True, timeout=60)

    def gauges(self):
        text = urllib.request.urlopen(self.state["pushgateway_url"] + "/metrics", timeout=5).read().decode()
        return [line for line in text.splitlines() if line.startswith(("k8s_upgrade_available", "k8s_version_check_last"))]


class OnAnOldPatch(VersionCheckCase):
    UP_ARGS = ("--workers", "1", "--version", "1.33.1")  # the lab's apt offers 1.33.5, and the 1.34 repository exists

    def test_1_a_patch_first_gauges_and_no_job_unless_allowed(self):
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-2000:])
        self.assertRegex(r.stdout, r"running\s+v1.33.1 \(API server\); every kubelet the same")
        self.assertRegex(r.stdout, r"patch\s+v1.33.5")
        self.assertRegex(r.stdout, r"next minor\s+v1.34: v1.34.3")
        self.assertRegex(r.stdout, r"available\s+patch upgrade to v1.33.5")
        g = self.gauges()
        self.assertTrue(any('kind="patch"' in x and 'running="1.33.1"' in x and 'target="1.33.5"' in x and x.endswith(" 1")
                            for x in g), g)
        self.assertTrue(any(x.startswith("k8s_version_check_last_run_timestamp") for x in g), g)
        self.assertIn("No resources found", self.kubectl("get", "jobs", "-n", "engine").stderr)
        # --dry-run creates nothing, and finds what would stop the Job: the claim its etcd snapshot
        # goes to does not exist yet (test_2 makes it; such a Job would stay Pending).
        for extra in (("--dry-run",), ()):  # and the run itself refuses the same way
            r = self.check("-e", "create_job=true", *extra)
            self.assertEqual(r.returncode, 1, r.stdout[-3000:])
            self.assertIn("the upgrade Job keeps its etcd snapshot on the PersistentVolumeClaim engine/engine-etcd-snapshots, "
                          "which does not exist: kubectl apply -f deploy/snapshots.yaml", r.stderr)
            self.assertIn("No resources found", self.kubectl("get", "jobs", "-n", "engine").stderr)

    def test_2_the_upgrade_job_once_per_target(self):
        # Not before the claim its etcd snapshot goes to exists (test_1's dry run found it missing).
        k = self.kubectl("apply", "--validate=false", "-f", os.path.join(ROOT, "deploy", "snapshots.yaml"))
        self.assertEqual(k.returncode, 0, k.stderr)
        # Params k8s-upgrade.lua would refuse: no Job (its pod would fail at once, exit 2, seen
        # only by whoever looks at the Job); the refusal names the param, as engine run would.
        for bad, said in (("workers_at_once=150%", "param 'workers_at_once' expects a count such as 3 or a percentage"),
                          ("worker_at_once=1", "unknown param 'worker_at_once' (did you mean 'workers_at_once'?)"),
                          ("canary", "'canary': expected name=value")):
            r = self.check("-e", "create_job=true", "-e", f"job_params={bad}")
            self.assertEqual(r.returncode, 1, r.stdout[-3000:])
            self.assertIn(f"job_params: k8s-upgrade.lua would refuse the Job's params: {said}", r.stderr)
            self.assertIn("No resources found", self.kubectl("get", "jobs", "-n", "engine").stderr)
        first = self.check("-e", "create_job=true", "-e", "job_params=workers_at_once=10%")
        self.assertEqual(first.returncode, 0, first.stdout[-3000:] + first.stderr[-2000:])
        self.assertIn("created the upgrade Job job=engine/k8s-upgrade-v1-33-5", first.stdout)
        again = self.check("-e", "create_job=true")
        self.assertEqual(again.returncode, 0, again.stderr[-2000:])
        self.assertIn("the upgrade Job for this target exists already: nothing to do", again.stdout)
        jobs = json.loads(self.kubectl("get", "jobs", "-n", "engine", "-o", "json").stdout)["items"]
        self.assertEqual([j["metadata"]["name"] for j in jobs], ["k8s-upgrade-v1-33-5"])
        c = jobs[0]["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(c["args"][-14:], ["--state-dir", "k8s://engine", "--run-id", "k8s-upgrade-v1-33-5",
                                           "-e", "version=1.33.5", "-e", "kind=patch", "-e", "window_wait=true",
                                           "-e", "snapshot_keep=3", "-e", "workers_at_once=10%"])
        self.assertEqual(jobs[0]["spec"]["template"]["spec"]["serviceAccountName"], "engine")
        # The Job an operator applies by hand (deploy/upgrade-job.yaml) is this one, but for its target.
        import yaml
        with open(os.path.join(ROOT, "deploy", "upgrade-job.yaml")) as f:
            manual = yaml.safe_load(f)["spec"]

        def shape(spec):
            spec = json.loads(json.dumps(spec))
            spec["template"]["spec"]["containers"][0].pop("args")
            spec["template"]["metadata"]["labels"].pop("engine.dev/target", None)
            return spec
        self.assertEqual(shape(jobs[0]["spec"]), shape(manual))

    def test_3_a_half_done_rollout_is_no_new_target(self):
        # w1's kubelet already at the patch (a rollout stopped half way): finish that first.
        body = json.dumps({"status": {"nodeInfo": {"kubeletVersion": "v1.33.5"}}})
        k = self.kubectl("patch", "node", "w1", "--subresource=status", "--type=merge", "-p", body)
        self.assertEqual(k.returncode, 0, k.stderr)
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn("kubelets differing: w1 v1.33.5", r.stdout)
        self.assertIn("none: a rollout is half done (resume it: engine runs)", r.stdout)
        self.assertTrue(any('kind="skew"' in x and x.endswith(" 0") for x in self.gauges()), self.gauges())


class OnTheNewestPatch(VersionCheckCase):
    UP_ARGS = ("--workers", "1", "--version", "1.33.5")

    def test_the_next_minor_from_its_repository_or_none(self):
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-2000:])
        self.assertRegex(r.stdout, r"patch\s+none newer in v1.33")
        self.assertRegex(r.stdout, r"available\s+minor upgrade to v1.34.3")
        self.assertTrue(any('kind="minor"' in x and 'target="1.34.3"' in x for x in self.gauges()), self.gauges())
        # Patches only: no target.
        r = self.check("-e", "minor=false")
        self.assertRegex(r.stdout, r"available\s+none\n")
        # A repository not published (yet): said with what answered.
        missing = self.state["mirror_url"] + "/nothing/v{minor}/deb"
        r = self.check("-e", f"repo_url={missing}")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertRegex(r.stdout, r"next minor\s+v1.34: not published \(.*/nothing/v1.34/deb/Release answered 404\)")
        self.assertTrue(any('kind="none"' in x and x.endswith(" 0") for x in self.gauges()), self.gauges())
        # A repo_url without {minor} is refused, naming it.
        bad = self.check("-e", "repo_url=https://pkgs.k8s.io/core:/stable:/v1.34/deb")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("has no {minor} to fill in", bad.stderr)


if __name__ == "__main__":
    unittest.main()
