"""The export's gate on a deployment precision: the model computed in bfloat16 by OpenVINO against the same model in
float32, on the same real validation sketches and noises — the pixels (PSNR) and what judges see in them (class top-1,
photo share), each within its noise. `python -m serving --precision bf16` serves only a model whose export passed it
(its model folder's export_report.json, `precision_gate`)."""
from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from export.errors import ExportError
from export.fp16_check import psnr
from triton_repo.runtimes import ov_batches, run_ov

MIN_PSNR_DB = 40.0
# a judge's figure may move by this many binomial standard errors of the float32 figure (and always by one image):
# what drawing other samples of the same size would move it by, not a change a person would see
NOISE_SE = 2.0
PHOTO_JUDGE_STEPS = 1500  # the evaluation's (training/style_eval.py)

Judge = Callable[[np.ndarray], np.ndarray]  # uint8 images [N, H, W, 3] -> the label it sees in each


@dataclass(frozen=True)
class Verdict:
    """One judge's figure on the float32 images and on the candidate's, and how far it may move."""

    name: str
    f32: float
    candidate: float
    allowed: float
    passed: bool


def within_noise(name: str, f32_hits: np.ndarray, candidate_hits: np.ndarray) -> Verdict:
    """The share of hits (a judge agreeing with the target) in both, allowed to move by `NOISE_SE` standard errors."""
    n, p = len(f32_hits), float(np.mean(f32_hits))
    allowed = max(NOISE_SE * math.sqrt(p * (1 - p) / n), 1.0 / n)
    q = float(np.mean(candidate_hits))
    return Verdict(name, round(p, 4), round(q, 4), round(allowed, 4), abs(q - p) <= allowed + 1e-9)


def precision_check(onnx_path: Path, precision: str, sketch: np.ndarray, class_id: np.ndarray,
                    noises: list[np.ndarray], judges: dict[str, tuple[Judge, np.ndarray, np.ndarray]] | None = None,
                    min_psnr: float = MIN_PSNR_DB, candidate=None, strict: bool = True) -> dict:
    """`onnx_path` in `precision` against float32 (both OpenVINO, one thread) on `sketch`/`class_id` with each of
    `noises`; `judges`: name -> (judge, the label each row should get, the rows it judges: a boolean mask). Raises
    ExportError when the PSNR is below `min_psnr` or a judge's figure moves beyond its noise; else the report (what
    was checked, and the figures). `candidate`: a compiled model to check instead (e.g. an int8 one), named
    `precision`; `strict` False: a failed check is reported (`passed` False), not raised."""
    ref_model = ov_batches(onnx_path, 1, precision="f32")  # both as the CPU folder's model.py computes them
    cand_model = candidate if candidate is not None else ov_batches(onnx_path, 1, precision=precision)
    ref = np.concatenate([run_ov(ref_model, sketch, class_id, z) for z in noises])
    cand = np.concatenate([run_ov(cand_model, sketch, class_id, z) for z in noises])
    diff = np.abs(ref.astype(np.int16) - cand.astype(np.int16))
    verdicts = []
    for name, (judge, target, rows) in (judges or {}).items():
        want, keep = np.tile(np.asarray(target), len(noises)), np.tile(np.asarray(rows, bool), len(noises))
        verdicts.append(within_noise(name, (judge(ref[keep]) == want[keep]), judge(cand[keep]) == want[keep]))
    value = psnr(cand, ref)
    report = {"precision": precision, "against": "f32", "n_images": int(len(ref)), "seeds": len(noises),
              "psnr_db": round(value, 2) if math.isfinite(value) else "inf", "min_psnr_db": min_psnr,
              "max_abs_diff_levels": int(diff.max()), "mean_abs_diff_levels": round(float(diff.mean()), 4),
              "judges": [asdict(v) for v in verdicts], "noise_standard_errors": NOISE_SE}
    report["passed"] = value >= min_psnr and all(v.passed for v in verdicts)
    if strict and not report["passed"]:
        raise ExportError(f"{precision} gate failed (need PSNR >= {min_psnr} dB against f32 and every judge within "
                          f"its noise): {report}")
    return report


def torch_judge(model, pool: int = 1) -> Judge:
    """A judge from one of the project's image classifiers (trained at the sketch's side): images are averaged down
    by `pool` first, as the served scorer does."""
    import torch
    import torch.nn.functional as F

    @torch.no_grad()
    def judge(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if pool > 1:
            x = F.avg_pool2d(x, pool)
        return torch.cat([model(x[a:a + 256]).argmax(1) for a in range(0, len(x), 256)]).numpy()

    return judge


def gate_report(onnx_path: Path, contract, real: tuple[np.ndarray, np.ndarray, np.ndarray], class_judge=None,
                required: bool = False, seeds: int = 2, judge_steps: int | None = PHOTO_JUDGE_STEPS) -> dict:
    """`GATE_KEY`'s entry of an export report: bf16 checked against f32 on the real sketches `real` (sketch,
    class_id, noise: each sketch drawn in every style of `contract`, with `seeds` noises), judged by `class_judge`
    (the served scorer's classifier; None: no class verdict) and, for a model with a photo style, by the
    photo-vs-art judge of the evaluation (training/style_eval.py, `judge_steps` steps, trained once per machine and
    cached: ~2-3 min on 2 cores; None: no photo verdict — a default f32 export, and tests). Run on every
    export on a CPU with native bfloat16, so that `python -m serving --precision bf16` may later serve the model;
    `required` (the deployment's precision is bf16): a failed or impossible check fails the export."""
    from serving.machine import cpu_model_and_flags
    from triton_repo.precision import refusal
    why = refusal("bf16", *cpu_model_and_flags())
    if why:
        if required:
            raise ExportError(f"{why} (the export checks a bf16 deployment on the CPU it runs on)")
        return {"bf16": {"checked": False, "passed": False, "why": why}}
    sketch, rows, noises, judges = gate_inputs(contract, real, class_judge, seeds, judge_steps)
    try:
        rep = precision_check(onnx_path, "bf16", sketch, rows, noises, judges)
    except ExportError as e:
        if required:
            raise
        rep = {"passed": False, "error": str(e)}
    return {"bf16": rep}


def gate_inputs(contract, real: tuple[np.ndarray, np.ndarray, np.ndarray], class_judge=None, seeds: int = 2,
                judge_steps: int | None = PHOTO_JUDGE_STEPS) -> tuple[np.ndarray, np.ndarray, list, dict]:
    """What the gate runs and judges: (sketches, CLASS_ID rows, noises, judges) — each real sketch drawn in every
    style of `contract` with `seeds` noises; the class judge (`class_judge`, the served scorer's classifier) on every
    row, the photo-vs-art judge on the photo-style rows (`judge_steps`: None for no photo verdict)."""
    sketch, class_id, noise = real
    n, styles = len(contract.class_names), contract.styles or ("",)
    cls = np.concatenate([class_id[:, 0] % n] * len(styles))
    style = np.repeat(np.arange(len(styles)), len(sketch))
    rows = (cls + style * n).astype(np.int32)[:, None]
    rng = np.random.default_rng(0)
    noises = [rng.standard_normal((len(rows), noise.shape[1])).astype(np.float32) for _ in range(seeds)]
    judges = {}
    if class_judge is not None:
        judges["class_top1"] = (torch_judge(class_judge, contract.upscale), cls, np.ones(len(rows), bool))
    if "photo" in styles and judge_steps:
        from training.classifier import train_classifier
        from training.data import load_data
        from training.style_eval import DATA
        from training.styles import STYLES
        print(f"precision gate: the photo-vs-art judge ({DATA}, {judge_steps} steps; trained once per machine, then "
              "cached) ...", file=sys.stderr, flush=True)
        style_judge = train_classifier(load_data(DATA, contract.resolution), judge_steps, target="style")
        judges["photo_share"] = (torch_judge(style_judge, contract.upscale), np.full(len(rows), STYLES.index("photo")),
                                 style == styles.index("photo"))
    return np.concatenate([sketch] * len(styles)), rows, noises, judges
