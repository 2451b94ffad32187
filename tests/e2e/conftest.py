"""A real tritonserver on 127.0.0.1, serving the tiny exported model, shared by the end-to-end tests; and the
helpers the tests wait and check processes with."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from serving.process import Child, free_port
from serving.server import ServerConfig, TritonServer

ROOT = Path(__file__).resolve().parents[2]
# `make test-slowed` (CI's second pass): every tritonserver on this core, which a busy loop shares all session long
SLOWED_CORE = "SKETCHYGAN_TEST_SLOWED_CORE"


@pytest.fixture(scope="session", autouse=True)
def slowed_core():
    """With SKETCHYGAN_TEST_SLOWED_CORE=N: a busy loop on core N for the whole session, and every server that does
    not choose its cores pinned there (SKETCHYGAN_SERVER_CPUS, inherited by the `python -m serving` children). A
    test that passes only on an idle or fast machine fails here. Yields the core, or None in a normal run."""
    core = os.environ.get(SLOWED_CORE)
    if not core:
        yield None
        return
    from loadtest.cpu import busy_loops
    if not core.isdigit() or int(core) not in os.sched_getaffinity(0):
        raise pytest.UsageError(f"{SLOWED_CORE}={core!r}: expected one of this process's cores "
                                f"{sorted(os.sched_getaffinity(0))}")
    before = os.environ.get("SKETCHYGAN_SERVER_CPUS")
    os.environ["SKETCHYGAN_SERVER_CPUS"] = core
    try:
        with busy_loops(1, (int(core),)):
            yield int(core)
    finally:
        if before is None:
            os.environ.pop("SKETCHYGAN_SERVER_CPUS", None)
        else:
            os.environ["SKETCHYGAN_SERVER_CPUS"] = before


def wait_for(cond, timeout_s: float = 60.0, what: str = "condition"):
    """Poll `cond` until it returns something true (returned) or `timeout_s` passes (AssertionError naming `what`):
    tests wait on conditions, never on a sleep that races the machine."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (v := cond()):
            return v
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def counted(metrics_url: str, before: dict[str, float], name: str, n: float, model: str = "sketchygan",
            timeout_s: float = 30.0) -> dict[str, float]:
    """`model`'s metrics since `before` once Triton has counted at least `n` of `name`. Triton updates its request
    counters after the answer has gone out, so a read right after the answers can come too early: wait, then let the
    test compare the exact figure."""
    from loadtest.triton_metrics import delta, scrape
    return wait_for(lambda: (d := delta(before, scrape(metrics_url, model=model))).get(name, 0) >= n and d, timeout_s,
                    f"Triton to count {n:g} {name} of {model}")


def gone(pid: int) -> bool:
    """The process has exited (a zombie awaiting its parent counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class LogLines:
    """The lines a child has written to its log so far, read afresh on each pass (what a test searches)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self):
        try:
            return iter(self.path.read_text(errors="replace").splitlines(keepends=True))
        except OSError:
            return iter(())


def costed_server(repo: Path, base: Path, seconds_per_image: float, batch_limit: int) -> TritonServer:
    """A plain tritonserver on `repo`'s model with a made-up calibration: `seconds_per_image` (no overhead) and
    batches of at most `batch_limit`, so that model.py's predictions are long whatever the machine (it follows the
    machine down to half the stated cost, never lower) and its refusals deterministic. The caller stops it."""
    import dataclasses

    from serving.calibrate import write_served_repository
    from serving.measure import Cost
    from serving.plan import derive
    plan = dataclasses.replace(derive([Cost("onnxruntime", 2, 1, seconds_per_image, 0.0)], 60.0, 16),
                               batch_limit=batch_limit)
    served = write_served_repository(repo, base / "repo", plan)
    return TritonServer(ServerConfig(repository=served, grpc_port=free_port(), metrics_port=free_port()),
                        log_path=base / "server.log").start()


def serve(repo: Path, cwd: Path, *extra: str, ports: tuple[int, int, int] | None = None,
          timeout_s: float = 120.0,
          new_session: bool = False) -> tuple[subprocess.Popen, LogLines, tuple[int, int, int]]:
    """`python -m serving` as a real process (on `ports` = gRPC, metrics, health, default free ones; in a process
    group of its own with `new_session`, as a terminal gives a command); returns once it printed its ready line,
    with the lines it printed (read afresh each time they are searched)."""
    g, m, h = ports or (free_port(), free_port(), free_port())
    log_path = Path(cwd) / f"serving-{g}.log"
    readies = sum(1 for line in LogLines(log_path) if line.startswith("ready:"))  # a restart appends to the log
    child = Child("python -m serving", [sys.executable, "-m", "serving", "--repository", str(repo), "--grpc-port",
                                        str(g), "--metrics-port", str(m), "--health-port", str(h), *extra],
                  log_path, cwd=cwd, new_session=new_session,
                  env={**os.environ, "SKETCHYGAN_RUNTIME": str(ROOT / ".cache" / "triton-runtime")}).start()
    lines = LogLines(child.log_path)
    child.wait_until(lambda: sum(1 for line in lines if line.startswith("ready:")) > readies, timeout_s,
                     "ready to serve")
    return child.proc, lines, (g, m, h)


def stop_serving(proc: subprocess.Popen, lines: LogLines) -> None:
    """SIGTERM (a drain) and the exit status 0 that promises."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, "".join(lines)


def ready_json(port: int) -> tuple[int, dict]:
    """The supervisor's /ready on `port`: (HTTP status, JSON)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="session")
def default_repo(tmp_path_factory):
    """The shipped checkpoint exported as `python -m export` does by default (the serving config, the learned
    upsampler): the real model and the real queue policy."""
    from export.pipeline import run_export
    from triton_repo.serving_config import ServingConfig
    base = tmp_path_factory.mktemp("default-export")
    run_export(ROOT / "checkpoints" / "sketchygan-cpu.safetensors", base / "repo", base / "gpu", ["cpu"],
               ServingConfig(), None, 30.0, upsampler=ROOT / "checkpoints" / "upsampler-2x.safetensors",
               photo_judge_steps=None)  # the gate's photo judge trains for minutes on a fresh machine
    return base / "repo"


@pytest.fixture(scope="session")
def server(exported, tmp_path_factory):
    _, repo, _ = exported
    cfg = ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port())
    srv = TritonServer(cfg, log_path=tmp_path_factory.mktemp("triton") / "server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def patient_repo(exported, tmp_path_factory):
    """The test model with no queue timeout: for tests that freeze the model processes and need the queued requests
    to stay accepted however long the machine takes (the default 500 ms queue timeout would reject them)."""
    from triton_repo.config_reader import contract_from_config, parse_config
    from triton_repo.folders import write_model_folder
    from triton_repo.serving_config import Limits, ServingConfig
    _, repo, _ = exported
    contract = contract_from_config(parse_config((repo / "sketchygan" / "config.pbtxt").read_text()))
    out = tmp_path_factory.mktemp("patient")
    write_model_folder(out, "cpu", contract, ServingConfig(max_batch_size=16, limits=Limits(queue_timeout_us=0)),
                       repo / "sketchygan" / "1" / "model.onnx")
    return out



@pytest.fixture(scope="session")
def patient_server(patient_repo, tmp_path_factory):
    """A real tritonserver on the patient repository (no queue timeout): for tests that send many requests at once
    and must see each one answered by the model, however slow the machine (the default 500 ms queue timeout would
    refuse some of them on a slowed core, which is load shedding, not what those tests are about)."""
    cfg = ServerConfig(repository=patient_repo, grpc_port=free_port(), metrics_port=free_port())
    srv = TritonServer(cfg, log_path=tmp_path_factory.mktemp("patient-triton") / "server.log")
    srv.start()
    yield srv
    srv.stop()


def start_gateway(triton: str, log_path, *extra: str):
    """`python -m web` as a real process on a free loopback port, in front of `triton` (HOST:PORT), started."""
    from web.process import GatewayProcess
    return GatewayProcess(triton, free_port(), log_path, *extra).start()


@pytest.fixture(scope="session")
def gateway(server, tmp_path_factory):
    gw = start_gateway(server.grpc_url, tmp_path_factory.mktemp("gateway") / "gateway.log").wait(ready=False)
    yield gw
    gw.stop()
