"""PyTorch FP16 vs FP32 benchmark of the served graph: runs end to end on CPU (dry run), on CUDA when present."""
import json

import pytest
import torch

from export.__main__ import main as export_main
from export.torch_bench import TorchBenchConfig, run_bench


def main(argv):
    """`python -m export torch-bench ...`"""
    return export_main(["torch-bench", *argv])


def test_dry_run_on_cpu_times_every_variant_and_measures_fp16_error(tiny_checkpoint):
    cfg = TorchBenchConfig(checkpoint=tiny_checkpoint, device="cpu", batches=(1, 3),
                           variants=("fp32_eager", "fp16_eager"), iters=2, rounds=2, warmup=1)
    rows = {(r["variant"], r["batch"]): r for r in run_bench(cfg, log=lambda s: None)["results"]}
    assert set(rows) == {(v, b) for v in cfg.variants for b in cfg.batches}
    for b in cfg.batches:
        ref, half = rows[("fp32_eager", b)], rows[("fp16_eager", b)]
        assert ref["max_levels"] == 0 and ref["psnr_db"] is None  # identical to itself
        # autocast really ran in half precision (outputs differ) but stays close to FP32
        assert 0 < half["max_levels"] and half["psnr_db"] > 25, half
        assert half["images_per_s"] > 0 and half["speedup_range"][0] <= half["speedup_vs_fp32_eager"]


@pytest.mark.parametrize("argv, message", [
    (["--device", "cuda"], "CUDA is not available"), (["--batches", "1,a"], "positive integers"),
    (["--variants", "fp32_eager,int4"], "unknown variant"), (["--variants", "fp16_eager"], "must include fp32_eager"),
    (["--checkpoint", "missing.safetensors"], "no such file"), (["--device", "tpu"], "expected cuda"),
])
def test_cli_refuses_bad_arguments(argv, message, capsys):
    if argv == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so --device cuda is valid here")
    assert main(["--device", "cpu", *argv] if argv[0] != "--device" else argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_gpu_fp16_is_accurate_and_reported(tiny_checkpoint, tmp_path):
    out = tmp_path / "torch_gpu.json"
    assert main(["--checkpoint", str(tiny_checkpoint), "--batches", "1,8", "--variants", "fp32_eager,fp16_eager",
                 "--iters", "5", "--rounds", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    half = [r for r in report["results"] if r["variant"] == "fp16_eager"]
    assert report["env"]["device"].startswith("cuda") and all(r["psnr_db"] is None or r["psnr_db"] > 30 for r in half)
