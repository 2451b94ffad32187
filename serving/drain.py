"""The graceful stop of a tritonserver (SIGTERM with a drain): every accepted request is answered, new ones are
refused with UNAVAILABLE, never NOT_FOUND. A barrier request held by the drain model (triton_repo/drain_model.py)
keeps Triton from unloading the generator while its work finishes; the server is ended as soon as its metrics show
the generator idle and settled. docs/reliability.md has the measurements behind each constant."""
from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

from serving.metrics import read_metrics_by_model, read_samples
from serving.process import describe_exit
from serving.server import TritonServer
from triton_repo.config import DRAIN_MODEL

log = logging.getLogger("sketchygan.supervisor")

# Triton logs this once per second while it stops; "Found 0" means nothing is in flight any more
DRAINED_MARK = b"Found 0 model versions that have in-flight inferences"
DRAIN_FLUSH_S = 0.02  # after the last request: lets the gRPC threads hand its response to the kernel
# a drain ends only once Triton's count of answered generator requests has not moved for this long: model.py's
# executing gauge drops when execute() returns, a moment before the backend hands the responses to Triton
DRAIN_SETTLE_S = 0.05
ANSWERED = ("nv_inference_request_success", "nv_inference_request_failure")
HELD_METRIC = "sketchygan_drain_barriers_held"
BARRIER_REQUESTS = 8  # 1 held + requests queued behind it (more than the scheduler hands to a busy instance)
# what is still accepted-but-unanswered: queued in Triton's scheduler, or inside model.py's execute() (the
# latter per model instance, so that a dead instance's count, stuck where it died, can be left out)
PENDING, EXECUTING = "nv_inference_pending_request_count", "sketchygan_executing_requests"


def hold_barrier(server: TritonServer, timeout_s: float = 2.0):
    """Have the drain-barrier model hold one request (triton_repo/drain_model.py) and wait until it does; returns
    the client that sent it, or None (then new requests may briefly see NOT_FOUND during the stop)."""
    if not (Path(server.config.repository) / DRAIN_MODEL / "config.pbtxt").is_file():
        log.warning("no %s model in the repository: new requests may briefly see NOT_FOUND while stopping",
                    DRAIN_MODEL)
        return None
    import numpy as np
    import tritonclient.grpc as grpcclient
    c = server.client()
    try:
        token = grpcclient.InferInput("TOKEN", [1, 1], "BYTES")
        token.set_data_from_numpy(np.array([[server.drain_token.encode()]], dtype=object))
        # the first request is held inside execute(). Triton counts as in flight only the requests still in
        # its scheduler's queue (not those executing or handed to a busy instance), so more wait behind it,
        # queued for as long as the server lives
        for _ in range(BARRIER_REQUESTS):
            c.async_infer(DRAIN_MODEL, [token], callback=lambda *_, **__: None)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and server.proc.poll() is None:  # a dying server holds nothing
            barrier = _gauges(server).get(DRAIN_MODEL, {})
            if barrier.get(HELD_METRIC, 0) >= 1 and barrier.get(PENDING, 0) >= BARRIER_REQUESTS - 1:
                return c
            time.sleep(0.005)
    except Exception as e:  # noqa: BLE001 — a drain must go on without its barrier
        log.warning("drain barrier failed (%s): new requests may briefly see NOT_FOUND while stopping", e)
    else:
        if server.proc.poll() is not None:
            log.warning("tritonserver exited as the drain began (%s)", describe_exit(server.proc.returncode))
        else:
            log.warning("drain barrier not held within %.0f s: new requests may briefly see NOT_FOUND", timeout_s)
    c.close()
    return None

def _gauges(server: TritonServer) -> dict[str, dict[str, float]]:
    """Triton's queue and execution gauges per model ({} while the endpoint cannot be read)."""
    try:
        return read_metrics_by_model(server.metrics_url, (PENDING, EXECUTING, HELD_METRIC), timeout_s=1)
    except OSError:
        return {}

def generator_progress(server: TritonServer, ignore_instances: set[str] = frozenset()
                       ) -> tuple[float | None, float | None]:
    """(generator requests queued or executing, generator requests Triton has answered so far) from one scrape;
    (None, None) if the metrics cannot be read. The drain model's queued barriers are not work, and neither
    are the counts of `ignore_instances`, dead processes whose count stays where they died."""
    try:
        samples = read_samples(server.metrics_url, (PENDING, EXECUTING, *ANSWERED), timeout_s=1)
    except OSError:
        return None, None
    mine = [(name, labels, v) for name, labels, v in samples if labels.get("model") not in (None, DRAIN_MODEL)]
    busy = sum(v for name, labels, v in mine
               if name == PENDING or (name == EXECUTING and labels.get("instance") not in ignore_instances))
    return busy, sum(v for name, _, v in mine if name in ANSWERED)


def drain(server: TritonServer, timeout_s: float, ignore_instances: set[str] = frozenset()) -> int | None:
    """Stop `server` gracefully: new requests are refused (UNAVAILABLE) while every accepted one is answered, then
    the process group ends; `ignore_instances` are dead model processes whose executing count is stuck. Returns
    the server's exit status (0 for a clean stop)."""
    proc = server.proc
    barrier = None
    if proc is None:
        return None
    if proc.poll() is None:
        offset = server.log_path.stat().st_size if server.log_path.exists() else 0
        t0 = time.monotonic()
        log.info("draining: not ready; finishing accepted requests, refusing new ones (UNAVAILABLE)")
        barrier = hold_barrier(server)
        proc.send_signal(signal.SIGTERM)  # the server only: it stops its model processes itself
        # Triton now answers new requests UNAVAILABLE and finishes the accepted ones. It checks once a second
        # whether any are left and then unloads the models, answering NOT_FOUND until it exits. The held barrier
        # keeps that check from passing; the server is ended as soon as its metrics show nothing queued or
        # executing in the generator twice in a row and no newly answered request for DRAIN_SETTLE_S (or,
        # without a barrier, when its log says nothing is left).
        idle_polls, answered, settled_at = 0, None, time.monotonic()
        while time.monotonic() - t0 < timeout_s and proc.poll() is None:
            if DRAINED_MARK in _read_from(server.log_path, offset):
                break
            busy, now_answered = generator_progress(server, ignore_instances)
            if now_answered != answered:
                answered, settled_at = now_answered, time.monotonic()
            idle_polls = idle_polls + 1 if busy == 0 else 0
            if idle_polls >= 2 and time.monotonic() - settled_at >= DRAIN_SETTLE_S:
                break
            time.sleep(0.01)
        else:
            if proc.poll() is None:
                log.warning("drain did not finish within %.0f s; stopping anyway", timeout_s)
        time.sleep(DRAIN_FLUSH_S)
        log.info("drained in %.2f s", time.monotonic() - t0)
    server.stop(timeout_s=0)  # nothing left in flight: end the process group, clean shared memory
    if barrier is not None:
        barrier.close()
    return 0 if proc.returncode in (0, -signal.SIGKILL) else proc.returncode


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read()
    except OSError:
        return b""
