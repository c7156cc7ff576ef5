"""The lab's release mirror, served over HTTP on the lab's service address:
- etcd-vX.Y.Z-linux-amd64.tar.gz and SHA256SUMS in the layout of etcd's GitHub releases
  (…/releases/download/vX.Y.Z/), built from the etcd binaries this machine has: Debian bookworm's
  3.4 in /usr/bin, and Debian trixie's 3.5 that scripts/setup unpacks into the lab's own apt
  directory;
- pkgs.k8s.io's flat apt repositories, one per minor (core:/stable:/vX.Y/deb/Release and Packages),
  listing the lab's releases, as the nodes' simulated apt offers them (lab/node/apt.py)."""
import hashlib
import io
import os
import subprocess
import tarfile

from lab import ROOT

PATH = "etcd-io/etcd/releases/download"
# scripts/setup's `dpkg-deb -x` of trixie's etcd-server and etcd-client (never the system's sources).
TRIXIE = os.environ.get("ENGINE_LAB_APT", os.path.join(ROOT, "build", "lab-apt")) + "/root/usr/bin"


def version_of(etcd):
    out = subprocess.run([etcd, "--version"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    return None


def sources():
    """{version: {name in the tarball: path here}} for every etcd this machine can offer."""
    out = {}
    for d in ("/usr/bin", TRIXIE):
        etcd = f"{d}/etcd"
        if not os.access(etcd, os.X_OK):
            continue
        v = version_of(etcd)
        if v and v not in out:
            files = {"etcd": etcd}
            for tool in ("etcdctl", "etcdutl"):
                if os.access(f"{d}/{tool}", os.X_OK):
                    files[tool] = f"{d}/{tool}"
            out[v] = files
    return out


def build(root):
    """Writes every release's tarball and SHA256SUMS under root/PATH; returns the versions."""
    versions = []
    for v, files in sorted(sources().items()):
        d = f"{root}/{PATH}/v{v}"
        os.makedirs(d, exist_ok=True)
        name = f"etcd-v{v}-linux-amd64"
        with tarfile.open(f"{d}/{name}.tar.gz", "w:gz", compresslevel=1) as tar:
            for tool, path in files.items():
                tar.add(path, arcname=f"{name}/{tool}")
            readme = f"etcd {v}, built by the engine lab from this machine's Debian packages\n".encode()
            info = tarfile.TarInfo(f"{name}/README.md")
            info.size = len(readme)
            tar.addfile(info, io.BytesIO(readme))
        with open(f"{d}/{name}.tar.gz", "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        with open(f"{d}/SHA256SUMS", "w") as f:
            f.write(f"{digest}  {name}.tar.gz\n")
        versions.append(v)
    return versions


K8S_REPO = "core:/stable:/v{minor}/deb"


def build_k8s_repos(root, releases):
    """Release and Packages of each minor's repository (the files k8s-version-check.lua reads)."""
    minors = sorted({".".join(v.split(".")[:2]) for v in releases}, key=lambda m: [int(x) for x in m.split(".")])
    for m in minors:
        d = f"{root}/{K8S_REPO.format(minor=m)}"
        os.makedirs(d, exist_ok=True)
        with open(f"{d}/Release", "w") as f:
            f.write(f"Origin: obs://build.opensuse.org/isv:kubernetes:core:stable:v{m}/deb\n"
                    f"Label: isv:kubernetes:core:stable:v{m}\nArchitectures: amd64 arm64\n")
        with open(f"{d}/Packages", "w") as f:
            for v in (r for r in releases if r.startswith(m + ".")):
                for pkg in ("kubeadm", "kubelet", "kubectl"):
                    f.write(f"Package: {pkg}\nVersion: {v}-1.1\nArchitecture: amd64\n"
                            f"Filename: amd64/{pkg}_{v}-1.1_amd64.deb\n\n")
    return minors


def url(base):
    """The download URL pattern runbooks take (etcd_download_url), {version} filled in by them."""
    return f"{base}/{PATH}/v{{version}}/etcd-v{{version}}-linux-amd64.tar.gz"
