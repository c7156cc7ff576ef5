"""The lab: a simulated kubeadm cluster on one machine, for rehearsing runbooks (docs/lab.md), and the
real servers the tests start (sshd, etcd with TLS) with the faults they inject. Python standard library
only (the kubeadm files a node reads and writes go through lab.yamltext). Tests import this package; it
never imports from tests/.

  lab.cli         `scripts/lab up|down|status|fault|clear`
  lab.cluster     the cluster's objects, Prometheus rules and config
  lab.nodes       a node's files, PKI and simulated tools, prepared before it boots
  lab.node.*      the simulated tools a node runs (kubeadm, kubelet, systemctl, apt, ...)
  lab.faults      the seeds' faults, injected into and cleared from a running lab
  lab.procs       processes by start time and mount namespace, bounded waits
  lab.k8sim.*     the Kubernetes API simulator, and a fixture that starts it for a test
  lab.sshd        OpenSSH servers on loopback or in a network namespace, and their users
  lab.etcd        a 3-member etcd cluster with TLS, and a proxy that cuts or stalls its streams
  lab.netfaults   a TCP proxy that blackholes a live connection
  lab.yamltext    YAML in the standard library: the block style kubeadm, kubectl and the engine write
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The processes the lab starts (the API simulator, a node's boot) run as `python3 -m lab....`: they
# find this package through PYTHONPATH, whichever directory and script started the lab.
if ROOT not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)


def plumbing_context(cert, key):
    """TLS for the lab's own plumbing (kubelet reports, faults, status) to the API simulator: its
    client certificate, and no check of the server's, because the served certificate is what the
    certificate runbooks are rehearsed against and a fault may have expired it on purpose."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cert, key)
    return ctx
