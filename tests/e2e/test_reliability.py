"""Faults against a real supervised tritonserver: stub death, server crash, crash loop, SIGTERM drain, overload.

Every test waits on conditions (supervisor events, Triton's metrics, process states), never on a sleep that races
the machine. Callers are the project's client with its default settings unless a test says otherwise.
"""
import logging
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from loadtest.callers import Callers, raw_inputs
from loadtest.chaos import Chaos, ChaosConfig
from loadtest.cpu import busy_loops, condition, pinned_process
from loadtest.triton_metrics import scrape
from serving.process import free_port
from serving.server import ServerConfig, leftover_shm
from serving.stubs import stubs_of
from serving.supervisor import Supervisor, SupervisorConfig
from sketchygan_client import SketchClient
from tests.e2e.conftest import gone as _gone
from tests.e2e.conftest import serve
from tests.e2e.conftest import wait_for as _wait

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _oks(calls: Callers) -> int:
    return sum(r.outcome == "OK" for r in calls.records)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture(scope="session")
def plans(tmp_path_factory):
    """Where the supervised servers of this session store their plans, one file per CPU condition: a stored plan is
    served at once by the next start on the same machine facts, and the conditions differ in speed, not in facts."""
    return tmp_path_factory.mktemp("plans")


@pytest.fixture
def supervised(exported, tmp_path, request, plans):
    """A supervised server on the tiny model, calibrated at start like `python -m serving`, in the CPU condition
    named by an indirect parameter (default unpinned; shared-core: its core shared with two busy loops started
    before it, and this process on the other core)."""
    _, repo, _ = exported
    cond = condition(getattr(request, "param", "unpinned"))
    with busy_loops(cond.busy_loops, cond.server_cpus), pinned_process(cond.load_cpus):
        pin = {"cpus": cond.server_cpus} if cond.server_cpus else {}  # unpinned: the default (SKETCHYGAN_SERVER_CPUS)
        cfg = ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port(), **pin)
        sup = Supervisor(cfg, SupervisorConfig(health_port=free_port(), calibration_cache=plans / f"{cond.name}.json"),
                         log_path=tmp_path / "triton.log").start()
        try:
            yield sup
        finally:
            sup.stop()


class ReadinessWatch:
    """Polls the model's readiness in a tight loop and remembers every value it saw."""

    def __init__(self, url: str) -> None:
        self.seen: list[bool] = []
        self._stop = threading.Event()
        self._url = url
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        c = grpcclient.InferenceServerClient(self._url)
        while not self._stop.is_set():
            try:
                self.seen.append(bool(c.is_model_ready("sketchygan", client_timeout=2)))
            except InferenceServerException:
                self.seen.append(False)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(10)


def _generator_stubs(sup):
    return [s for s in sup.stubs() if s.model == "sketchygan"]


@pytest.mark.parametrize("supervised", ["unpinned", "shared-core"], indirect=True)
def test_stub_sigkill_under_load_is_invisible_to_callers_and_the_stub_is_replaced(supervised, caplog):
    """A model process killed under load: the server is drained and restarted with fresh model processes. When the
    stub died inside a call to the server, Triton 2.51 may abort on its own first (lock_exception): then the same
    restart is recorded as the server's crash. Either way: one restart, no caller sees a failure; also on a slowed
    server (shared-core)."""
    caplog.set_level(logging.INFO, logger="sketchygan.supervisor")
    sup = supervised
    before = sup.stubs()
    old_server = sup.server.pid
    instances = sup.plan.instances
    assert len(_generator_stubs(sup)) == instances  # as many model processes as the calibration chose
    with (Callers(sup.server.grpc_url, 6, resolution=32, noise_dim=8) as calls,
          ReadinessWatch(sup.server.grpc_url) as rw):
        _wait(lambda: _oks(calls) >= 20, what="load to be flowing")
        os.kill(_generator_stubs(sup)[-1].pid, signal.SIGKILL)
        _wait(lambda: sup.events and sup.ready, what="the supervisor to restart the server")
        n = _oks(calls)
        _wait(lambda: _oks(calls) >= n + 50, what="load to flow again after the restart")
    assert [r.outcome for r in calls.records if r.outcome != "OK"] == []  # zero client-visible failures
    assert sup.server.pid != old_server
    after = sup.stubs()
    assert len(_generator_stubs(sup)) == instances and not {s.pid for s in after} & {s.pid for s in before}
    assert {s.instance for s in after} == {s.instance for s in before}  # every model instance back, fresh
    assert not any(_gone(s.pid) for s in after) and all(_gone(s.pid) for s in before)
    assert False in rw.seen and rw.seen[-1] is True  # readiness told the truth during the restart, then recovered
    [(kind, cause)] = [(e["kind"], e["cause"]) for e in sup.events]  # exactly one restart
    if kind == "server":  # Triton aborted before the supervisor saw the dead stub: its log says why
        assert cause == "killed by SIGABRT", cause
        assert "lock_exception" in sup.server.log_path.read_text(errors="replace")
    else:
        assert (kind, cause) == ("stub", "model process exited")
        # the drain left the dead process's executing count (stuck where it died) out instead of waiting it out
        assert "drain did not finish" not in caplog.text and "drained in" in caplog.text
    code, text = _get(f"http://127.0.0.1:{sup.config.health_port}/metrics")
    assert code == 200
    assert re.search(rf'sketchygan_supervisor_restarts_total\{{cause="{cause}",component="{kind}"\}} 1\.0', text), text
    assert _get(f"http://127.0.0.1:{sup.config.health_port}/ready")[0] == 200


def test_stopped_stub_counts_as_dead_and_is_replaced(supervised):
    sup = supervised
    victim = _generator_stubs(sup)[0]
    os.kill(victim.pid, signal.SIGSTOP)  # wedged: alive but never answers
    _wait(lambda: sup.events and sup.ready, what="the supervisor to replace the stopped stub")
    assert "stopped" in sup.events[0]["cause"]
    assert victim.pid not in {s.pid for s in sup.stubs()}
    _wait(lambda: _gone(victim.pid), 10, "the stopped stub to be gone")
    # both new instances answer (through the client, which retries a request its queue timeout shed: on a slowed
    # core the fresh instances' first calls may outlast the calibrated queue timeout, which is load shedding, not
    # what this test is about)
    with SketchClient(sup.server.grpc_url, timeout_s=30) as c:
        for k in range(8):
            assert c.generate_array(np.full((32, 32), 255, np.uint8), 0, seed=k).shape == (32, 32, 3)


def test_server_sigkill_under_load_restarts_it_with_zero_client_failures(supervised):
    sup = supervised
    old_pid = sup.server.pid
    with Callers(sup.server.grpc_url, 6, resolution=32, noise_dim=8) as calls:
        _wait(lambda: _oks(calls) >= 20, what="load to be flowing")
        os.kill(old_pid, signal.SIGKILL)
        _wait(lambda: sup.events and sup.ready, what="the supervisor to restart tritonserver")
        n = _oks(calls)
        _wait(lambda: _oks(calls) >= n + 50, what="load to flow again after the restart")
    assert [r.outcome for r in calls.records if r.outcome != "OK"] == []
    assert sup.server.pid != old_pid and psutil.pid_exists(sup.server.pid)
    assert sup.events[0]["kind"] == "server" and sup.events[0]["cause"] == "killed by SIGKILL"
    _, text = _get(f"http://127.0.0.1:{sup.config.health_port}/metrics")
    assert 'component="server"} 1.0' in text


def test_async_client_rides_through_a_server_restart(supervised):
    """The asyncio client retries like the blocking one: a SIGKILLed server, restarted by the supervisor, costs
    its callers time but no failures."""
    import asyncio

    from sketchygan_client import AsyncSketchClient
    sup = supervised
    sk = np.full((32, 32), 255, np.uint8)
    outcomes: list[str] = []
    killed = threading.Event()

    async def caller(ac, k: int) -> None:
        for i in range(40):
            try:
                await ac.generate_array(sk, k % 4, seed=i)
                outcomes.append("OK")
            except Exception as e:  # noqa: BLE001 — the assertion below names it
                outcomes.append(type(e).__name__)
            if len(outcomes) >= 10 and not killed.is_set():
                killed.set()
                os.kill(sup.server.pid, signal.SIGKILL)

    async def main() -> None:
        async with AsyncSketchClient(sup.server.grpc_url) as ac:
            await asyncio.gather(*[caller(ac, k) for k in range(3)])

    asyncio.run(main())
    assert killed.is_set()
    _wait(lambda: sup.events, what="the supervisor to record the restart")  # it may lag the first answers
    assert sup.events[0]["kind"] == "server"
    assert outcomes == ["OK"] * 120, [o for o in outcomes if o != "OK"]


def test_crash_loop_gives_up_with_a_clear_message(exported, tmp_path):
    _, repo, _ = exported
    cfg = ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port())
    sup = Supervisor(cfg, SupervisorConfig(crash_loop_restarts=1, backoff_s=0.05, health_port=free_port()),
                     log_path=tmp_path / "triton.log").start()
    try:
        os.kill(sup.server.pid, signal.SIGKILL)
        _wait(lambda: sup.events and sup.ready, what="the first restart")
        os.kill(sup.server.pid, signal.SIGKILL)
        _wait(lambda: sup.failed, what="the supervisor to give up")
        assert "failed 2 times within 60 s (last: killed by SIGKILL)" in sup.failed and "giving up" in sup.failed
        assert _get(f"http://127.0.0.1:{sup.config.health_port}/live")[0] == 503
        assert _get(f"http://127.0.0.1:{sup.config.health_port}/ready")[0] == 503
    finally:
        sup.stop()


def test_sigterm_under_load_finishes_accepted_work_and_answers_only_unavailable(patient_repo, tmp_path):
    """`python -m serving` + SIGTERM: queued requests complete, new ones get UNAVAILABLE (never NOT_FOUND or
    INTERNAL), exit 0 within 15 s, nothing left behind."""
    repo = patient_repo
    shm_before = set(leftover_shm())
    # the patient repository's own config: no queue timeout
    proc, lines, (grpc_port, metrics_port, _) = serve(repo, tmp_path, "--calibrate", "off")
    url = f"127.0.0.1:{grpc_port}"
    try:
        stubs = [s for s in stubs_of(proc.pid) if s.model == "sketchygan"]
        assert len(stubs) == 2
        # accepted work that cannot finish yet: freeze the model processes, queue requests, see them queued
        for s in stubs:
            os.kill(s.pid, signal.SIGSTOP)
        results: list = []
        c = grpcclient.InferenceServerClient(url)
        sk, cid, z = np.full((1, 32, 32), 255, np.uint8), np.zeros((1, 1), np.int32), np.zeros((1, 8), np.float32)
        # 2 frozen instances take at most 2 x max_batch_size (16) requests; the rest must wait in Triton's queue
        for _ in range(40):
            c.async_infer("sketchygan", raw_inputs(sk, cid, z), lambda result, error: results.append(error),
                          client_timeout=60)
        _wait(lambda: scrape(f"http://127.0.0.1:{metrics_port}/metrics").get("nv_inference_pending_request_count", 0)
              >= 1, what="requests to be queued")
        with Callers(url, 4, "raw", resolution=32, noise_dim=8, pause_after_error_s=0.005) as raw:
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _wait(lambda: any("draining" in l or "stopping" in l for l in lines), what="the drain to start")
            for s in stubs:
                os.kill(s.pid, signal.SIGCONT)
            rc = proc.wait(30)
            took = time.monotonic() - t0
        _wait(lambda: len(results) == 40, what="the accepted requests' answers")
        c.close()
    finally:
        if proc.poll() is None:  # a failed test must not leave a server (it runs in its own session) behind
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()
    out = "".join(lines)
    assert rc == 0 and "stopped" in out, out
    # the drain ended because nothing was left, not at its timeout (a condition, not a time: `took` is only shown)
    assert "drained in" in out and "did not finish" not in out, (took, out)
    # every request accepted before SIGTERM completed (the message of any that did not, for the log)
    assert results == [None] * 40, [(i, str(r)) for i, r in enumerate(results) if r is not None]
    seen = {r.outcome for r in raw.records}
    assert seen <= {"OK", "UNAVAILABLE"}, seen  # never NOT_FOUND or INTERNAL
    assert "UNAVAILABLE" in seen  # new requests were refused while it drained or after it stopped
    assert all(_gone(s.pid) for s in stubs)
    assert set(leftover_shm()) <= shm_before


@pytest.mark.parametrize("cond", ["own-core", "shared-core"])
def test_overload_with_short_deadlines_keeps_goodput_near_capacity_at_any_speed(default_repo, tmp_path, cond):
    """128 callers with 0.5 s deadlines against the shipped model, calibrated at start: first the project's client,
    then plain tritonclient callers that retry at once and send their deadline as docs/reliability.md tells a plain
    caller to (a request timeout: the deadline less the published compute reserve; one that sends none is patient
    by the server's policy since 2026-12-06, and FIFO serves it after its caller gave up: `make chaos` measures it).
    Every bound is relative to the capacity measured just before in the same condition (16 patient callers), so it
    holds on a fast machine, a 3x slower one, and a server whose core is shared with busy loops (shared-core). The
    callers run on the other core: with 128 of them on the server's cores (unpinned) the load generator's own CPU
    (Python threads behind one GIL, eating the 0.5 s deadlines while they wait for it) takes what the capacity
    phase's 16 callers left to the server, so the ratio measured the machine's client/server CPU split, not the
    server (0.45-0.52 on a 2-core AVX2 EPYC, 1.05 on an AVX-512 one; `make chaos` still reports unpinned). Today's
    fixed defaults kept 0.00-0.08 of capacity on a slow machine; `make chaos` records the figures against the targets
    (0.7 / 0.5) in docs/reliability.md, these bounds are regression guards below them."""
    chaos = Chaos(ChaosConfig(repository=default_repo, faults=("overload",), capacity_s=3.0, overload_s=5.0,
                              log_dir=tmp_path, condition=cond))
    chaos.start()
    try:
        _, o = chaos.overload((64, 64))
        assert scrape(chaos.sup.server.metrics_url)["nv_inference_pending_request_count"] == 0  # nothing left queued
        with grpcclient.InferenceServerClient(chaos.url) as c:
            assert c.is_model_ready("sketchygan")
    finally:
        chaos.stop()
    for kind, floor in (("client", 0.5), ("plain", 0.35)):
        k = o[kind]
        assert k["goodput_over_capacity"] is not None and k["goodput_over_capacity"] >= floor, (kind, o)
        assert k["computed_for_nobody"] is not None and k["computed_for_nobody"] <= 0.15, (kind, o)
        # a call 2 s after the load stopped is served like one on the idle server
        assert k["latency_2s_after_ms"] <= max(3 * o["idle_latency_ms"], o["idle_latency_ms"] + 20), (kind, o)
    assert o["plain"]["outcomes"].get("UNAVAILABLE", 0) > 0, o  # load was shed by refusing, not by timing out
