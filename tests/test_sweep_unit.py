"""Pure parts of the serving benchmark: config choice, Locust cells, CLI validation."""
import argparse

import pytest

from loadtest.__main__ import sweep_config
from loadtest.locust_runner import LocustSummary, cell
from loadtest.sweep import choose_config


def _pt(rps, p95):
    return {"throughput_rps": rps, "p95_ms": p95}


def test_choose_config_takes_lowest_p95_among_throughput_ties_at_every_concurrency():
    grid = {"a": [_pt(90, 40), _pt(100, 200)],
            "b": [_pt(88, 45), _pt(97, 150)],   # within 5 % of the best at both points: a tie, lower p95 wins
            "c": [_pt(60, 30), _pt(99, 50)],    # ties at high load but is slow at low load
            "d": [_pt(50, 30), _pt(80, 50)]}    # slower everywhere
    assert choose_config(grid) == "b"
    assert choose_config(grid, tie=0.01) == "a"


def test_choose_config_without_ties_takes_best_relative_throughput():
    grid = {"a": [_pt(100, 40), _pt(50, 200)], "b": [_pt(50, 40), _pt(100, 200)], "c": [_pt(90, 1), _pt(90, 1)]}
    assert choose_config(grid, tie=0.0) == "c"


def test_locust_na_cells_become_nan():
    assert cell("N/A") != cell("N/A")
    assert cell("12.5") == 12.5
    row = {"Request Count": "3", "Failure Count": "0", "Requests/s": "1.5", "50%": "N/A", "95%": "N/A", "99%": "7"}
    s = LocustSummary.from_row(row)
    assert (s.requests, s.failures, s.rps, s.p99_ms) == (3, 0, 1.5, 7.0) and s.p50_ms != s.p50_ms


@pytest.mark.parametrize("field, value, message", [
    ("concurrency", "1,x", "comma-separated positive integers"), ("concurrency", "0,4", "positive"),
    ("seconds", 1.0, ">= 2"), ("rounds", 0, ">= 1"), ("repository", "/nonexistent", "no exported sketchygan/1/model.onnx"),
])
def test_sweep_cli_rejects_bad_arguments(field, value, message):
    args = argparse.Namespace(concurrency="1,4", seconds=8.0, rounds=2,
                              repository="model_repository", out="x")
    setattr(args, field, value)
    with pytest.raises(ValueError, match=message):
        sweep_config(args)


def test_pooled_load_results_add_up_windows():
    from loadtest.loadgen import LoadResult
    a = LoadResult(4, 10, 0, 2.0, [10.0] * 10, {"nv_inference_count": 10, "nv_inference_exec_count": 5},
                   {"loadgen": 0.2})
    b = LoadResult(4, 30, 1, 2.0, [30.0] * 30, {"nv_inference_count": 31, "nv_inference_exec_count": 5},
                   {"loadgen": 0.6})
    s = LoadResult.pooled([a, b]).summary()
    assert s["requests"] == 40 and s["errors"] == 1 and s["throughput_rps"] == 10.0
    assert s["avg_batch"] == 4.1 and s["cores"]["loadgen"] == 0.2 and s["p50_ms"] == 30.0
    with pytest.raises(ValueError, match="same concurrency"):
        LoadResult.pooled([a, LoadResult(8, 1, 0, 1.0)])
