"""`kubeadm certs check-expiration` and `kubeadm certs renew` for a lab node: kubeadm's table and
messages, over the node's PKI (lab.node.certs). Apart from kubeadm.py because they bring
calendar and datetime, which `kubeadm version` and `upgrade` do not need: a simulated command's
start-up is CPU on the cores the whole lab shares, paid by every command of every tool."""
import calendar
import datetime
import time

from lab.node import certs
from lab.node.common import die, node


def cert_rows(root):
    rows = []
    for name in certs.LEAVES:
        try:
            rows.append((name, certs.enddate_of(root, name), certs.LEAVES[name][1]))
        except Exception:
            pass
    return rows


def residual(enddate):
    t = calendar.timegm(time.strptime(enddate.replace("  ", " "), "%b %d %H:%M:%S %Y %Z"))
    left = t - time.time()
    if left <= 0:
        return t, "<invalid>"
    return t, f"{int(left // 86400)}d" if left < 2 * 365 * 86400 else f"{int(left // (365 * 86400))}y"


def check_expiration():
    print("[check-expiration] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n"
          "[check-expiration] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.\n")
    print(f"{'CERTIFICATE':<26} {'EXPIRES':<24} {'RESIDUAL TIME':<15} {'CERTIFICATE AUTHORITY':<23} EXTERNALLY MANAGED")
    for name, end, ca in cert_rows("/etc/kubernetes"):
        t, left = residual(end)
        when = datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%b %d, %Y %H:%M UTC")
        print(f"{name:<26} {when:<24} {left:<15} {ca:<23} no")
    print(f"\n{'CERTIFICATE AUTHORITY':<23} {'EXPIRES':<24} {'RESIDUAL TIME':<15} EXTERNALLY MANAGED")
    for ca in certs.CAS:
        t, left = residual(certs.enddate_of("/etc/kubernetes", ca))
        when = datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%b %d, %Y %H:%M UTC")
        print(f"{ca:<23} {when:<24} {left:<15} no")
    return 0


def renew(args):
    n = node()
    which = [a for a in args if not a.startswith("-")]
    if not which:
        die("missing subcommand; \"renew\" is not meant to be run on its own\nTo see the stack trace of this error "
            "execute with --v=5 or higher")
    names = list(certs.LEAVES) if which[0] == "all" else which
    for name in names:
        if name not in certs.LEAVES:
            die(f"unknown command \"{name}\" for \"kubeadm certs renew\"")
        certs.issue("/etc/kubernetes", name, n["name"], n["ip"], n["api"], 365, n.get("leader_ips", ()))
        what = (f"certificate embedded in the kubeconfig file for the {name[:-5]} to use" if name.endswith(".conf")
                else f"certificate for {name}")
        print(f"{what} renewed")
    print("\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, "
          "kube-scheduler and etcd, so that they can use the new certificates.")
    return 0
