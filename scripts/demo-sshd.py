"""scripts/demo's body: a throwaway sshd and a runbook run against it, then everything removed."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import sshlab  # noqa: E402

lab = sshlab.Lab()
try:
    sshd = lab.sshd()
    lab.trust(sshd.known_hosts_line())
    inv = os.path.join(lab.root, "hosts.yaml")
    with open(inv, "w") as f:
        f.write("all:\n  vars:\n    ansible_host: 127.0.0.1\n"
                f"    ansible_port: {sshd.port}\n    ansible_user: {sshlab.USER}\n"
                f"    ansible_ssh_private_key_file: {lab.keys.key}\n"
                f"    ansible_ssh_common_args: -o UserKnownHostsFile={lab.known_hosts}\n"
                "  children:\n    k8s-cp:\n      hosts:\n        cp1:\n    k8s-worker:\n      hosts:\n        w1:\n        w2:\n")
    runbook = os.path.join(ROOT, "runbooks", "examples", "node-report.lua")
    engine = os.path.join(ROOT, "build", "bin", "engine")
    print(f"\n== a throwaway sshd on 127.0.0.1:{sshd.port}; inventory {inv}\n")
    print(f"== engine run {os.path.relpath(runbook, ROOT)} --help\n", flush=True)
    subprocess.run([engine, "run", runbook, "--help"], check=True)
    print(f"== engine run {os.path.relpath(runbook, ROOT)} -i hosts.yaml -e at_once=2\n", flush=True)
    rc = subprocess.run([engine, "run", runbook, "-i", inv, "-e", "at_once=2",
                         "--state-dir", os.path.join(lab.root, "state")]).returncode
    sys.exit(rc)
finally:
    lab.stop()
