"""Triton's response cache for the generator: (sketch, class, noise) -> image is a pure function, so a repeated
request is answered from the cache with identical bytes, and a request differing in any input never hits."""
import numpy as np
import pytest

from loadtest.triton_metrics import scrape
from serving.process import free_port
from serving.server import ServerConfig, TritonServer
from tests.e2e.conftest import wait_for

HITS, MISSES = "nv_cache_hit_summary_per_model_count", "nv_cache_miss_summary_per_model_count"


@pytest.fixture(scope="module")
def cached_server(exported, tmp_path_factory):
    _, repo, _ = exported
    cfg = ServerConfig(repository=repo, grpc_port=free_port(), metrics_port=free_port(), response_cache_bytes=4 << 20)
    with TritonServer(cfg, log_path=tmp_path_factory.mktemp("cache") / "server.log") as srv:
        yield srv


def _sketch(size: int, x: int) -> np.ndarray:
    sk = np.full((size, size), 255, np.uint8)
    sk[2:size - 2, x] = 0
    sk[size // 2, 2:size - 2] = 0
    return sk


def test_a_repeated_request_is_a_hit_with_identical_bytes_and_any_other_input_misses(cached_server):
    from sketchygan_client import SketchClient
    with SketchClient(cached_server.grpc_url, timeout_s=30) as c:
        size = c.resolution
        base = (_sketch(size, 5), 0, 7)
        def counts():
            m = scrape(cached_server.metrics_url)
            return {k: m.get(k, 0.0) for k in (HITS, MISSES)}

        def after(before, key):  # Triton publishes the cache counters a moment after the answer: wait for them
            return wait_for(lambda: (c := counts())[key] > before[key] and c, 30, f"{key} to grow")
        c0 = counts()
        first = c.generate_array(base[0], base[1], seed=base[2])
        c1 = after(c0, MISSES)
        assert c1[MISSES] == c0[MISSES] + 1 and c1[HITS] == c0[HITS]
        again = c.generate_array(base[0], base[1], seed=base[2])
        c2 = after(c1, HITS)
        assert c2[HITS] == c1[HITS] + 1 and c2[MISSES] == c1[MISSES]  # answered from the cache
        assert again.tobytes() == first.tobytes()
        others = [(_sketch(size, 9), 0, 7), (base[0], 1, 7), (base[0], 0, 8)]  # another sketch, class, noise
        for sk, cls, seed in others:
            before = counts()
            out = c.generate_array(sk, cls, seed=seed)
            now = after(before, MISSES)
            assert now[HITS] == before[HITS] and now[MISSES] == before[MISSES] + 1, (cls, seed)
            assert out.tobytes() != first.tobytes()


def test_a_server_without_a_cache_serves_the_same_model_uncached(server):
    """The exported config enables the cache for the model; a server started without one computes every call."""
    from sketchygan_client import SketchClient
    with SketchClient(server.grpc_url, timeout_s=30) as c:
        sk = _sketch(c.resolution, 5)
        a, b = c.generate_array(sk, 0, seed=3), c.generate_array(sk, 0, seed=3)
    assert a.tobytes() == b.tobytes()
    assert scrape(server.metrics_url).get(HITS, 0.0) == 0.0
