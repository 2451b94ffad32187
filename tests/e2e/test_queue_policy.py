"""No request refused below capacity, whatever its size (docs/reliability.md, "Batch callers"): closed loops of
callers sending 1..max_batch_size images per request with no timeout of their own, against `python -m serving` on
the shipped model, calibrated at start; and a request whose own compute is longer than its timeout allows, refused
by the server without computing and by the client before sending."""
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from loadtest.callers import Callers, raw_inputs
from loadtest.closed_loop import old_queue_share_s, summary
from loadtest.triton_metrics import by_label, rejected_requests, scrape
from tests.e2e.conftest import costed_server, ready_json, serve, stop_serving

CALLS = 48  # per kind: six rounds of the 8 callers


@pytest.fixture(scope="module")
def shipped(default_repo, tmp_path_factory):
    """`python -m serving` on the shipped model (its default queue policy, calibrated at start): (gRPC url, metrics
    url, the plan it serves)."""
    cwd = tmp_path_factory.mktemp("queue-policy")
    proc, lines, (g, m, h) = serve(default_repo, cwd, "--calibration-cache", str(cwd / "plan.json"))
    try:
        yield f"127.0.0.1:{g}", f"http://127.0.0.1:{m}/metrics", ready_json(h)[1]["serving"]
    finally:
        stop_serving(proc, lines)


def _loop(url: str, metrics_url: str, kind: str, max_batch: int, **kw) -> dict:
    """8 closed-loop callers of `kind`, 1..max_batch images per request, until CALLS calls have ended."""
    r0 = rejected_requests(metrics_url)
    t0 = time.monotonic()
    with Callers(url, 8, kind, deadline_s=kw.pop("deadline_s", None), sizes=(1, max_batch), **kw) as c:
        assert c.wait_ended(CALLS, timeout_s=900), f"{kind}: only {c.ended()} calls ended"
    return summary(c.records, time.monotonic() - t0, 0.0, rejected_requests(metrics_url) - r0)


def test_closed_loops_of_batches_that_name_no_timeout_are_never_refused(shipped):
    """8 raw tritonclient callers (no request timeout), then 8 threads of the sync client and 8 tasks of the asyncio
    client at their defaults (10 s deadline): every call answered and not one request refused by the server. The
    clients' loops again with the old per-image queue wait (reproduced on the same server by capping each request's
    wait at it: Triton applies the shorter of its default and the caller's timeout) are measured for the record:
    p50/p99 before and after are printed (docs/reliability.md has them). Not asserted: how much the old wait shed
    depends on the machine's speed (on a fast enough one, 8 callers' queue never waited that long)."""
    url, murl, plan = shipped
    with grpcclient.InferenceServerClient(url) as c:
        max_batch = int(c.get_model_config("sketchygan", as_json=True)["config"]["max_batch_size"])
    after = {kind: _loop(url, murl, kind, max_batch, deadline_s=120.0 if kind == "raw" else None)
             for kind in ("raw", "client", "async")}
    for kind, r in after.items():
        assert r["failed"] == 0, (kind, r)
        assert r["refused_by_server"] == 0, (kind, r)
    old = old_queue_share_s(plan)
    before = {kind: _loop(url, murl, kind, max_batch, max_queue_wait_s=old) for kind in ("client", "async")}
    print({"old_queue_wait_ms": round(1e3 * old), "after": after, "before": before})


@pytest.fixture(scope="module")
def costly_server(exported, tmp_path_factory):
    """The tiny model served with a made-up plan of 1 s per image and batches of 1 (compute reserve 2 s), so that
    a request's predicted compute is long whatever the machine (model.py follows the machine down to half the
    stated cost, never lower)."""
    _, repo, _ = exported
    srv = costed_server(repo, tmp_path_factory.mktemp("costly"), 1.0, batch_limit=1)
    yield srv
    srv.stop()


def _images(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (np.where(rng.random((n, 32, 32)) < 0.08, 0, 255).astype(np.uint8),
            (np.arange(n) % 4).astype(np.int32)[:, None], rng.standard_normal((n, 8)).astype(np.float32))


def test_a_request_longer_than_its_timeout_allows_is_refused_without_computing(costly_server):
    """16 images of (at least) 0.5 s each, with a 1 s timeout and the 2 s reserve: INVALID_ARGUMENT naming how many
    images would fit, nothing computed; the same request without a timeout, or of one image, is computed."""
    srv = costly_server
    over0 = by_label(srv.metrics_url, "sketchygan_requests_skipped", "reason").get("over_timeout", 0.0)
    images0 = scrape(srv.metrics_url).get("sketchygan_images_computed", 0.0)
    with grpcclient.InferenceServerClient(srv.grpc_url) as c:
        with pytest.raises(InferenceServerException) as e:
            c.infer("sketchygan", raw_inputs(*_images(16)), client_timeout=60, timeout=1_000_000)
        assert "INVALID_ARGUMENT" in str(e.value.status()), e.value
        msg = e.value.message()
        assert "16 images" in msg and "timeout of 1000 ms" in msg and "at most" in msg and "images per request" in msg
        one = c.infer("sketchygan", raw_inputs(*_images(1)), client_timeout=60, timeout=1_000_000)
        many = c.infer("sketchygan", raw_inputs(*_images(16)), client_timeout=120)  # no timeout: computed
    assert one.as_numpy("IMAGE").shape == (1, 32, 32, 3) and many.as_numpy("IMAGE").shape == (16, 32, 32, 3)
    assert by_label(srv.metrics_url, "sketchygan_requests_skipped", "reason")["over_timeout"] == over0 + 1
    assert scrape(srv.metrics_url)["sketchygan_images_computed"] == images0 + 17


def test_the_client_refuses_before_sending_a_call_its_deadline_cannot_cover(costly_server):
    """16 images at the published 1 s each cannot be answered within a 3 s deadline: the client says so at once,
    sends nothing, and a call that fits is sent and answered."""
    from sketchygan_client import SketchClient
    from sketchygan_client.errors import DeadlineExceeded
    srv = costly_server
    sk, _, _ = _images(16)
    with SketchClient(srv.grpc_url, timeout_s=3.0) as c:
        c.info  # noqa: B018 — the contract (and the published cost) first, outside the timed call
        before = scrape(srv.metrics_url)
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded) as e:
            c.generate_batch_array(list(sk), [0] * 16, seeds=list(range(16)))
        waited = time.monotonic() - t0
        assert "16 images take ~16000 ms" in str(e.value) and "at most 2 images" in str(e.value), e.value
        assert waited < 3.0, waited  # at once: not after the deadline
        assert scrape(srv.metrics_url).get("nv_inference_request_success", 0) == \
            before.get("nv_inference_request_success", 0)  # nothing was sent
        assert c.generate_batch_array(list(sk[:2]), [0, 1], seeds=[1, 2]).shape == (2, 32, 32, 3)


def test_an_open_loop_flood_without_deadlines_is_bounded_by_the_queue_and_refused_at_once(shipped):
    """One-image requests at four times the capacity measured just before with 16 patient callers (a full queue
    batches better than 16 callers do: twice that was still below what the server could do), open loop, no deadline
    and no timeout, for 6 s: the queue never holds more than its published bound (and the batches on their way to
    the instances), and what does not fit is refused
    at once (the median refusal far below the median answer). How long an admitted request waits is printed, not
    asserted: it is the queue bound over the rate the server keeps while it also receives and refuses the flood,
    which on a core shared with a busy loop fell to a fifth of its capacity (docs/reliability.md)."""
    from loadtest.flood import flood
    url, murl, plan = shipped
    with Callers(url, 16, fresh=True) as cap:
        time.sleep(1.0)
        t0 = time.monotonic()
        assert cap.wait_ended(cap.ended() + 200, timeout_s=300)
        capacity = sum(r.outcome == "OK" for r in cap.between(t0, time.monotonic())) / (time.monotonic() - t0)
    before = scrape(murl)
    r = flood(url, murl, 4 * capacity, 6.0).report(6.0)
    d = {k: scrape(murl).get(k, 0.0) - before.get(k, 0.0) for k in
         ("nv_inference_request_success", "nv_inference_request_duration_us", "nv_inference_queue_duration_us")}
    server_s = d["nv_inference_request_duration_us"] / 1e6 / max(1.0, d["nv_inference_request_success"])
    print({"capacity_rps": round(capacity, 1), "server_mean_s": round(server_s, 3), **r, **d})
    # Triton's pending count also holds the batches being handed to the instances (seen: the bound + 1)
    assert r["max_pending"] <= plan["max_queue_size"] + plan["instances"] * 32, r
    assert set(r["outcomes"]) <= {"OK", "UNAVAILABLE"}, r
    assert r["outcomes"].get("UNAVAILABLE", 0) > 0, r  # 4x capacity for 6 s is more than the queue holds ...
    assert r["refused_ms"]["p50"] * 10 < r["answered_ms"]["p50"], r  # ... refused early, not after waiting
