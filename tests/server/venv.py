#!/usr/bin/env python3
"""venv.py VENV_DIR — makes the virtual environment of the server tests: python3 -m venv, then
pip install openai httpx (PyPI). Done once; a venv whose openai imports is kept. Without pip or
network it says so and exits 0: the tests that need it then skip visibly (exit 77)."""
import os
import subprocess
import sys

venv = sys.argv[1]
py = os.path.join(venv, "bin", "python")


def works():
    return os.path.exists(py) and subprocess.run([py, "-c", "import openai, httpx"],
                                                 capture_output=True).returncode == 0


if works():
    print(f"venv.py: {venv} is ready")
    sys.exit(0)
try:
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "openai", "httpx"],
                   check=True, timeout=400)
except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
    print(f"venv.py: WARNING: cannot make {venv} with the openai client ({e}); "
          "the server tests will SKIP (install python3-venv, reach PyPI)")
    sys.exit(0)
print(f"venv.py: {venv} made" if works() else f"venv.py: WARNING: {venv} has no working openai client")
