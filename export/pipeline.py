"""The export pipeline: checkpoint -> ONNX (parity) -> FP16, OpenVINO and precision checks -> Triton model folders for
each target, and the report of what was checked (`python -m export` runs it; `python -m export stage` too)."""
from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from export.check_inputs import check_inputs
from export.fp16_check import fp16_check
from export.onnx_export import check_io, export_onnx, parity
from export.precision_gate import PHOTO_JUDGE_STEPS, gate_report
from export.scorer_export import export_scorer, scorer_for, scorer_parity
from export.tensorrt_build import engine_script
from training import checkpoint as ckpt
from training.config import preset
from training.upsampler import load_upsampler
from triton_repo.contract import Contract
from triton_repo.folders import remove_scorer_folder, write_model_folder, write_scorer_folder
from triton_repo.precision import DEFAULT_PRECISION, GATE_KEY
from triton_repo.serving_config import ServingConfig

GPU_REPOS = {"tensorrt": "tensorrt", "onnxruntime-trt": "onnxruntime", "openvino": "openvino"}


def ensure_writable(folder: Path) -> None:
    """Fail before any work if the output folder cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise PermissionError(f"output folder {folder} is not writable: {e.strerror or e}") from None


def run_export(checkpoint: Path, out: Path, gpu_out: Path, targets: list[str], serving: ServingConfig,
               expect_preset: str | None, min_psnr: float, scorer: Path | None = None,
               upsampler: Path | None = None, photo_judge_steps: int | None = PHOTO_JUDGE_STEPS) -> dict:
    """`scorer`: the class-confidence scorer to serve beside the generator in every target's repository (None:
    none). `upsampler`: a learned upsampler fused into the generator's graph (None: images at the sketch's side).
    `photo_judge_steps`: the bf16 gate's photo-vs-art judge when the deployment is bf16 (None: no photo verdict)."""
    g, meta = ckpt.load_generator(checkpoint)
    up, up_meta = load_upsampler(upsampler) if upsampler is not None else (None, {})
    # the repository each target's folders go to: `out` for cpu, `gpu_out/<name>` for the container targets
    repos = {t: out if t == "cpu" else gpu_out / GPU_REPOS[t] for t in targets}
    for repo in repos.values():
        ensure_writable(repo)
    if expect_preset:
        want = dataclasses.replace(preset(expect_preset)[0], num_classes=g.cfg.num_classes)
        if g.cfg != want:
            raise ckpt.CheckpointError(f"{checkpoint} is not a {expect_preset!r}-preset checkpoint: {g.cfg} vs {want}")
    contract = Contract(g.cfg.resolution, g.cfg.noise_dim, tuple(meta["class_names"]), ckpt.sha256_file(checkpoint),
                        tuple(meta.get("output_styles", ())), up.cfg.scale if up is not None else 1,
                        up_meta.get("sha256", ""))
    if contract.num_labels != g.cfg.num_classes:
        raise ckpt.CheckpointError(f"{checkpoint}: {len(contract.class_names)} classes x {len(contract.styles) or 1} "
                                   f"styles in its sidecar, but the generator has {g.cfg.num_classes} condition rows")
    scored = scorer_for(scorer, contract) if scorer is not None else None
    inputs = check_inputs(g, meta)
    report: dict = {"checkpoint": str(checkpoint), "checkpoint_sha256": contract.checkpoint_sha256,
                    "serving": dataclasses.asdict(serving)}
    if up is not None:
        report["upsampler"] = {"checkpoint": str(upsampler), "sha256": contract.upsampler_sha256,
                               "image_resolution": contract.image_resolution}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(g, onnx_path, up)
        check_io(onnx_path, contract)
        report["onnx_parity"] = {k: parity(g, onnx_path, *v, upsampler=up).as_dict() for k, v in inputs.items()}
        fp16_on = inputs.get("real", inputs["random"])
        report["fp16"] = fp16_check(onnx_path, Path(tmp) / "model_fp16.onnx", *fp16_on, min_psnr=min_psnr).as_dict()
        report["fp16"]["inputs"] = "real validation sketches" if "real" in inputs else "random"
        from export.openvino_check import openvino_check
        # the CPU folder's model.py pins float32; Triton's OpenVINO backend cannot, and computes in the plugin's
        # default precision (bfloat16 on a CPU with it natively): each is checked as it will run
        cpu_ov = "cpu" in targets and serving.limits.runtime == "openvino"
        for key, needed, precision in (("openvino", cpu_ov, DEFAULT_PRECISION),
                                       ("openvino_backend", "openvino" in targets, None)):
            if needed:
                report[key] = openvino_check(onnx_path, *fp16_on, precision=precision,
                                             static_batches=key == "openvino").as_dict()
                report[key]["inputs"] = report["fp16"]["inputs"]
        if "cpu" in targets or "openvino" in targets:  # bf16 against f32: what `--precision bf16` may serve
            # the photo judge (minutes to train on a fresh machine) only when the deployment is bf16: a default
            # export stays seconds, and its gate (PSNR, class top-1) still covers a later `serving --precision bf16`
            bf16 = serving.limits.precision == "bf16"
            report[GATE_KEY] = gate_report(onnx_path, contract, fp16_on, scored[0] if scored else None,
                                           required=bf16, judge_steps=photo_judge_steps if bf16 else None)
            report[GATE_KEY]["inputs"] = report["fp16"]["inputs"]
        note = json.dumps(report, indent=2) + "\n"
        for target, repo in repos.items():
            files = {"export_report.json": note}
            if target == "tensorrt":
                files["build_engine.sh"] = engine_script(contract, serving, onnx_path)
            folder = write_model_folder(repo, target, contract, serving, onnx_path, files)
            report.setdefault("folders", {})[target] = str(folder)
        if scored is not None:
            classifier, scontract, smeta = scored
            score_onnx = Path(tmp) / "score.onnx"
            export_scorer(classifier, scontract, score_onnx, pool=contract.upscale)
            report["scorer"] = {"checkpoint": str(scorer), "sha256": scontract.scorer_sha256,
                                "onnx_parity": scorer_parity(classifier, scontract, score_onnx, pool=contract.upscale),
                                "top1_real_validation": smeta.get("top1_real_validation")}
            scorer_note = {"export_report.json": json.dumps(report["scorer"], indent=2) + "\n"}
            for target, repo in repos.items():
                folder = write_scorer_folder(repo, scontract, score_onnx, serving.max_batch_size, scorer_note, target)
                report["folders"][f"scorer-{target}"] = str(folder)
        else:
            for repo in repos.values():
                if remove_scorer_folder(repo):
                    print(f"removed the earlier export's scorer from {repo} (exported without one)", file=sys.stderr)
    return report


