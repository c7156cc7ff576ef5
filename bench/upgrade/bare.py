#!/usr/bin/env python3
"""The measured floor of bench/upgrade: the same upgrade done with nothing but what it cannot do
without, as fast as the lab lets it. Per node: cordon, evict its pods (a PDB's refusal asked again
50 ms later), the node's commands as ONE ssh exec (apt source and apt-get update, kubeadm over its
hold, `kubeadm upgrade`, kubelet and kubectl, the holds, kubelet restart: what any tool must run),
the new kubelet's Ready at the version (polled every 50 ms), uncordon. The control plane one node at a time, the workers `at_once` at a time in a sliding
window. No facts asked, no journal, no gate, no snapshot: not a tool anyone should run, the
least time any tool can take on this lab, the simulated commands' own cost included (the
computed floor leaves that out).

  bare.py LAB_DIR VERSION PKG MINOR AT_ONCE   (LAB_DIR: a `lab up` directory)"""
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from lab import plumbing_context  # noqa: E402

PACE = 0.05
T0 = time.monotonic()


class Api:
    def __init__(self, d):
        with open(f"{d}/lab.json") as f:
            self.base = json.load(f)["api"]
        self.ctx = plumbing_context(f"{d}/admin.crt", f"{d}/admin.key")

    def call(self, method, path, body=None, ctype="application/json"):
        req = urllib.request.Request(self.base + path, method=method, headers={"Content-Type": ctype},
                                     data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, None

    def schedulable(self, node, yes):
        st, _ = self.call("PATCH", f"/api/v1/nodes/{node}", {"spec": {"unschedulable": not yes}},
                          "application/merge-patch+json")
        assert st == 200, f"patch {node}: {st}"


def drain(api, node):
    api.schedulable(node, False)
    _, pods = api.call("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")
    to_evict = [p for p in pods["items"] if not (p["metadata"].get("annotations") or {}).get("kubernetes.io/config.mirror")
            and not any(o.get("kind") == "DaemonSet" for o in p["metadata"].get("ownerReferences") or [])]
    deadline = time.monotonic() + 600
    for p in to_evict:
        ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
        while True:
            st, _ = api.call("POST", f"/api/v1/namespaces/{ns}/pods/{name}/eviction",
                             {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}})
            if st in (200, 201, 404):
                break
            assert st == 429 and time.monotonic() < deadline, f"evicting {ns}/{name}: {st}"
            time.sleep(PACE)
    for p in to_evict:  # gone, or a new pod under its name
        ns, name, uid = p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"]
        while True:
            st, cur = api.call("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
            if st == 404 or (cur and cur["metadata"]["uid"] != uid):
                break
            assert time.monotonic() < deadline, f"{ns}/{name} not gone"
            time.sleep(PACE)


def ready(node_obj):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node_obj["status"].get("conditions", []))


def upgrade(api, inv, node, how, version, pkg, minor):
    t0 = time.monotonic()
    drain(api, node)
    t1 = time.monotonic()
    h = inv[node]
    k = "kubeadm upgrade " + (f"apply v{version} -y" if how == "apply" else "node")
    script = (f"sed -i -E 's#/core:/stable:/v[0-9]+\\.[0-9]+/deb#/core:/stable:/v{minor}/deb#' "
              "/etc/apt/sources.list.d/kubernetes.list && apt-get update -q >/dev/null && "
              f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-change-held-packages kubeadm={pkg} && "
              f"{k} && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-change-held-packages "
              f"kubelet={pkg} kubectl={pkg} && apt-mark hold kubeadm kubelet kubectl >/dev/null && "
              "systemctl daemon-reload && systemctl restart kubelet")
    r = subprocess.run(["ssh", "-o", "BatchMode=yes", *shlex.split(h["args"]), "-i", h["key"], "-p", str(h["port"]),
                        f"{h['user']}@{h['host']}", "sudo sh -c " + shlex.quote(script)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{node}: {r.stderr[-2000:]}"
    t2 = time.monotonic()
    # The old kubelet's Ready may still stand: the new one says NotReady first (the lab's kubelet
    # always does), then Ready at the version.
    seen_not_ready, deadline = False, time.monotonic() + 600
    while True:
        _, n = api.call("GET", f"/api/v1/nodes/{node}")
        if not ready(n):
            seen_not_ready = True
        elif seen_not_ready and n["status"]["nodeInfo"]["kubeletVersion"] == "v" + version:
            break
        assert time.monotonic() < deadline, f"{node} not Ready at v{version}"
        time.sleep(PACE)
    api.schedulable(node, True)
    t3 = time.monotonic()
    if os.environ.get("BARE_TIMES"):
        print(f"{node} start {t0 - T0:.2f} drain {t1 - t0:.2f} commands {t2 - t1:.2f} ready+uncordon {t3 - t2:.2f}",
              file=sys.stderr, flush=True)


def inventory(d):
    """The lab's inventory.yml, read without a YAML library: hosts per group and the SSH settings."""
    groups, hosts, cur, common = {}, {}, None, {}
    for line in open(f"{d}/inventory.yml"):
        s = line.strip()
        if s.startswith(("ansible_ssh_private_key_file:", "ansible_user:", "ansible_port:", "ansible_ssh_common_args:")):
            k, v = s.split(":", 1)
            common[k] = v.strip()
        elif s.startswith("k8s-") and s.endswith(":"):
            cur = s[:-1]
            groups.setdefault(cur, [])
        elif s.startswith("ansible_host:") and cur:
            hosts[groups[cur][-1]] = s.split(":", 1)[1].strip()
        elif s.endswith(":") and cur and line.startswith(" " * 8) and not line.startswith(" " * 10):
            groups[cur].append(s[:-1])
    inv = {n: {"host": a, "user": common["ansible_user"], "port": common["ansible_port"],
               "key": common["ansible_ssh_private_key_file"], "args": common.get("ansible_ssh_common_args", "")}
           for n, a in hosts.items()}
    return groups, inv


def main():
    d, version, pkg, minor, at_once = sys.argv[1:6]
    groups, inv = inventory(d)
    api = Api(d)
    cps, workers = groups["k8s-cp"], groups.get("k8s-worker", [])
    for i, n in enumerate(cps):
        upgrade(api, inv, n, "apply" if i == 0 else "node", version, pkg, minor)
    with concurrent.futures.ThreadPoolExecutor(max_workers=int(at_once)) as pool:
        for f in [pool.submit(upgrade, api, inv, n, "node", version, pkg, minor) for n in workers]:
            f.result()


if __name__ == "__main__":
    main()
