"""Start, wait for and stop a real `tritonserver` with safe flags (the binary shipped in the nvidia-pytriton wheel
by default, or any `--tritonserver PATH`).

Why the runtime folder: Triton 2.51's python backend only looks for its stub next to the backend library, and the
wheel ships stubs per Python version elsewhere, so backends are copied once into a runtime folder with the
3.11 stub beside them (docs/architecture.md, "Facts the code relies on"). PATH starts with this venv's bin so the stub's
embedded Python imports numpy/onnxruntime from the venv.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from serving.process import Child, ServerError, check_ports_free, launch_command, parse_cpus

# model-config stays open: clients discover the contract from it (read-only)
RESTRICTED_PROTOCOLS = "shared-memory,model-repository,statistics,trace,logging"
# Log lines after which tritonserver never becomes ready and never exits: a python-backend model process that finds
# no model.py leaves Triton 2.51 waiting on it for good (measured: still waiting after 200 s; an exception while
# importing model.py, by contrast, makes it exit at once), so a start fails on the line instead of at its timeout
FATAL_LOG_LINES = ("Failed to preinitialize Python stub",)


def _wheel_root() -> Path:
    """The tritonserver tree inside the nvidia-pytriton wheel, found without importing pytriton (its import costs
    ~0.6 s of CPU, which a restart would add to the time callers wait)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("the nvidia-pytriton wheel (which ships tritonserver) is not installed: run `make venv`, "
                          "or pass --tritonserver PATH")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def default_binary() -> Path:
    return _wheel_root() / "bin" / "tritonserver"


def prepare_runtime(folder: Path) -> Path:
    """Copy the wheel's backends + caches and the matching python stub into `folder` (once); returns backends dir."""
    root = _wheel_root()
    backends = folder / "backends"
    stub = backends / "python" / "triton_python_backend_stub"
    if stub.exists():
        return backends
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(root / "backends", tmp / "backends")
    shutil.copytree(root / "caches", tmp / "caches")
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    src = root / "python_backend_stubs" / ver / "triton_python_backend_stub"
    if not src.exists():
        raise ServerError(f"the Triton wheel has no python backend stub for Python {ver} ({src})")
    shutil.copy2(src, tmp / "backends" / "python" / "triton_python_backend_stub")
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return backends


@dataclass
class ServerConfig:
    """How to launch. Defaults are the safe ones: loopback, no HTTP, no model control, restricted admin APIs."""

    repository: Path
    grpc_port: int = 8001
    metrics_port: int = 8002
    http_port: int | None = None  # HTTP only when asked
    address: str = "127.0.0.1"
    tritonserver: Path | None = None
    runtime_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("SKETCHYGAN_RUNTIME", ".cache/triton-runtime")))
    restricted_key: str = "admin-key"
    restricted_value: str | None = field(default=None, repr=False)  # secret; None: a random one per start
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # mutual TLS: every gRPC caller must present a certificate signed by this CA (the supervisor's own calls present
    # tls_cert/tls_key, so that certificate must be signed by it too and allow client use)
    tls_client_ca: Path | None = None
    log_verbose: int = 0
    exit_timeout_s: int = 30
    extra_args: tuple[str, ...] = ()
    # the cores tritonserver (and the start-up calibration) may run on; None: whatever this process may use.
    # SKETCHYGAN_SERVER_CPUS="0" (or "0,1", "0-1") sets the default, e.g. to run a test suite on a slowed server
    cpus: tuple[int, ...] | None = field(default_factory=lambda: parse_cpus(os.environ.get("SKETCHYGAN_SERVER_CPUS")))
    # bytes of Triton's response cache (the local LRU cache, shared by the models that enable it); 0: no cache
    response_cache_bytes: int = 0
    # Triton's explicit model control (every model loaded at start): lets the holder of the restricted key load a new
    # model version into the running server (serving/versions.py). Off: the repository is fixed at start
    model_control: bool = False

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both --tls-cert and --tls-key (PEM files)")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("--tls-client-ca (mutual TLS) needs the server's own --tls-cert and --tls-key")
        for flag, path in (("--tls-cert", self.tls_cert), ("--tls-key", self.tls_key),
                           ("--tls-client-ca", self.tls_client_ca)):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{flag} {path}: no such file (a PEM file is expected)")
        if self.response_cache_bytes < 0:
            raise ValueError(f"the response cache size must be >= 0 bytes (0: off), got {self.response_cache_bytes}")
        if self.cpus is not None:
            online = set(range(os.cpu_count() or 1))
            if not self.cpus or not set(self.cpus) <= online:
                raise ValueError(f"cpus {list(self.cpus)} must be a non-empty subset of this machine's cores, "
                                 f"{sorted(online)}")

    def args(self, backends: Path | None) -> list[str]:
        binary = str(self.tritonserver or default_binary())
        control = ["--model-control-mode=explicit", "--load-model=*"] if self.model_control else \
            ["--model-control-mode=none"]
        a = [binary, f"--model-repository={Path(self.repository).resolve()}", *control,
             "--exit-on-error=true", "--strict-readiness=true", f"--exit-timeout-secs={self.exit_timeout_s}",
             # every config is complete as generated: without this, Triton starts one more python-backend process per
             # model at load only to ask it to complete its config (~1.8 s of a restart on a slowed core)
             "--disable-auto-complete-config",
             f"--grpc-address={self.address}", f"--grpc-port={self.grpc_port}",
             f"--metrics-address={self.address}", f"--metrics-port={self.metrics_port}",
             "--allow-metrics=true", "--metrics-config=summary_latencies=true",
             f"--grpc-restricted-protocol={RESTRICTED_PROTOCOLS}:{self.restricted_key}={self.restricted_value}",
             f"--log-verbose={self.log_verbose}"]
        if self.http_port is None:
            a.append("--allow-http=false")
        else:
            a += ["--allow-http=true", f"--http-address={self.address}", f"--http-port={self.http_port}",
                  f"--http-restricted-api={RESTRICTED_PROTOCOLS}:{self.restricted_key}={self.restricted_value}"]
        if self.tls_cert or self.tls_key:
            a += ["--grpc-use-ssl=true", f"--grpc-server-cert={self.tls_cert}", f"--grpc-server-key={self.tls_key}"]
        if self.tls_client_ca:
            a += ["--grpc-use-ssl-mutual=true", f"--grpc-root-cert={self.tls_client_ca}"]
        if backends is not None:
            a.append(f"--backend-directory={backends}")
        if self.response_cache_bytes:
            if backends is not None:
                a.append(f"--cache-directory={backends.parent / 'caches'}")
            a.append(f"--cache-config=local,size={self.response_cache_bytes}")
        return a + list(self.extra_args)

    def ports(self) -> dict[str, int]:
        """The TCP ports this server will listen on, by what they are for."""
        out = {"gRPC": self.grpc_port, "metrics": self.metrics_port}
        if self.http_port is not None:
            out["HTTP"] = self.http_port
        return out


# Exec'd in front of tritonserver (same pid): it asks Linux to SIGKILL it when the thread that started it dies
# (PR_SET_PDEATHSIG = 1; kept across exec), so a supervisor killed by any signal, SIGKILL included, takes its server
# with it; the python-backend stubs exit on their own within ~0.3 s of their server (they poll its pid). It also
# sets the cores. A parent that died before the prctl is caught by comparing the parent pid.
class TritonServer:
    """A tritonserver child process in its own process group. Use as a context manager or start()/stop()."""

    def __init__(self, config: ServerConfig, log_path: Path | None = None) -> None:
        self.config = config
        if config.restricted_value is None:
            config.restricted_value = os.urandom(12).hex()
        self.log_path = Path(log_path) if log_path else Path(config.runtime_dir).parent / f"triton-{os.getpid()}.log"
        self._child: Child | None = None
        # the drain-barrier model (triton_repo/drain_model.py) holds only requests carrying this; secret per server
        self.drain_token = os.urandom(16).hex()

    @property
    def grpc_url(self) -> str:
        return f"{self.config.address}:{self.config.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.config.address}:{self.config.metrics_port}/metrics"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
        libs = [str(_wheel_root().parent.parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR") or ""]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([p for p in libs if p] + [env.get("LD_LIBRARY_PATH", "")])
        env["SKETCHYGAN_DRAIN_TOKEN"] = self.drain_token
        return env

    def start(self, timeout_s: float = 120.0) -> "TritonServer":
        cfg = self.config
        if not Path(cfg.repository).is_dir():
            raise ServerError(f"model repository {cfg.repository} does not exist (run `make export`)")
        check_ports_free(cfg.address, cfg.ports())
        backends = None if cfg.tritonserver else prepare_runtime(Path(cfg.runtime_dir).resolve())
        self.removed_shm = remove_stale_shm()
        self._shm_before = set(leftover_shm())
        # the log is appended to: a restarted server keeps the crashed one's log
        self._child = Child("tritonserver", launch_command(cfg.args(backends), cfg.cpus), self.log_path,
                            new_session=True, env=self.env(), stop_group=True).start()
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def proc(self) -> subprocess.Popen | None:
        return None if self._child is None else self._child.proc

    def wait_ready(self, timeout_s: float) -> None:
        """Return once our own child listens on its gRPC port and says it is ready. The gRPC client is made only
        once the port listens: a channel that found nothing there waits out gRPC's reconnect backoff (1 s, 1.6 s,
        ...), which made a restart look up to ~2 s slower than it was."""
        client = None

        def ready() -> bool:
            nonlocal client
            if not self._listens_on(self.config.grpc_port):
                return False
            try:
                if client is None:
                    client = self.client()
                return client.is_server_ready(client_timeout=2)
            except Exception:  # noqa: BLE001 — listening, not answering yet
                return False
        try:
            self._child.wait_until(ready, timeout_s, "ready", fatal=FATAL_LOG_LINES)
        finally:
            if client is not None:
                client.close()

    def _listens_on(self, port: int) -> bool:
        """Our own child listens on `port` (a ready answer from another server on it does not count)."""
        import psutil
        try:
            return any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                       for c in psutil.Process(self.proc.pid).net_connections("tcp"))
        except psutil.Error:
            return False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def client(self):
        """A tritonclient gRPC client of this server (over TLS when it serves TLS); the caller closes it."""
        import tritonclient.grpc as grpcclient
        cfg, kw = self.config, {}
        if cfg.tls_cert:  # verified against the CA that signs callers' certificates, else the (self-signed) cert
            kw = {"ssl": True, "root_certificates": str(cfg.tls_client_ca or cfg.tls_cert)}
        if cfg.tls_client_ca:  # the supervisor's own calls present the server's certificate
            kw |= {"certificate_chain": str(cfg.tls_cert), "private_key": str(cfg.tls_key)}
        return grpcclient.InferenceServerClient(self.grpc_url, **kw)

    @property
    def admin_headers(self) -> dict[str, str]:
        """gRPC headers that unlock the restricted APIs (statistics, logging, ...) for this server."""
        return {f"triton-grpc-protocol-{self.config.restricted_key}": str(self.config.restricted_value)}

    def log_tail(self, n: int = 40) -> str:
        return self._child.log_tail(n) if self._child is not None else "(not started)"

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM the process group (server + python stubs), wait, then SIGKILL stragglers; clean /dev/shm."""
        if self._child is None or self._child.proc is None:
            return None
        pgid = self._child.proc.pid
        rc = self._child.stop(timeout_s)
        self._child = None
        _wait_group_gone(pgid)  # stubs still exiting keep their shared memory mapped: wait before cleaning it
        # a killed server or a failed start leaves its python-backend region behind: remove the ones that
        # appeared during our lifetime and that no process still maps
        mine = set(leftover_shm()) - getattr(self, "_shm_before", set())
        for path in mine - _mapped(mine):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.left_shm = sorted(p for p in mine if os.path.exists(p))  # still mapped by someone: reported, kept
        return rc

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _wait_group_gone(pgid: int, timeout_s: float = 5.0) -> None:
    """Wait until no live process (zombies aside) is left in process group `pgid`."""
    import psutil
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = False
        for p in psutil.process_iter():
            try:
                if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                    alive = True
                    break
            except (ProcessLookupError, psutil.Error):
                continue
        if not alive:
            return
        time.sleep(0.02)


def _mapped(paths: set[str]) -> set[str]:
    """Those of `paths` that some process still maps (one pass over /proc/*/maps: cheap, unlike smaps)."""
    found: set[str] = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):
        try:
            with open(maps) as fh:
                for line in fh:
                    path = line.rstrip("\n").split(maxsplit=5)[-1]
                    if path in paths:
                        found.add(path)
        except OSError:  # the process exited, or is not ours to read
            continue
    return found


def leftover_shm() -> list[str]:
    """Python-backend shared-memory regions currently in /dev/shm (a clean stop leaves none of ours)."""
    return glob.glob("/dev/shm/triton_python_backend_shm_region_*")


def remove_stale_shm() -> list[str]:
    """Remove the python-backend regions that no live process maps (left by killed servers); returns them. A
    region that some process maps — another server's — is never touched."""
    regions = set(leftover_shm())
    stale = sorted(regions - _mapped(regions))
    for path in stale:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return stale
