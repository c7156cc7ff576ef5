"""What the lab's end-to-end tests share: where the repository, scripts/lab and the engine are, and
`scripts/lab` run with its output shown when it fails. Importing it also makes the lab package
importable (`from lab import ...`)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)  # the lab package
LAB = os.path.join(ROOT, "scripts", "lab")
ENGINE = os.environ.get("ENGINE_BIN", os.path.join(ROOT, "build", "bin", "engine"))


def lab(*args, timeout=180):
    r = subprocess.run([LAB, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"scripts/lab {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r
