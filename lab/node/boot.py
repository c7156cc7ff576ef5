"""A lab node's boot, run by `lab up` under `unshare -m -u --propagation private`: names the node,
bind-mounts its own directories at their real paths, starts the enabled units (the kubelet) and
sshd, then stays as the process that holds the node's namespaces (`lab down` ends them all)."""
import json
import os
import subprocess
import sys

from lab.node import systemctl

# the node's directory (host side) -> the path the node sees
BINDS = ["/etc/kubernetes", "/var/lib/etcd", "/var/lib/kubelet", "/etc/systemd/system", "/etc/etcd", "/var/log",
         "/var/lib/engine-lab", "/etc/apt/sources.list.d", "/etc/hosts", "/usr/local/bin", "/var/cache/engine",
         "/etc/systemd/journald.conf.d", "/var/cache/apt/archives"]
# The node simulators (kubeadm, kubelet, systemctl, ...), shared by every node; /usr/local/bin is the
# node's own (a runbook installs etcd there, one node at a time).
TOOLS = ["/usr/local/sbin"]


def main():
    node_dir, bin_dir = sys.argv[1], sys.argv[2]
    with open(f"{node_dir}/root/var/lib/engine-lab/node.json") as f:
        n = json.load(f)
    subprocess.run(["hostname", n["name"]], check=True)
    for path in BINDS:
        subprocess.run(["mount", "--bind", f"{node_dir}/root{path}", path], check=True)
    for path in TOOLS:
        subprocess.run(["mount", "--bind", bin_dir, path], check=True)
    open("/var/lib/engine-lab/booting", "w").close()
    for f in sorted(os.listdir(systemctl.STATE)):
        if f.endswith(".enabled"):
            systemctl.start(f[:-len(".enabled")], wait=False)
    # sshd refuses to start without its privilege-separation directory; a fresh machine has none.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    subprocess.run(["/usr/sbin/sshd", "-f", f"{node_dir}/sshd_config"], check=True)
    os.execv("/bin/sleep", ["sleep", "infinity"])


if __name__ == "__main__":
    main()
