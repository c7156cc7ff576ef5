"""runbooks/etcd-upgrade.lua in the lab (seed 003, decision 6, IR-4): a real 3.4.23 → 3.5.16 rolling
upgrade (Debian bookworm's etcd to Debian trixie's, served by the lab's release mirror) of a cluster
first moved to systemd by etcd-to-systemd.lua, with writes running the whole time and none lost; a
member whose new etcd does not start gets its old binaries back and the run stops there; resume
finishes it; and the refusals of the precheck, each with nothing changed."""
import base64
import http.client
import json
import os
import re
import ssl
import subprocess
import threading
import time
import unittest

from test_etcd_migration import ENGINE, ROOT, Lab, lab

UPGRADE = os.path.join(ROOT, "runbooks", "etcd-upgrade.lua")
MAINTENANCE = os.path.join(ROOT, "runbooks", "etcd-maintenance.lua")
TARGET = "3.5.16"


class Writer(threading.Thread):
    """Puts keys into the cluster without pause, through whichever member answers; counts the puts
    etcd acknowledged."""

    def __init__(self, lb):
        super().__init__(daemon=True)
        pki = f"{lb.root('cp1')}/etc/kubernetes/pki/etcd"
        self.ctx = ssl.create_default_context(cafile=f"{pki}/ca.crt")
        self.ctx.load_cert_chain(f"{pki}/healthcheck-client.crt", f"{pki}/healthcheck-client.key")
        self.ips = [n["ip"] for n in lb.cps]
        self.acked = 0
        self.failed = 0
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            key = base64.b64encode(f"/engine-test/w/{self.acked:06d}".encode()).decode()
            ip = self.ips[i % len(self.ips)]
            try:
                conn = http.client.HTTPSConnection(ip, 2379, context=self.ctx, timeout=3)
                conn.request("POST", "/v3/kv/put", json.dumps({"key": key, "value": base64.b64encode(b"v").decode()}),
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                body = r.read()
                conn.close()
                if r.status == 200 and b"header" in body:
                    self.acked += 1
                    continue
            except OSError:
                pass
            self.failed += 1
            i += 1
            time.sleep(0.05)


def count_keys(lb):
    b = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    r = lb.etcd("cp1", "/v3/kv/range", {"key": b("/engine-test/w/"), "range_end": b("/engine-test/w0"), "count_only": True})
    return int(r.get("count", 0))


def read_file(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def read_log(lb, name):
    return read_file(f"{lb.root(name)}/var/log/etcd.log")


def versions(lb):
    return {n["name"]: lb.etcd(n["name"], "/v3/maintenance/status")["version"] for n in lb.cps}


class Upgrade(unittest.TestCase):
    def test_refusals_then_a_rollback_then_resume_with_writes_running_and_none_lost(self):
        lb = Lab(workers=0, subnet="127.0.71")  # test_etcd_migration has .70, and may run beside it
        self.addCleanup(lb.down)
        up = lambda *extra: lb.engine("run", UPGRADE, "-e", f"snapshot_dir={lb.dir}/snapshots", *extra)  # noqa: E731

        # Not under systemd yet: refused, pointing at the migration.
        r = up("-e", f"version={TARGET}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("precheck failed, nothing was changed", r.stdout + r.stderr)
        self.assertIn("etcd runs as kubeadm's static Pod: kubeadm upgrades that one; move it with etcd-to-systemd.lua first",
                      r.stdout + r.stderr)
        m = lb.migrate()
        self.assertEqual(m.returncode, 0, m.stdout[-3000:] + m.stderr[-3000:])
        self.assertEqual(set(versions(lb).values()), {"3.4.23"})

        # A minor skipped, a version the cluster's Kubernetes does not run with, a downgrade, a
        # setting the target refuses: each named, nothing changed.
        r = up("-e", "version=3.6.4", "-e", "sha256=" + "a" * 64)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1)
        self.assertIn("3.4.23 → 3.6.4 skips a minor: upgrade one minor at a time (3.5 first)", out)
        self.assertEqual(out.count("3.4.23 → 3.6.4 skips a minor"), out.count("3.4.23 → 3.6.4 skips a minor: upgrade one minor at a time (3.5 first)"))
        self.assertIn("Kubernetes v1.33 runs with etcd up to 3.5 (kubeadm ships 3.5.x for it); 3.6.4 is newer", out)
        r = up("-e", "version=3.4.20", "-e", "sha256=" + "a" * 64)
        self.assertEqual(r.returncode, 1)
        self.assertIn("3.4.20 is older than the running 3.4.23: etcd does not downgrade", r.stdout + r.stderr)
        env = f"{lb.root('cp2')}/etc/etcd/etcd.env"
        with open(env) as f:
            original = f.read()
        with open(env, "a") as f:
            f.write("ETCD_LOGGER=capnslog\n")
        r = up("-e", f"version=v{TARGET}")  # spelled as etcd tags its releases: the v is dropped
        self.assertEqual(r.returncode, 1)
        self.assertIn("cp2: /etc/etcd/etcd.env has ETCD_LOGGER=capnslog (removed in 3.5): etcd 3.5.16 will not start with it",
                      r.stdout + r.stderr)
        with open(env, "w") as f:
            f.write(original)
        self.assertEqual(set(versions(lb).values()), {"3.4.23"})

        # The second member's new etcd does not start: its old one is back, the run stops there.
        order = sorted(n["name"] for n in lb.cps if n["name"] != lb.leader()) + [lb.leader()]
        first, second, third = order
        lab("fault", second, "etcd-new-version-fails", "--dir", lb.dir)
        members = lb.members()
        writer = Writer(lb)
        writer.start()
        self.addCleanup(writer.stop.set)
        time.sleep(1)
        r = up("-e", f"version={TARGET}", "-e", "health_timeout=20s")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-3000:])
        self.assertIn(f"{second}: etcd {TARGET} did not start: systemctl restart etcd exited 1", out)
        self.assertIn("only etcd 3.4.23 starts on this node", out)  # the unit's journal, for the operator
        self.assertIn(f"Rolled back: {second} runs 3.4.23 again and member {second}", out, out[-2500:])
        v = versions(lb)
        self.assertEqual((v[first], v[second], v[third]), (TARGET, "3.4.23", "3.4.23"), out[-3000:])
        self.assertTrue(os.path.exists(f"{lb.root(first)}/var/cache/engine/etcd/previous/etcd"))
        snaps = [s for s in os.listdir(f"{lb.dir}/snapshots") if s.endswith(".db")]
        self.assertEqual(len(snaps), 2, "a snapshot before the migration and one before the upgrade (IR-4)")

        # Fixed and resumed: every member at 3.5.16, the same members, every acknowledged write there.
        lab("clear", second, "etcd-new-version-fails", "--dir", lb.dir)
        run_id = re.search(r"engine resume (\S+)", out).group(1)
        res = lb.engine("resume", run_id)
        self.assertEqual(res.returncode, 0, res.stdout[-4000:] + res.stderr[-4000:])
        self.assertIn(f"Every etcd member runs {TARGET}", res.stdout)
        time.sleep(1)
        writer.stop.set()
        writer.join(10)
        self.assertEqual(set(versions(lb).values()), {TARGET})
        self.assertEqual(lb.members(), members)
        self.assertGreater(writer.acked, 100)
        self.assertEqual(count_keys(lb), writer.acked, f"{writer.failed} puts failed and were not counted")
        upgraded = [e["host"] for e in lb.run_logs("etcd-upgrade") if e["msg"] == "etcd upgraded"]
        self.assertEqual(upgraded, [first, second, third])
        for name in (first, second, third):
            self.assertEqual(lb.unit(name), ("active", "enabled"))
            # The release was fetched once per node, whatever the runs and resumes (IR-7).
            tarballs = os.listdir(f"{lb.root(name)}/var/cache/engine/etcd")
            self.assertIn(f"etcd-v{TARGET}-linux-amd64.tar.gz", tarballs)
        fetched = subprocess.run(["grep", "-c", f"GET /etcd-io/etcd/releases/download/v{TARGET}/etcd-v{TARGET}-linux-amd64.tar.gz",
                                  f"{lb.dir}/logs/mirror.log"], capture_output=True, text=True).stdout.strip()
        self.assertEqual(fetched, "3")

        # Maintenance on the upgraded cluster: a timer per node, staggered, each defragmenting its
        # own member once when it fires (IR-3), then the whole cluster on demand, the leader last.
        # etcd 3.5 logs one "finished defragment" per defragmentation of its own database.
        defrags = lambda name: read_log(lb, name).count('"msg":"finished defragment"')  # noqa: E731
        before = {n["name"]: defrags(n["name"]) for n in lb.cps}
        first_at = int(time.time()) + 12
        at = time.strftime("%H:%M:%S", time.localtime(first_at))
        timers = ("-e", f"at={at}", "-e", "stagger=4s", "-e", "threshold=0", "-e", "min_db_mb=0", "-e", "compact=true",
                  "-e", "compact_keep=10")
        r = lb.engine("run", MAINTENANCE, *timers)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        rows = [line.split() for line in r.stdout.splitlines() if re.match(r"^cp\d\s", line)]
        self.assertEqual([x[1] for x in rows], [time.strftime("%H:%M:%S", time.localtime(first_at + 4 * i)) for i in range(3)])
        self.assertTrue(all("etcd-defrag.timer" in " ".join(x) for x in rows), r.stdout)
        again = lb.engine("run", MAINTENANCE, *timers)
        self.assertEqual(again.returncode, 0)
        self.assertEqual(again.stdout.count(": already so"), 6 * 3, again.stdout[-3000:])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(defrags(n["name"]) == before[n["name"]] for n in lb.cps):
            time.sleep(1)
        time.sleep(5)  # a timer that wrongly fired twice, or defragmented another member, shows by now
        for n in lb.cps:
            self.assertEqual(defrags(n["name"]), before[n["name"]] + 1, n["name"])
            log = read_file(f"{lb.root(n['name'])}/var/log/etcd-defrag.log")
            self.assertIn(f"defragmented https://{n['ip']}:2379", log)
            self.assertEqual(log.count("defragmented https://"), 1)
            # compact=true: compacted first; compaction is cluster-wide, so a later member finds it done
            self.assertRegex(log, r"etcd-maintenance: (already )?compacted to revision")
            self.assertNotIn("Error:", log)
        # While another engine run holds the cluster's lease (killed here, so its lease stays held
        # until its ttl ends), the defragmentation does not start: no member is defragmented.
        with open(f"{lb.dir}/holder.lua", "w") as f:
            f.write('local k8s = require "engine.k8s"\nreturn runbook { name = "upgrade-elsewhere", run = function()\n'
                    '  local l = assert(k8s.lease("engine-cluster", { namespace = "kube-system", ttl = 60 }))\n'
                    '  print("HOLDING " .. l.holder)\n  sleep(60)\nend }\n')
        holder = subprocess.Popen([ENGINE, "run", f"{lb.dir}/holder.lua", "--kubeconfig", f"{lb.dir}/kubeconfig",
                                   "--state-dir", f"{lb.dir}/state-elsewhere"], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            line, deadline = "", time.monotonic() + 60
            while "HOLDING" not in line and time.monotonic() < deadline and holder.poll() is None:
                line = holder.stdout.readline()
            self.assertIn("HOLDING", line)
        finally:
            holder.kill()
            holder.communicate(timeout=30)
        r = lb.engine("run", MAINTENANCE, "-e", "mode=defrag", "-e", "pause=1s")
        self.assertEqual(r.returncode, 1, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertRegex(r.stdout + r.stderr, r"the cluster lease kube-system/engine-cluster \(one engine run changing the "
                                              r"cluster at a time\): lease kube-system/engine-cluster is held by "
                                              r"\S+-upgrade-elsewhere-\w+")
        for n in lb.cps:
            self.assertEqual(defrags(n["name"]), before[n["name"]] + 1, n["name"])
        subprocess.run(["kubectl", "--kubeconfig", f"{lb.dir}/kubeconfig", "delete", "lease", "-n", "kube-system",
                        "engine-cluster"], check=True, capture_output=True, timeout=60)
        r = lb.engine("run", MAINTENANCE, "-e", "mode=defrag", "-e", "pause=1s")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        done = [e for e in lb.run_logs("etcd-maintenance") if e["msg"] == "defragmented"]
        self.assertEqual(len(done), 3)
        self.assertTrue(done[-1]["fields"]["leader"])
        for n in lb.cps:
            self.assertEqual(defrags(n["name"]), before[n["name"]] + 2, n["name"])


if __name__ == "__main__":
    unittest.main()
