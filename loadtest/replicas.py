"""Several supervised servers (`python -m serving`) on loopback: the replicas a scale-out run and its tests use.

Each replica is its own `python -m serving` process in its own session (as a terminal or a pod would start it), on
its own gRPC, metrics and health ports, logging to its own file. `kill()` SIGKILLs its whole process group — the
supervisor, its tritonserver and the model processes (PDEATHSIG takes those down with it); `terminate()` is the
graceful SIGTERM drain; `start()` again on the same ports is a restart.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from serving.process import Child, free_port


@dataclass
class ReplicaProcess:
    repository: Path
    log_dir: Path
    grpc_port: int = 0  # 0: a free port, chosen once and kept across restarts
    metrics_port: int = 0
    health_port: int = 0
    extra: tuple[str, ...] = ()  # more `python -m serving` options, e.g. ("--calibrate", "off")

    def __post_init__(self) -> None:
        self.grpc_port = self.grpc_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        self.health_port = self.health_port or free_port()
        self._child: Child | None = None
        self._ended = False  # killed or terminated: no process to act on until the next start

    @property
    def proc(self) -> subprocess.Popen | None:
        """The supervisor's process while it may be running (None before start and after kill/terminate)."""
        return None if self._child is None or self._ended else self._child.proc

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/ready"

    @property
    def proxy_spec(self) -> str:
        """How serving/proxy.py names it: HOST:GRPC_PORT@HEALTH_PORT."""
        return f"{self.grpc}@{self.health_port}"

    def start(self) -> "ReplicaProcess":
        """Launch (returns at once; `wait_ready` waits)."""
        cmd = [sys.executable, "-m", "serving", "--repository", str(self.repository),
               "--grpc-port", str(self.grpc_port), "--metrics-port", str(self.metrics_port),
               "--health-port", str(self.health_port),
               "--log", str(self.log_dir / f"tritonserver-{self.grpc_port}.log"), *self.extra]
        self._child = Child(f"replica {self.grpc}", cmd, self.log_dir / f"serving-{self.grpc_port}.log",
                            new_session=True).start()
        self._ended = False
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout_s: float = 180.0) -> "ReplicaProcess":
        self._child.wait_until(self.ready, timeout_s, poll_s=0.1)
        return self

    def log_tail(self, n: int = 20) -> str:
        return self._child.log_tail(n) if self._child is not None else "(not started)"

    def pids(self) -> list[int]:
        """The supervisor and every process under it (tritonserver, launcher, model stubs)."""
        import psutil
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            return [self.proc.pid] + [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the whole process group and every process under the supervisor (a node or pod lost)."""
        if self.proc is None:
            return
        tree = self.pids()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in tree:  # tritonserver runs in a session of its own: not in the group above
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        self._close()

    def terminate(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM: the supervisor drains (not ready at once, accepted calls finish) and exits; past `timeout_s`
        the whole tree is killed (and None returned)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self._close()
        return self._child.proc.returncode

    def _close(self) -> None:
        self._child.stop(0)  # already ended: closes its log
        self._ended = True

    def ports_free(self) -> bool:
        from serving.process import port_holder
        return all(port_holder("127.0.0.1", p) is None for p in (self.grpc_port, self.metrics_port,
                                                                 self.health_port))


def client_target(replicas: list[ReplicaProcess]) -> str:
    """One gRPC target naming every replica (gRPC's ipv4: list), balanced per call by the client."""
    return "ipv4:" + ",".join(r.grpc for r in replicas)


def served(replicas: list[ReplicaProcess]) -> dict[str, float]:
    """Successful inference requests so far, per replica (Triton's nv_inference_request_success)."""
    from loadtest.triton_metrics import scrape
    out = {}
    for r in replicas:
        try:
            out[r.grpc] = scrape(r.metrics_url, timeout_s=2).get("nv_inference_request_success", 0.0)
        except OSError:
            out[r.grpc] = 0.0
    return out


@contextlib.contextmanager
def target(host: str | None, metrics_url: str | None, repository: str):
    """Yield (grpc url, metrics url): the given host, or a server started here."""
    if host:
        yield host, metrics_url
        return
    from serving.server import ServerConfig, TritonServer
    cfg = ServerConfig(repository=Path(repository), grpc_port=free_port(), metrics_port=free_port())
    with TritonServer(cfg, log_path=Path("reports") / "tritonserver.log") as srv:
        yield srv.grpc_url, srv.metrics_url
