"""The gateway when tritonserver fails it: 503 while tritonserver is away and recovery when it is back, a request whose
client leaves is cancelled and never computed, 504 at the deadline; a real gateway process in front of a real server."""
import http.client
import os
import re
import signal
import time

import pytest

from serving.process import free_port
from serving.server import ServerConfig, TritonServer
from serving.stubs import stubs_of
from tests.e2e.conftest import counted, start_gateway, wait_for
from tests.e2e.test_web import _png, call, error_of


@pytest.mark.slow
def test_503_while_tritonserver_is_away_and_recovery_when_it_is_back(exported, tmp_path):
    """Gateway first, tritonserver later: 503 + Retry-After (JSON) before it starts, 200 once it is ready, 503 again
    after it stops, with the gateway process alive throughout."""
    _, repo, _ = exported
    cfg = ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port())
    gw = start_gateway(f"127.0.0.1:{cfg.grpc_port}", tmp_path / "gateway.log").wait(ready=False)
    srv = None
    try:
        for method, path in (("GET", "/healthz"), ("GET", "/v1/classes"), ("POST", "/v1/generate?class=0")):
            answer = call(gw.url, method, path, _png() if method == "POST" else None)
            assert answer[0] == 503 and answer[1]["retry-after"] == "2", (path, answer[2][:300])
            assert re.search(r"unreachable|unavailable", error_of(answer)), error_of(answer)
        srv = TritonServer(cfg, log_path=tmp_path / "triton.log").start()
        deadline = time.monotonic() + 30
        while call(gw.url, "GET", "/healthz")[0] != 200:  # the channel reconnects on its own backoff
            assert time.monotonic() < deadline, "gateway never saw the model ready"
            time.sleep(0.2)
        assert call(gw.url, "POST", "/v1/generate?class=0&seed=1", _png())[0] == 200
        srv.stop()
        srv = None
        t0 = time.monotonic()
        answer = call(gw.url, "POST", "/v1/generate?class=0&seed=1", _png())
        assert answer[0] == 503 and answer[1]["retry-after"] == "2", answer[2][:300]
        assert time.monotonic() - t0 < 2 * 10  # no hang: retries end at the gateway's 10 s deadline (2x: any machine)
        assert call(gw.url, "GET", "/healthz")[0] == 503
        assert gw.proc.poll() is None
    finally:
        if srv is not None:
            srv.stop()
        log = gw.stop()
    assert "Traceback" not in log, log


HOLD_S = 15  # the holding repository's queue delay: how long tritonserver keeps a lone request queued


@pytest.fixture(scope="module")
def holding_repo(exported, tmp_path_factory):
    """The test model with a long queue delay and a batch of 16 preferred: tritonserver holds what arrives in its
    queue for HOLD_S seconds, so a test can see requests queued without freezing anything."""
    from triton_repo.config_reader import contract_from_config, parse_config
    from triton_repo.folders import write_model_folder
    from triton_repo.serving_config import Limits, ServingConfig
    _, repo, _ = exported
    contract = contract_from_config(parse_config((repo / "sketchygan" / "config.pbtxt").read_text()))
    out = tmp_path_factory.mktemp("holding")
    write_model_folder(out, "cpu", contract,
                       ServingConfig(max_batch_size=16, preferred_batch_sizes=(16,), max_queue_delay_us=HOLD_S * 10**6,
                                     limits=Limits("onnxruntime", queue_timeout_us=0)),
                       repo / "sketchygan" / "1" / "model.onnx")
    return out


@pytest.mark.slow
def test_a_request_whose_client_leaves_is_cancelled_and_never_computed(holding_repo, tmp_path):
    """What the page does when the pen lifts (it aborts the mid-stroke update): the gateway sees its client leave,
    counts a 499 and cancels its tritonserver call, and tritonserver drops the cancelled requests from its queue
    instead of computing them. Without the cancellation they would be computed when the queue delay ends."""
    from loadtest.triton_metrics import delta, scrape
    cfg = ServerConfig(repository=holding_repo, grpc_port=free_port(), metrics_port=free_port())
    srv = TritonServer(cfg, log_path=tmp_path / "triton.log").start()
    gw = start_gateway(srv.grpc_url, tmp_path / "gateway.log").wait(ready=False)
    conns = []
    try:
        assert call(gw.url, "GET", "/v1/classes")[0] == 200  # the gateway has read the model's contract
        before = scrape(srv.metrics_url)
        host, port = gw.url.removeprefix("http://").split(":")
        for i in range(3):
            c = http.client.HTTPConnection(host, int(port), timeout=60)
            c.request("POST", f"/v1/generate?class=0&seed={10 + i}", _png(seed=i), {"content-type": "image/png"})
            conns.append(c)
        wait_for(lambda: scrape(srv.metrics_url).get("nv_inference_pending_request_count", 0) >= 3, HOLD_S / 2,
                 "the three requests in tritonserver's queue")
        for c in conns:
            c.close()  # the clients leave
        gone_count = re.compile(r'sketchygan_gateway_requests_total\{route="/v1/generate",status="499"\} (\d+)')
        wait_for(lambda: (m := gone_count.search(call(gw.url, "GET", "/metrics")[2].decode())) and
                 int(m.group(1)) == 3, 60, "three 499s counted by the gateway")
        counted(srv.metrics_url, before, "nv_inference_request_failure", 3, timeout_s=HOLD_S + 60)  # dropped
        d = delta(before, scrape(srv.metrics_url))
        assert d.get("sketchygan_images_computed", 0) == 0 and d.get("nv_inference_request_success", 0) == 0, d
    finally:
        for c in conns:
            c.close()
        gw.stop()
        srv.stop()


@pytest.mark.slow
def test_504_when_the_model_does_not_answer_within_the_deadline(patient_repo, tmp_path):
    """Frozen model processes (SIGSTOP): the call cannot finish, the gateway answers 504 at its 2 s deadline."""
    cfg = ServerConfig(repository=patient_repo, grpc_port=free_port(), metrics_port=free_port())
    srv = TritonServer(cfg, log_path=tmp_path / "triton.log").start()
    gw = start_gateway(srv.grpc_url, tmp_path / "gateway.log", "--timeout", "2").wait(ready=False)
    stubs = []
    try:
        assert call(gw.url, "POST", "/v1/generate?class=0&seed=1", _png())[0] == 200
        stubs = stubs_of(srv.proc.pid)
        assert stubs
        for s in stubs:
            os.kill(s.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        answer = call(gw.url, "POST", "/v1/generate?class=0&seed=1", _png())
        assert answer[0] == 504, answer[2][:300]
        assert "within 2 s" in error_of(answer)
        assert time.monotonic() - t0 < 4 * 2  # no hang: the answer comes at the 2 s deadline (4x: any machine)
    finally:
        for s in stubs:
            os.kill(s.pid, signal.SIGCONT)
        gw.stop()
        # the model that was frozen mid-call never finishes unloading: tritonserver would wait out its 30 s exit
        # timeout before the SIGKILL this sends sooner (this test is about the 504, not the drain)
        srv.stop(timeout_s=5)


def test_gateway_benchmark_counts_every_page_image_in_tritons_executions(gateway, server):
    """`python -m loadtest gateway` (make bench-web) on a small budget: its figures come from real answers and
    Triton's own counters: 3 Generates are 12 images each way, in 3 to 6 executions as the page sends them (one call,
    computed as one batch per model instance: 2) and in 3 to 12 as 4 parallel calls."""
    from loadtest.gateway import GatewayBenchConfig, measure_gateway
    r = measure_gateway(server.grpc_url, server.metrics_url, gateway.url,
                        GatewayBenchConfig(requests=5, rounds=1, page_generates=3))
    assert r["page_images"] == 12 and 3 <= r["page_executions"] <= 6 and r["page_mean_batch"] >= 2.0
    assert r["page_4_requests_images"] == 12 and 3 <= r["page_4_requests_executions"] <= 12
    assert r["direct_p50_ms"] > 0 and r["gateway_p50_ms"] > 0 and r["page_4_requests_mean_batch"] >= 1.0
