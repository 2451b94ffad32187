"""The benchmark's load generator against the real server: both drivers agree with Triton's own counters, and the
CPU accounting sees the server's processes."""
import os
import time

import pytest

from loadtest.cpu import tree_cpu_seconds
from loadtest.loadgen import run_load
from serving.process import free_port
from serving.server import ServerConfig, TritonServer


@pytest.fixture(scope="module")
def patient_server(patient_repo, tmp_path_factory):
    """The test model without a queue timeout: a stall of the machine (these VMs can pause for over 0.5 s) then only
    delays requests instead of shedding them, so "no errors" does not depend on the machine's timing."""
    cfg = ServerConfig(repository=patient_repo, grpc_port=free_port(), metrics_port=free_port())
    with TritonServer(cfg, log_path=tmp_path_factory.mktemp("loadgen") / "server.log") as srv:
        yield srv


@pytest.mark.parametrize("driver", ["threads", "asyncio"])
def test_load_generator_counts_match_the_server_and_cpu_is_attributed(patient_server, driver):
    server = patient_server
    r = run_load(server.grpc_url, server.metrics_url, 4, seconds=2.0, warmup_s=0.5, driver=driver,
                 server_pid=server.proc.pid)
    s = r.summary()
    assert r.errors == 0 and r.requests > 0, r.error_kinds
    # requests the client saw complete inside the window vs requests Triton finished inside it: they differ by the
    # at most `concurrency` requests in flight at each edge, plus the few that finish during the metrics scrape
    assert abs(r.server["nv_inference_request_success"] - r.requests) <= 2 * 4 + 0.02 * r.requests, \
        (r.server, r.requests)
    assert s["avg_batch"] >= 1.0 and s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"]
    assert s["client_overhead_ms"] > 0  # the client's time includes Triton's request time
    # the stubs ran the model, so they used CPU; the load generator did too
    assert s["cores"]["triton_python_backend_stub"] > 0.05 and s["cores"]["loadgen"] > 0, s["cores"]
    assert set(s["cores"]) >= {"loadgen", "tritonserver", "triton_python_backend_stub"}


def test_tree_cpu_seconds_counts_this_process():
    t0 = time.process_time()
    before = sum(tree_cpu_seconds(os.getpid()).values())
    x = 0
    while time.process_time() - t0 < 0.3:
        x += 1
    after = sum(tree_cpu_seconds(os.getpid()).values())
    assert after - before >= 0.2


def test_bad_driver_and_arguments_are_refused(server):
    with pytest.raises(ValueError, match="unknown driver 'gevent'"):
        run_load(server.grpc_url, None, 2, 1.0, driver="gevent")
    with pytest.raises(ValueError, match="concurrency >= 1"):
        run_load(server.grpc_url, None, 0, 1.0)
