"""server_util.py — what the server tests share: running under the venv's python (or skipping),
starting `glmoe serve` on a free port and stopping it, reading /metrics and the server's RSS."""
import os
import re
import subprocess
import sys
import time

SKIP = 77


def use_venv():
    """Re-runs this script with the venv's python unless openai already imports; exits 77 (skip)
    when there is no venv with the openai client."""
    try:
        import openai  # noqa: F401
        import httpx  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.environ.get("GLMOE_PY_VENV", "")
    py = os.path.join(venv, "bin", "python")
    if venv and os.path.exists(py) and not os.environ.get("GLMOE_IN_VENV"):
        os.environ["GLMOE_IN_VENV"] = "1"
        os.execv(py, [py] + sys.argv)
    print(f"SKIP: no python environment with the openai client (GLMOE_PY_VENV={venv!r}; "
          "tests/server/venv.py makes it with pip)")
    sys.exit(SKIP)


class Server:
    """`glmoe serve` on 127.0.0.1 and a free port; stop() sends SIGINT and returns its exit status."""

    def __init__(self, glmoe, model, *args, api_key=None):
        cmd = [glmoe, "serve", "-m", model, "--port", "0"] + list(args)
        if api_key:
            cmd += ["--api-key", api_key]
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"glmoe-serve-{os.getpid()}-{id(self)}.log"),
                        "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.time() + 120
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"glmoe serve exited with {self.proc.returncode}: {self.output()}")
            m = re.search(r"http://127\.0\.0\.1:(\d+)/v1", self.output())
            if m:
                self.port = int(m.group(1))
            else:
                time.sleep(0.05)
        if self.port is None:
            self.proc.kill()
            raise RuntimeError(f"glmoe serve did not start: {self.output()}")
        self.base = f"http://127.0.0.1:{self.port}"

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "hung"
        return self.proc.returncode


def metrics(base, headers=None):
    import httpx
    text = httpx.get(base + "/metrics", headers=headers or {}, timeout=30).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out
