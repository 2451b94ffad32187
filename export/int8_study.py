"""`python -m export int8-study` (`make bench-int8`): the served graph quantized to int8 with NNCF (OpenVINO's
quantizer) in four ways, each checked by the bf16 gate's checks against float32 (PSNR, class top-1, photo share) and
timed in process against float32 and (where the CPU has it) bfloat16:
- `ptq_default`: post-training quantization with NNCF's defaults (96 calibration samples);
- `conv_only`: only the convolutions quantized, every other op type kept in float (the min-max normalisation and the
  class-conditional arithmetic must stay in float);
- `accuracy_aware`: `conv_only`, then NNCF's accuracy-aware loop reverts the convolutions that cost the picture most,
  one at a time, until the RMSE against float32 on the validation sketches is at most `MAX_RMSE_LEVELS` (PSNR >= 32 dB);
  the reverted layers are the per-layer finding;
- `weights_only`: int8 weights, float compute (`compress_weights`).
A study, not a deployment: int8 ships as a precision only if one of them passes the gate and beats the best of
float32/bfloat16 on some CPU of the pool (docs/benchmarks.md, "int8"). Needs NNCF, which the project does not
install by default: `.venv/bin/pip install -c constraints.txt -e '.[int8]'`."""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MAX_RMSE_LEVELS = 255 / 10 ** (32 / 20)  # 6.4 grey levels: PSNR 32 dB
CALIBRATION_ITEMS = 300


def _calibration(data, noise_dim: int, n: int = CALIBRATION_ITEMS, seed: int = 0) -> list[dict]:
    """Contract inputs from the training split, batch 1 each: augmented edge maps, their labels, fresh noise."""
    from training.edges import SketchAugment
    from triton_repo.contract import CLASS_ID, NOISE, SKETCH
    rng = np.random.default_rng(seed)
    train = data.split("train")
    aug = SketchAugment()
    return [{SKETCH: aug(data.edges[i], rng, 1.0)[None].astype(np.uint8),
             CLASS_ID: np.array([[data.labels[i]]], np.int32),
             NOISE: rng.standard_normal((1, noise_dim)).astype(np.float32)}
            for i in rng.choice(train, min(n, len(train)), replace=False)]


def quantized_models(onnx_path: Path, calibration: list[dict], validation: list[tuple[dict, np.ndarray]]) -> dict:
    """name -> (the int8 ov.Model, notes): the four variants of the module docstring."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters
    core = ov.Core()

    def fresh():
        return core.read_model(str(onnx_path))

    convs = {"Convolution", "GroupConvolution", "ConvolutionBackpropData"}
    float_types = sorted({op.get_type_name() for op in fresh().get_ops()} - convs)
    dataset = nncf.Dataset(calibration)
    out = {"ptq_default": (nncf.quantize(fresh(), dataset, subset_size=96), {}),
           "conv_only": (nncf.quantize(fresh(), dataset, subset_size=len(calibration),
                                       ignored_scope=nncf.IgnoredScope(types=float_types)), {})}

    def closeness(compiled, items) -> float:  # 1 - RMSE / 255 against float32: the accuracy-aware loop's metric
        se, n = 0.0, 0
        for x, ref in items:
            got = compiled(x)[compiled.output(0)]
            se += float(((got.astype(np.float64) - ref) ** 2).sum())
            n += got.size
        return 1.0 - math.sqrt(se / n) / 255.0

    t0 = time.monotonic()
    reverted: list[str] = []
    handler = _Reverted(reverted)
    nncf_log = logging.getLogger("nncf")
    nncf_log.addHandler(handler)
    try:
        aaq = nncf.quantize_with_accuracy_control(
            fresh(), dataset, nncf.Dataset(validation, lambda item: item[0]), closeness,
            max_drop=MAX_RMSE_LEVELS / 255, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calibration),
            ignored_scope=nncf.IgnoredScope(types=float_types),
            advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                max_num_iterations=60, ranking_subset_size=len(validation)))
    finally:
        nncf_log.removeHandler(handler)
    out["accuracy_aware"] = (aaq, {"reverted_to_float": reverted, "seconds": round(time.monotonic() - t0, 1)})
    out["weights_only"] = (nncf.compress_weights(fresh(), mode=nncf.CompressWeightsMode.INT8_ASYM), {})
    return out


class _Reverted(logging.Handler):
    """Keeps the layer names NNCF's accuracy-aware loop logs as reverted to float."""

    def __init__(self, into: list[str]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "Reverted" in msg:
            self.into += [line.strip() for line in msg.splitlines()[1:] if line.strip()]


def study(checkpoint: Path, seconds: float = 4.0, rounds: int = 3) -> dict:
    """Export `checkpoint` (with the shipped upsampler and scorer, as `python -m export` does), quantize, check,
    time; the report."""
    import openvino as ov

    from export.check_inputs import check_inputs
    from export.onnx_export import export_onnx
    from export.precision_gate import gate_inputs, precision_check
    from loadtest.ceiling import Layout
    from serving.machine import cpu_facts, cpu_model_and_flags
    from training import checkpoint as ckpt
    from training.data import load_data
    from training.scorer import SHIPPED_SCORER, load_scorer
    from training.upsampler import SHIPPED_UPSAMPLER, load_upsampler
    from triton_repo.contract import Contract
    from triton_repo.precision import native_bf16
    from triton_repo.runtimes import ov_compiled, run_ov
    g, meta = ckpt.load_generator(checkpoint)
    up, up_meta = load_upsampler(SHIPPED_UPSAMPLER)
    contract = Contract(g.cfg.resolution, g.cfg.noise_dim, tuple(meta["class_names"]), ckpt.sha256_file(checkpoint),
                        tuple(meta.get("output_styles", ())), up.cfg.scale, up_meta.get("sha256", ""))
    real = check_inputs(g, meta, n_real=256)["real"]
    sketch, rows, noises, judges = gate_inputs(contract, real, load_scorer(SHIPPED_SCORER)[0])
    report: dict = {"cpu": cpu_facts(flags=False), "checkpoint": str(checkpoint), "n_images": len(rows) * len(noises),
                    "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "model.onnx"
        export_onnx(g, onnx, up)
        ref = ov_compiled(onnx, 1, precision="f32")
        validation = [(x, run_ov(ref, *x.values())) for x in
                      ({k: v[a:a + 8] for k, v in zip(("SKETCH", "CLASS_ID", "NOISE"), (sketch, rows, noises[0]))}
                       for a in range(0, len(rows), 8))]
        print(f"quantizing ({CALIBRATION_ITEMS} calibration items; the accuracy-aware loop takes minutes) ...",
              file=sys.stderr, flush=True)
        models = quantized_models(onnx, _calibration(load_data(meta.get("data", "default"), g.cfg.resolution),
                                                     g.cfg.noise_dim), validation)
        paths = {"f32": onnx}
        for name, (model, notes) in models.items():
            paths[name] = Path(tmp) / f"{name}.xml"
            ov.save_model(model, str(paths[name]))
            gate = precision_check(onnx, name, sketch, rows, noises, judges, min_psnr=32.0,
                                   candidate=ov_compiled(paths[name], 1, precision="f32"), strict=False)
            report["variants"][name] = {"gate": gate, **notes}
        kinds = {k: (p, "f32") for k, p in paths.items()}
        if native_bf16(cpu_model_and_flags()[1]):
            kinds["bf16"] = (onnx, "bf16")
        rates: dict[str, dict[str, list[float]]] = {k: {"1x2": [], "2x1": []} for k in kinds}
        for r in range(rounds):
            print(f"  timing round {r + 1}/{rounds}: {', '.join(kinds)}", file=sys.stderr, flush=True)
            for name, (path, precision) in kinds.items():
                for sessions, threads in ((1, 2), (2, 1)):
                    lay = Layout(sessions, threads, 8, "openvino", precision=precision)
                    rates[name][f"{sessions}x{threads}"].append(lay.measure(path, contract, seconds)[0])
    report["images_per_s_batch8"] = {k: {lay: round(float(np.median(v)), 1) for lay, v in r.items()}
                                     for k, r in rates.items()}
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    from training import checkpoint as ckpt
    p.add_argument("--checkpoint", default=str(ckpt.SHIPPED))
    p.add_argument("--seconds", type=float, default=4.0, help="timing window per variant, layout and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="docs/benchmarks/int8.json")


def run(args: argparse.Namespace) -> int:
    try:
        import nncf  # noqa: F401
    except ImportError:
        print("error: NNCF is not installed: `.venv/bin/pip install -c constraints.txt -e '.[int8]'`",
              file=sys.stderr)
        return 2
    report = study(Path(args.checkpoint), args.seconds, args.rounds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for name, v in report["variants"].items():
        g = v["gate"]
        print(f"{name}: PSNR {g.get('psnr_db', '-')} dB, passed {g['passed']}"
              + (f", {len(v['reverted_to_float'])} convolutions reverted" if "reverted_to_float" in v else ""))
    print(json.dumps(report["images_per_s_batch8"], indent=2))
    return 0
