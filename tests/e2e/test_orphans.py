"""No orphan servers: a supervisor killed by any signal takes its tritonserver and model processes with it; a start
refuses ports something else holds (and never reports another server's readiness as its own); shared-memory regions
left by killed servers are removed at start, live ones kept. Real processes throughout."""
import mmap
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from serving.process import Child, ServerError, free_port, port_holder
from serving.server import ServerConfig, TritonServer, leftover_shm
from tests.conftest import mapped_by_child
from tests.e2e.conftest import gone, serve
from tests.e2e.conftest import wait_for as _wait

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
ENV = {**os.environ, "SKETCHYGAN_RUNTIME": str(ROOT / ".cache" / "triton-runtime")}


def _kill_tree(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sigkill_of_the_server_commands_process_group_leaves_nothing_running(exported, tmp_path):
    _, repo, _ = exported
    ports = (free_port(), free_port(), free_port())
    proc, lines, _ = serve(repo, tmp_path, "--calibrate", "off", ports=ports, new_session=True)
    tree: list[int] = []
    try:
        tree = [proc.pid] + [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        names = {psutil.Process(p).name() for p in tree}
        assert "tritonserver" in names and "triton_python_backend_stub" in names, names
        os.killpg(proc.pid, signal.SIGKILL)  # the command's group only: tritonserver runs in a session of its own
        _wait(lambda: all(gone(p) for p in tree), 15, "every process of the tree to end")
        _wait(lambda: all(port_holder("127.0.0.1", p) is None for p in ports), 15, "the ports to be free")
    finally:
        _kill_tree(tree)  # a failed test must leave nothing behind
        proc.wait(10)


def test_a_second_server_on_busy_ports_refuses_naming_the_port_and_never_says_ready(exported, tmp_path):
    _, repo, _ = exported
    ports = (free_port(), free_port(), free_port())
    first, _, _ = serve(repo, tmp_path, "--calibrate", "off", ports=ports, new_session=True)
    try:
        second = subprocess.run([sys.executable, "-m", "serving", "--repository", str(repo), "--grpc-port",
                                 str(ports[0]), "--metrics-port", str(free_port()), "--health-port", str(free_port()),
                                 "--calibrate", "off"], cwd=tmp_path, capture_output=True, text=True, env=ENV,
                                timeout=120)
        out = second.stdout + second.stderr
        assert second.returncode != 0, out
        assert f"gRPC port 127.0.0.1:{ports[0]} is in use by pid" in out and "tritonserver" in out, out
        assert "ready:" not in out
        assert first.poll() is None  # the first one is untouched
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)


def test_a_ready_answer_from_another_server_on_the_port_is_not_our_readiness(server, tmp_path):
    """Past the port check (a server that took the port while ours started): the other server answers ready on
    the gRPC port, but our own child does not listen there, so the wait does not end in 'ready'."""
    srv = TritonServer(ServerConfig(repository=server.config.repository, grpc_port=server.config.grpc_port,
                                    metrics_port=free_port()), log_path=tmp_path / "second.log")
    # our "server": alive, deaf
    srv._child = Child("tritonserver", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "deaf.log")
    srv._child.start()
    try:
        with pytest.raises(ServerError, match="was not ready within"):
            srv.wait_ready(timeout_s=3)
    finally:
        srv._child.stop(1)


def test_stale_shared_memory_is_removed_at_start_and_a_live_region_kept(exported, tmp_path):
    _, repo, _ = exported
    stale = Path(f"/dev/shm/triton_python_backend_shm_region_test-stale-{uuid.uuid4().hex}")
    live = Path(f"/dev/shm/triton_python_backend_shm_region_test-live-{uuid.uuid4().hex}")
    for p in (stale, live):
        p.write_bytes(b"\0" * mmap.PAGESIZE)
    try:
        with mapped_by_child(live):
            cfg = ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port())
            with TritonServer(cfg, log_path=tmp_path / "server.log") as srv:
                assert str(stale) in srv.removed_shm and not stale.exists()
                assert live.exists() and str(live) not in srv.removed_shm
                assert str(live) in leftover_shm()
    finally:
        for p in (stale, live):
            p.unlink(missing_ok=True)


def test_the_start_names_a_busy_health_port(exported, tmp_path):
    from serving.supervisor import Supervisor, SupervisorConfig
    _, repo, _ = exported
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sup = Supervisor(ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port()),
                         SupervisorConfig(health_port=port, calibrate=False), log_path=tmp_path / "s.log")
        with pytest.raises(ServerError, match=f"health port 127.0.0.1:{port} is in use by pid {os.getpid()}"):
            sup.start()
        assert sup.server.proc is None  # nothing was started


def test_sigterm_of_the_playground_stops_the_server_it_started(exported, tmp_path):
    """`make web` (`python -m web --serve-repository`) started a supervised tritonserver: a SIGTERM to the gateway
    (what a process manager sends) drains and stops all of it. uvicorn re-raises the signal that stopped it; with
    SIGTERM's default handler that ended the gateway before it stopped its child, and the orphaned supervisor kept
    restarting a killed tritonserver."""
    import urllib.request
    _, repo, _ = exported
    grpc, web_port = free_port(), free_port()
    log = open(tmp_path / "web.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "web", "--serve-repository", str(repo), "--triton",
                             f"127.0.0.1:{grpc}", "--port", str(web_port)], cwd=ROOT, env=ENV, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    tree: list[int] = []

    def answers() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=2).status == 200
        except OSError:
            return proc.poll() is not None  # ended: the assertion below says so
    try:
        _wait(answers, 180, "the playground and its tritonserver to be ready")
        assert proc.poll() is None, (tmp_path / "web.log").read_text()[-2000:]
        tree = [proc.pid] + [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        names = {psutil.Process(p).name() for p in tree}
        assert "tritonserver" in names, names
        proc.send_signal(signal.SIGTERM)
        _wait(lambda: all(gone(p) for p in tree), 90, "the gateway, the supervisor and tritonserver to end")
        assert "stopping tritonserver" in (tmp_path / "web.log").read_text()
        _wait(lambda: port_holder("127.0.0.1", grpc) is None, 15, "the gRPC port to be free")
    finally:
        _kill_tree(tree)
        proc.wait(10)
        log.close()
