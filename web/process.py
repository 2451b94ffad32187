"""`python -m web` as a child process on a loopback port: how the tests and `python -m loadtest gateway` run it."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


class GatewayProcess:
    """Start with `start()` (or `with`), wait for it with `wait()`, stop with `stop()` (returns what it logged)."""

    def __init__(self, triton: str, port: int, log_path: Path, *extra: str) -> None:
        self.triton, self.port, self.log_path, self.extra = triton, port, Path(log_path), extra
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "GatewayProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:  # a file, not a pipe: a full pipe would block the gateway's logging
            self.proc = subprocess.Popen([sys.executable, "-m", "web", "--triton", self.triton, "--port",
                                          str(self.port), *self.extra], stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait(self, ready: bool = True, timeout_s: float = 60.0) -> "GatewayProcess":
        """Until /healthz answers 200 (`ready`), or answers at all (the gateway is up whatever tritonserver's state)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited: {self.log()}")
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=5)
                return self
            except urllib.error.HTTPError:
                if not ready:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway was not {'ready' if ready else 'listening'} within {timeout_s:g} s "
                                   f"(log: {self.log_path})")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> str:
        """SIGTERM (uvicorn shuts down gracefully), kill after `timeout_s`; returns the log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log()

    def __enter__(self) -> "GatewayProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
