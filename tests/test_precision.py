"""A deployment's precision without a server: the native-bfloat16 test and the refusal, the config it is written to
and read from, the served model.py's own copy of the refusal, and a calibration that measures in the deployment's
precision and never serves a plan stored for another (triton_repo/precision.py, serving/calibrate.py)."""
import dataclasses
import os
import sys
import types

import numpy as np
import pytest

from serving.machine import cpu_model_and_flags
from triton_repo.precision import check_precision, native_bf16, refusal

NATIVE = native_bf16(cpu_model_and_flags()[1])
AVX2_EPYC = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c"
SAPPHIRE = AVX2_EPYC + " avx512f avx512bw avx512_bf16 amx_bf16 amx_tile"


def test_native_bfloat16_is_avx512_bf16_or_amx_and_nothing_else():
    assert not native_bf16(AVX2_EPYC) and not native_bf16(AVX2_EPYC + " avx512f avx512bw avx512_vnni")
    assert native_bf16(AVX2_EPYC + " avx512f avx512_bf16") and native_bf16(AVX2_EPYC + " amx_bf16")
    assert not native_bf16("avx512_bf16x")  # a flag, not a substring


def test_the_refusal_names_the_cpu_and_what_it_lacks_and_f32_is_never_refused():
    why = refusal("bf16", "AMD EPYC 7B13", AVX2_EPYC)
    assert "AMD EPYC 7B13" in why and "avx512_bf16" in why and "amx_bf16" in why and "--precision f32" in why
    assert refusal("bf16", "Xeon", SAPPHIRE) is None
    assert refusal("f32", "AMD EPYC 7B13", AVX2_EPYC) is None


def test_bfloat16_needs_openvino_and_unknown_precisions_are_named():
    from triton_repo.serving_config import Limits
    check_precision("bf16", "openvino")
    with pytest.raises(ValueError, match="OpenVINO only, but the runtime is 'onnxruntime'"):
        check_precision("bf16", "onnxruntime")
    with pytest.raises(ValueError, match=r"Limits.precision: precision must be one of \['f32', 'bf16'\], got 'fp8'"):
        Limits(precision="fp8")
    with pytest.raises(ValueError, match="Limits.precision"):
        Limits("onnxruntime", precision="bf16")


def test_each_target_publishes_what_it_computes_in(exported):
    from triton_repo.config import model_config
    from triton_repo.config_reader import contract_from_config, parse_config, read_limits
    from triton_repo.serving_config import Limits, ServingConfig
    _, repo, _ = exported
    contract = contract_from_config(parse_config((repo / "sketchygan" / "config.pbtxt").read_text()))
    bf16 = ServingConfig(max_batch_size=16, limits=Limits("openvino", precision="bf16"))
    cpu = model_config(contract, bf16, "cpu")
    assert cpu.parameters["precision"].string_value == "bf16" and read_limits(cpu).precision == "bf16"
    ov = model_config(contract, bf16, "openvino")  # Triton's OpenVINO backend: only a bf16 hint exists
    assert ov.parameters["HINT_BF16"].string_value == "YES" and ov.parameters["precision"].string_value == "bf16"
    ov32 = model_config(contract, ServingConfig(max_batch_size=16), "openvino")
    assert "HINT_BF16" not in ov32.parameters and ov32.parameters["precision"].string_value == "cpu-default"
    assert model_config(contract, ServingConfig(max_batch_size=16), "tensorrt").parameters["precision"].string_value \
        == "fp16"
    assert read_limits(model_config(contract, ServingConfig(max_batch_size=16), "cpu")).precision == "f32"


def test_the_served_model_refuses_exactly_what_the_project_refuses(monkeypatch):
    """model.py is deployed without the project and restates the refusal: the two agree on this CPU."""
    stub = types.ModuleType("triton_python_backend_utils")  # only imported, never called here
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", stub)
    monkeypatch.delitem(sys.modules, "triton_repo.served_model", raising=False)
    from triton_repo.served_model import _precision_refusal
    name, flags = cpu_model_and_flags()
    assert _precision_refusal("f32", "onnxruntime") is None
    assert (_precision_refusal("bf16", "openvino") is None) == (refusal("bf16", name, flags) is None) == NATIVE
    assert "OpenVINO only" in _precision_refusal("bf16", "onnxruntime")
    assert "unknown precision 'fp8'" in _precision_refusal("fp8", "openvino")


def _bf16_repo(exported, tmp_path):
    """The exported repository with its generator folder's config set to OpenVINO (for a bf16 pin)."""
    import shutil

    from triton_repo.config import write_limits
    from triton_repo.config_reader import config_text, parse_config, read_limits
    _, repo, _ = exported
    dest = tmp_path / "repo"
    shutil.copytree(repo, dest)
    path = dest / "sketchygan" / "config.pbtxt"
    cfg = parse_config(path.read_text())
    write_limits(cfg, dataclasses.replace(read_limits(cfg), runtime="openvino"))
    path.write_text(config_text(cfg))
    return dest


@pytest.mark.skipif(not NATIVE, reason="this CPU has no native bfloat16 (AVX-512-BF16 / AMX): a bf16 calibration "
                                       "is refused here (tested by the next test)")
def test_calibration_measures_in_the_deployments_precision_and_never_serves_a_plan_of_another(exported, tmp_path):
    from serving.calibrate import calibrate
    repo = _bf16_repo(exported, tmp_path)
    core = (sorted(os.sched_getaffinity(0))[0],)
    cache = tmp_path / "plan.json"
    f32 = calibrate(repo, cpus=core, seconds=0.5, cache=cache)
    assert f32.precision == "f32" and {c["precision"] for c in f32.costs} == {"f32"}
    bf16 = calibrate(repo, cpus=core, seconds=0.5, cache=cache, precision="bf16")
    assert bf16.source == "measured" and bf16.precision == "bf16" and {c["precision"] for c in bf16.costs} == {"bf16"}
    assert calibrate(repo, cpus=core, seconds=0.5, cache=cache, precision="bf16").source == "cached"
    assert calibrate(repo, cpus=core, seconds=0.5, cache=cache).source == "measured"  # the stored one is bf16's


@pytest.mark.skipif(NATIVE, reason="this CPU computes bfloat16 natively: the refusal applies to CPUs without it "
                                   "(its message is tested above on a described CPU)")
def test_a_bf16_deployment_is_refused_on_a_cpu_without_native_bfloat16(exported, tmp_path):
    from serving.calibrate import CalibrationError, calibrate
    repo = _bf16_repo(exported, tmp_path)
    with pytest.raises(CalibrationError, match="precision bf16 refused: this CPU .* has no native bfloat16"):
        calibrate(repo, seconds=0.5, precision="bf16")


def test_a_bf16_pin_on_onnxruntime_is_refused_with_the_way_out(exported):
    from serving.calibrate import CalibrationError, calibrate
    _, repo, _ = exported
    with pytest.raises(CalibrationError, match=r"OpenVINO only, but the runtime is 'onnxruntime'.*--runtime openvino"):
        calibrate(repo, seconds=0.5, precision="bf16")


def test_a_judge_may_move_by_its_noise_and_no_further():
    from export.precision_gate import within_noise
    ref = np.array([1] * 60 + [0] * 40)  # 0.6 of 100: 2 standard errors are ~0.098
    assert within_noise("top1", ref, np.array([1] * 51 + [0] * 49)).passed
    assert not within_noise("top1", ref, np.array([1] * 49 + [0] * 51)).passed
    every = np.ones(100, int)  # no spread: one image may still differ
    assert within_noise("top1", every, np.array([1] * 99 + [0])).passed
    assert not within_noise("top1", every, np.array([1] * 98 + [0] * 2)).passed


def test_every_export_checks_bf16_against_f32_where_it_can_and_the_gate_can_fail(exported):
    """The export fixture's report: bf16 checked (on a CPU with it natively, with the scorer as class judge) or said
    why not; and the same check fails just above the PSNR it measures."""
    from export.errors import ExportError
    from export.precision_gate import precision_check
    report, repo, _ = exported
    gate = report["precision_gate"]["bf16"]
    if not NATIVE:
        assert gate["checked"] is False and "no native bfloat16" in gate["why"]
        return
    assert gate["passed"] and gate["against"] == "f32" and gate["n_images"] > 0
    assert [j["name"] for j in gate["judges"]] == ["class_top1"]
    onnx = repo / "sketchygan" / "1" / "model.onnx"
    rng = np.random.default_rng(3)
    sk = np.where(rng.random((6, 32, 32)) < 0.08, 0, 255).astype(np.uint8)
    cid, z = rng.integers(0, 4, (6, 1)).astype(np.int32), rng.standard_normal((6, 8)).astype(np.float32)
    got = precision_check(onnx, "bf16", sk, cid, [z], min_psnr=0.0)
    if got["psnr_db"] != "inf":
        with pytest.raises(ExportError, match="bf16 gate failed"):
            precision_check(onnx, "bf16", sk, cid, [z], min_psnr=got["psnr_db"] + 1)


def test_serving_bf16_needs_an_export_that_passed_the_gate(exported, tmp_path):
    from serving.calibrate import CalibrationError, calibrate
    repo = _bf16_repo(exported, tmp_path)
    (repo / "sketchygan" / "export_report.json").unlink()
    match = "did not pass the bf16 gate" if NATIVE else "no native bfloat16"
    with pytest.raises(CalibrationError, match=match):
        calibrate(repo, seconds=0.5, precision="bf16")


def test_the_int8_study_says_how_to_install_nncf_and_keeps_the_reverted_layers(monkeypatch, capsys):
    import argparse
    import logging

    from export.int8_study import _Reverted, run
    monkeypatch.setitem(sys.modules, "nncf", None)  # as on a machine without the [int8] extra
    assert run(argparse.Namespace()) == 2 and "pip install -c constraints.txt -e '.[int8]'" in capsys.readouterr().err
    kept: list[str] = []
    record = logging.LogRecord("nncf", logging.INFO, "", 0, "Reverted 2 operations to the floating-point precision: "
                               "\n\t/g/dec.0/proj/Conv\n\t/g/enc.1/conv2/Conv", None, None)
    _Reverted(kept).emit(record)
    _Reverted(kept).emit(logging.LogRecord("nncf", logging.INFO, "", 0, "Accuracy drop: 0.02", None, None))
    assert kept == ["/g/dec.0/proj/Conv", "/g/enc.1/conv2/Conv"]


def test_the_precision_benchmark_tables_name_every_ratio_and_where_each_part_ran():
    from loadtest.precision_bench import markdown
    row = {"plan": {"instances": 2, "threads": 1, "batch_limit": 8},
           "in_process": {"images_per_s": 400.0, "layout": "ov_2x1thread_batch8", "dynamic_graph_images_per_s": 250.0},
           "static_over_dynamic_in_process": 1.6}
    shared = {"server_cpus": None, "load_cpus": None, "bf16_over_f32_served": 1.69, "bf16_over_f32_in_process": 2.0,
              "rows": {"f32": {**row, "served": {"throughput_rps": 160, "p50_ms": 100, "p95_ms": 140},
                               "served_over_in_process": 0.4},
                       "bf16": {**row, "served": {"throughput_rps": 270, "p50_ms": 60, "p95_ms": 100},
                                "served_over_in_process": 0.675}}}
    alone = {"plan": {"instances": 1, "threads": 1, "batch_limit": 12},
             "in_process": {"images_per_s": 160.0, "layout": "ov_1x1thread_batch12"}}
    isolated = {"server_cpus": (1,), "load_cpus": (0,), "bf16_over_f32_served": 1.9, "bf16_over_f32_in_process": 2.2,
                "rows": {"f32": {**alone, "served": {"throughput_rps": 150, "p50_ms": 50, "p95_ms": 70},
                                 "served_over_in_process": 0.9375},
                         "bf16": {**alone, "served": {"throughput_rps": 285, "p50_ms": 30, "p95_ms": 40},
                                  "served_over_in_process": 0.8}}}
    report = {"machine": {"model": "Xeon", "isa": "avx512", "cores": 2}, "concurrency": 16, "rounds": 3, "seconds": 8,
              "placements": {"shared": shared, "isolated": isolated}}
    text = markdown(report)
    assert "| bf16 | 2x1, batches <= 8 | 270 |" in text and "served **1.69x**, in process 2.00x" in text
    assert "| 0.68 | 250 | 1.60 |" in text  # served / in process, the dynamic graph in process, static / dynamic
    assert "**shared**: server and in process on every core, load generator on every core" in text
    assert "**isolated**: server and in process on core 1, load generator on core 0" in text
    assert "| f32 | 1x1, batches <= 12 | 150 | 50.0 | 70.0 | 160 (ov_1x1thread_batch12) | 0.94 |" in text
