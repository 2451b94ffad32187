"""Pure parts of the serving benchmark: config choice, Locust cells, CLI validation."""
import argparse

import pytest

from loadtest.__main__ import sweep_config
from loadtest.locust_runner import LocustSummary, cell
from loadtest.sweep import choose_config


def _pt(rps, p50):
    return {"throughput_rps": rps, "p50_ms": p50}


def test_choose_config_takes_the_most_throughput_at_high_load_without_slowing_a_lone_caller():
    grid = {"ref": [_pt(150, 6.0), _pt(300, 50)],
            "fast_but_slow_alone": [_pt(100, 9.0), _pt(600, 30)],  # a batching delay a lone caller waits out
            "a": [_pt(200, 5.0), _pt(470, 35)],
            "b": [_pt(170, 5.8), _pt(480, 33)]}
    assert choose_config(grid, "ref") == "a"  # within 5 % of b at high load, and faster alone
    assert choose_config(grid, "ref", tie=0.0) == "b"


def test_choose_config_keeps_the_reference_when_nothing_else_is_as_fast_alone():
    grid = {"ref": [_pt(150, 6.0), _pt(300, 50)], "x": [_pt(100, 9.0), _pt(600, 30)]}
    assert choose_config(grid, "ref") == "ref"


def test_goals_are_ratios_of_the_measured_points():
    from loadtest.sweep import goals
    pts = lambda *rates: [{"concurrency": c, "throughput_rps": r, "p50_ms": 100 / r} for c, r in zip((1, 16), rates)]
    report = {"sweep": {"batching_on": pts(200, 480), "batching_off": pts(190, 400),
                        "onnxruntime_default": pts(160, 300)},
              "saturation": {"concurrency": 16, "by_runtime": {"onnxruntime": {"median_ratio": 1.12},
                                                               "openvino": {"median_ratio": 0.55}}}}
    g = goals(report)
    assert g["batching_on_over_off"] == 1.2 and g["p50_at_1_client_over_ort_default"] == 0.8
    assert g["served_over_ort_ceiling"] == 1.12 and g["served_over_openvino_ceiling"] == 0.55


def test_locust_na_cells_become_nan():
    assert cell("N/A") != cell("N/A")
    assert cell("12.5") == 12.5
    row = {"Request Count": "3", "Failure Count": "0", "Requests/s": "1.5", "50%": "N/A", "95%": "N/A", "99%": "7"}
    s = LocustSummary.from_row(row)
    assert (s.requests, s.failures, s.rps, s.p99_ms) == (3, 0, 1.5, 7.0) and s.p50_ms != s.p50_ms


@pytest.mark.parametrize("field, value, message", [
    ("concurrency", "1,x", "comma-separated positive integers"), ("concurrency", "0,4", "positive"),
    ("seconds", 1.0, ">= 2"), ("rounds", 0, ">= 1"),
    ("repository", "/nonexistent", "no exported sketchygan/1/model.onnx"),
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
                   {"loadgen": 0.6}, error_kinds={"UNAVAILABLE: Request timeout expired": 1})
    assert LoadResult.pooled([a, b, b]).error_kinds == {"UNAVAILABLE: Request timeout expired": 2}
    s = LoadResult.pooled([a, b]).summary()
    assert s["requests"] == 40 and s["errors"] == 1 and s["throughput_rps"] == 10.0
    assert s["avg_batch"] == 4.1 and s["cores"]["loadgen"] == 0.2 and s["p50_ms"] == 30.0
    with pytest.raises(ValueError, match="same concurrency"):
        LoadResult.pooled([a, LoadResult(8, 1, 0, 1.0)])


def test_a_report_is_written_as_json_and_with_a_table_as_markdown_too(tmp_path, capsys):
    import json

    from loadtest.report import write_report
    write_report({"rate": 1.5}, tmp_path / "a", "cache")
    assert json.loads((tmp_path / "a" / "cache.json").read_text()) == {"rate": 1.5}
    assert not (tmp_path / "a" / "cache.md").exists() and '"rate": 1.5' in capsys.readouterr().out
    write_report({"rate": 2.0}, tmp_path / "b", "scale", lambda r: f"| rate |\n|---|\n| {r['rate']} |\n")
    assert (tmp_path / "b" / "scale.md").read_text() == "| rate |\n|---|\n| 2.0 |\n"
    assert json.loads((tmp_path / "b" / "scale.json").read_text()) == {"rate": 2.0}
    assert capsys.readouterr().out == "| rate |\n|---|\n| 2.0 |\n"
