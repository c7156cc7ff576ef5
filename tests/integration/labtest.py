"""What the lab's end-to-end tests share: where the repository, scripts/lab and the engine are, and
`scripts/lab` run with its output shown when it fails. Importing it also makes the lab package
importable (`from lab import ...`)."""
import contextlib
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)  # the lab package
LAB = os.path.join(ROOT, "scripts", "lab")
ENGINE = os.environ.get("ENGINE_BIN", os.path.join(ROOT, "build", "bin", "engine"))


def lab(*args, timeout=180):
    r = subprocess.run([LAB, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"scripts/lab {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


@contextlib.contextmanager
def fault(lab_dir, node, kind, *extra):
    """`scripts/lab fault` for the block's duration, cleared however it ends."""
    lab("fault", node, kind, *extra, "--dir", lab_dir)
    try:
        yield
    finally:
        lab("clear", node, kind, "--dir", lab_dir)


def text_server(body):
    """An HTTP server on 127.0.0.1 (a free port: .server_address[1]) that answers every GET with
    body() (bytes), served from a thread until .shutdown(); then .server_close()."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = body()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def kill_all(procs):
    """The engine processes a test started and did not see end (a failed assertion mid-run): killed
    and reaped, so none outlives its test or holds the next test's lab."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


class LabClass(unittest.TestCase):
    """One lab for all of a class's tests: `lab up` with UP_ARGS (beside --subnet SUBNET) before
    them, `lab down` after; cls.dir and cls.state (lab.json) in between."""
    SUBNET = None
    UP_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="engine-lab-")
        lab("up", "--dir", cls.dir, "--subnet", cls.SUBNET, *cls.UP_ARGS)
        with open(f"{cls.dir}/lab.json") as f:
            cls.state = json.load(f)

    @classmethod
    def tearDownClass(cls):
        lab("down", "--dir", cls.dir)

    def engine_run(self, runbook, *extra, timeout=600, env=None, kubeconfig=None):
        """engine run RUNBOOK with the lab's inventory, kubeconfig (or another) and a state directory of its own."""
        return subprocess.run([ENGINE, "run", runbook, "-i", f"{self.dir}/inventory.yml", "--kubeconfig", kubeconfig or f"{self.dir}/kubeconfig",
                               "--state-dir", f"{self.dir}/state", *extra], capture_output=True, text=True, timeout=timeout, env=env)
