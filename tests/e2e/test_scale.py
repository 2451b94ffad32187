"""Scale-out with real replicas (`python -m serving` processes) on loopback: the client's one target spreads calls
over every replica and survives a replica's SIGKILL and a rolling restart; HAProxy does the same for plain
tritonclient callers. Shares and failures are counted from the replicas' own Triton metrics and the callers'
records; every wait is on a condition. The replicas serve the patient repository (no queue timeout): these tests are
about where calls go, and a one-replica pool that sheds a call after a pause of the machine longer than the default
500 ms queue timeout is load shedding (tested in test_reliability), not a routing failure."""
import threading
import time

import pytest

from loadtest.callers import Callers
from loadtest.replicas import ReplicaProcess, client_target, served
from serving.process import free_port
from serving.proxy import Proxy, ProxyConfig, Replica
from tests.e2e.conftest import gone, wait_for

pytestmark = pytest.mark.slow
SERVING = ("--calibrate", "off", "--response-cache-mb", "0", "--drain-grace", "1.0")


@pytest.fixture(scope="module")
def replicas(patient_repo, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("replicas")
    reps = [ReplicaProcess(patient_repo, log_dir, extra=SERVING) for _ in range(3)]
    try:
        for r in reps:
            r.start()
        for r in reps:
            r.wait_ready()
        yield reps
    finally:
        for r in reps:
            r.kill()


def _ensure_up(reps):
    for r in reps:
        if r.proc is None:
            wait_for(r.ports_free, 30, f"{r.grpc}'s ports to be free")
            r.start()
    for r in reps:
        r.wait_ready()


def _counted(reps, callers: Callers, calls: int, timeout_s: float = 120.0) -> dict[str, float]:
    """Per-replica successful requests while `callers` make `calls` more successful calls."""
    before = served(reps)
    ok = lambda: sum(r.outcome == "OK" for r in callers.between(0, float("inf")))  # noqa: E731
    n0 = ok()
    wait_for(lambda: ok() >= n0 + calls, timeout_s, f"{calls} successful calls")
    after = served(reps)
    return {k: after[k] - before[k] for k in after}


def _assert_spread(counts: dict[str, float]) -> None:
    total = sum(counts.values())
    shares = {k: v / total for k, v in counts.items()}
    assert all(0.20 <= s <= 0.47 for s in shares.values()), shares


def test_one_client_target_spreads_calls_over_every_replica(replicas):
    _ensure_up(replicas)
    with Callers(client_target(replicas), 8) as callers:
        wait_for(lambda: all(v > 0 for v in served(replicas).values()), 60, "every replica to serve a call")
        _assert_spread(_counted(replicas, callers, 240))
        assert all(r.outcome == "OK" for r in callers.between(0, float("inf")))


def test_sigkill_of_a_replica_and_a_rolling_restart_cost_the_callers_nothing(replicas):
    _ensure_up(replicas)
    victim, rolled, third = replicas
    with Callers(client_target(replicas), 8) as callers:
        wait_for(lambda: all(v > 0 for v in served(replicas).values()), 60, "every replica to serve a call")
        tree = victim.pids()
        victim.kill()  # the whole process group: supervisor, tritonserver, model processes
        wait_for(lambda: all(gone(p) for p in tree), 10, "the killed replica's processes to end")
        counts = _counted([rolled, third], callers, 120)
        assert counts[rolled.grpc] > 0 and counts[third.grpc] > 0
        # rolling restart of another: SIGTERM drains it, then it starts again on the same ports
        assert rolled.terminate() == 0
        wait_for(rolled.ports_free, 30, "the drained replica's ports to be free")
        rolled.start().wait_ready()
        wait_for(lambda: served([rolled])[rolled.grpc] > 0, 60, "the restarted replica to serve again")
        # the killed one comes back too, and gets traffic again
        victim.start().wait_ready()
        wait_for(lambda: served([victim])[victim.grpc] > 0, 15, "the killed replica, back, to serve")
        records = callers.between(0, float("inf"))
    failures = [r.detail for r in records if r.outcome != "OK"]
    assert len(records) > 200 and not failures, (len(records), failures[:5])


@pytest.fixture()
def proxy(replicas, tmp_path):
    _ensure_up(replicas)
    cfg = ProxyConfig(tuple(Replica.parse(r.proxy_spec) for r in replicas), port=free_port(),
                      stats_port=free_port(), run_dir=tmp_path)
    with Proxy(cfg) as p:
        wait_for(lambda: all(s["status"] == "UP" for s in p.servers().values()), 30, "every replica UP in HAProxy")
        yield p


def _raw_callers(url: str, replicas) -> Callers:
    """Plain tritonclient callers (one connection each, no retries), sending inputs of the served model's shape."""
    from sketchygan_client import SketchClient
    with SketchClient(replicas[0].grpc) as c:
        info = c.info
    return Callers(url, 8, kind="raw", resolution=info.resolution, noise_dim=info.noise_dim)


def test_the_proxy_spreads_plain_tritonclient_calls_and_skips_a_dead_or_draining_replica(replicas, proxy):
    victim, drained, third = replicas
    with _raw_callers(proxy.cfg.url, replicas) as callers:  # plain tritonclient: one connection, no retries
        _assert_spread(_counted(replicas, callers, 240))
        # a draining replica: /ready turns 503 at once, it keeps serving for the grace period, HAProxy moves away
        n0 = len(callers.between(0, float("inf")))
        stopping = threading.Thread(target=drained.terminate)
        stopping.start()
        wait_for(lambda: proxy.servers()[drained.grpc]["status"].startswith("DOWN"), 10, "HAProxy to mark it DOWN")
        stopping.join(60)
        counts = _counted([victim, third], callers, 120)
        assert counts[victim.grpc] > 0 and counts[third.grpc] > 0
        drain_window = callers.between(0, float("inf"))[n0:]
        assert all(r.outcome == "OK" for r in drain_window), [r.detail for r in drain_window if r.outcome != "OK"]
        # a dead replica: SIGKILL; a call in flight on it is lost to a caller without retries (at most one per
        # caller), every later one is sent elsewhere
        t_kill = time.monotonic()
        victim.kill()
        wait_for(lambda: proxy.servers()[victim.grpc]["status"].startswith("DOWN"), 10, "HAProxy to mark it DOWN")
        t_down = time.monotonic()
        wait_for(lambda: len(callers.between(t_down + 0.5, float("inf"))) >= 100, 120, "100 calls after it is DOWN")
        lost = [r for r in callers.between(t_kill, float("inf")) if r.outcome != "OK"]
        assert len(lost) <= 8, [r.detail for r in lost]
        after = [r for r in callers.between(t_down + 0.5, float("inf"))]
        assert after and all(r.outcome == "OK" for r in after), [r.detail for r in after if r.outcome != "OK"]


def test_the_project_client_through_the_proxy_loses_nothing_when_a_replica_dies(replicas, proxy):
    victim = replicas[2]
    with Callers(proxy.cfg.url, 8) as callers:
        _counted(replicas, callers, 60)
        victim.kill()
        wait_for(lambda: proxy.servers()[victim.grpc]["status"].startswith("DOWN"), 10, "HAProxy to mark it DOWN")
        _counted(replicas[:2], callers, 120)
        records = callers.between(0, float("inf"))
    failed = [r.detail for r in records if r.outcome != "OK"]
    assert not failed, (f"{len(failed)} of {len(records)} calls failed", failed[:5])
