"""`python -m web` as a child process on a loopback port: how the tests and `python -m loadtest gateway` run it."""
from __future__ import annotations

import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from serving.process import Child


class GatewayProcess:
    """Start with `start()` (or `with`), wait for it with `wait()`, stop with `stop()` (returns what it logged)."""

    def __init__(self, triton: str, port: int, log_path: Path, *extra: str, https_ca: Path | None = None) -> None:
        """`https_ca`: the gateway serves HTTPS (its --tls-cert in `extra`) with a certificate this CA signed."""
        self.triton, self.port, self.log_path, self.extra = triton, port, Path(log_path), extra
        self.url = f"{'https' if https_ca else 'http'}://127.0.0.1:{port}"
        self.ssl_context = ssl.create_default_context(cafile=str(https_ca)) if https_ca else None
        self.child = Child("the gateway", [sys.executable, "-m", "web", "--triton", triton, "--port", str(port),
                                           *extra], self.log_path)

    @property
    def proc(self):
        return self.child.proc

    def start(self) -> "GatewayProcess":
        self.child.start()
        return self

    def wait(self, ready: bool = True, timeout_s: float = 60.0) -> "GatewayProcess":
        """Until /healthz answers 200 (`ready`), or answers at all (the gateway is up whatever tritonserver's state)."""
        def answers() -> bool:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=5, context=self.ssl_context)
                return True
            except urllib.error.HTTPError:
                return not ready
            except OSError:
                return False
        self.child.wait_until(answers, timeout_s, "ready" if ready else "listening", poll_s=0.1)
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> str:
        """SIGTERM (uvicorn shuts down gracefully), kill after `timeout_s`; returns the log."""
        self.child.stop(timeout_s)
        return self.log()

    def __enter__(self) -> "GatewayProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
