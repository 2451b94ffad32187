"""`python -m export`: checkpoint -> ONNX (parity) -> FP16 check -> Triton model folders (CPU + GPU targets).

    python -m export                       # shipped checkpoint -> model_repository/ + model_repository_gpu/*/
    python -m export --checkpoint runs/x/generator.safetensors --out /tmp/repo --targets cpu --scorer none
    python -m export trt-build --folder model_repository_gpu/tensorrt/sketchygan   # on the target GPU only
    python -m export torch-bench --device cuda --batches 1,32                       # PyTorch FP16 vs FP32
    python -m export int8-study                    # int8 (NNCF) gated against f32, timed against f32/bf16
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from export.check_inputs import check_inputs
from export.errors import ExportError
from export.fp16_check import MIN_PSNR_DB, fp16_check
from export.onnx_export import check_io, export_onnx, parity
from export.precision_gate import PHOTO_JUDGE_STEPS, gate_report
from export.scorer_export import export_scorer, scorer_for, scorer_parity
from export.tensorrt_build import engine_script
from training import checkpoint as ckpt
from training.config import preset
from training.scorer import SHIPPED_SCORER
from training.upsampler import SHIPPED_UPSAMPLER, load_upsampler
from triton_repo.contract import Contract
from triton_repo.folders import remove_scorer_folder, write_model_folder, write_scorer_folder
from triton_repo.precision import DEFAULT_PRECISION, GATE_KEY, PRECISIONS
from triton_repo.runtimes import CPU_RUNTIMES
from triton_repo.serving_config import TARGETS, Limits, ServingConfig

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
                report[key] = openvino_check(onnx_path, *fp16_on, precision=precision).as_dict()
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


def cmd_trt_build(args: argparse.Namespace) -> int:
    from export.tensorrt_build import EngineSpec, build_engine
    from triton_repo.config_reader import contract_from_config, parse_config
    folder = Path(args.folder)
    cfg = parse_config((folder / "config.pbtxt").read_text())
    spec = EngineSpec(contract_from_config(cfg), cfg.max_batch_size, args.opt_batch_size)
    info = build_engine(spec, folder / "model.onnx", folder / "1" / "model.plan")
    print(json.dumps(info, indent=2))
    return 0


def _trt_build(args: argparse.Namespace) -> int:
    try:
        return cmd_trt_build(args)
    except ImportError:
        print("error: the `tensorrt` Python package is not installed here; build inside NVIDIA's tritonserver "
              "container on the target GPU, or run the folder's build_engine.sh there", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="{trt-build,torch-bench,int8-study}",
                            help="without a command: export a checkpoint (the options below)")
    p = sub.add_parser("trt-build", help="build the TensorRT engine of a tensorrt model folder (on the target GPU)")
    p.add_argument("--folder", required=True, help="a tensorrt model folder written by `python -m export`")
    p.add_argument("--opt-batch-size", type=int, default=8)
    p.set_defaults(fn=_trt_build)
    p = sub.add_parser("int8-study", help="int8 with NNCF four ways, gated against f32 and timed against f32/bf16 "
                                          "(needs the [int8] extra)")
    from export import int8_study
    int8_study.add_arguments(p)
    p.set_defaults(fn=int8_study.run)
    p = sub.add_parser("torch-bench", help="PyTorch FP16 (autocast, compiled) vs FP32 eager on the served graph")
    from export import torch_bench
    torch_bench.add_arguments(p)
    p.set_defaults(fn=torch_bench.run)
    ap.add_argument("--checkpoint", default=str(ckpt.SHIPPED), help="generator .safetensors (+ .json sidecar)")
    ap.add_argument("--out", default="model_repository", help="CPU model repository (default: model_repository)")
    ap.add_argument("--gpu-out", default="model_repository_gpu",
                    help="parent of the production target repositories (tensorrt, onnxruntime, openvino)")
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma list of {list(TARGETS)}")
    ap.add_argument("--preset", help="fail unless the checkpoint has this preset's architecture")
    ap.add_argument("--max-batch-size", type=int, default=ServingConfig.max_batch_size)
    ap.add_argument("--preferred-batch-sizes", default=",".join(map(str, ServingConfig.preferred_batch_sizes)))
    ap.add_argument("--max-queue-delay-us", type=int, default=ServingConfig.max_queue_delay_us)
    ap.add_argument("--instances", type=int, default=Limits.instances)
    ap.add_argument("--intra-op-threads", type=int, default=Limits.threads)
    ap.add_argument("--cpu-runtime", default=Limits.runtime, choices=CPU_RUNTIMES,
                    help="what the CPU model folder runs model.onnx with (openvino: checked against onnxruntime)")
    ap.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                    help="what the deployment computes in: f32 (default; the same pixels on every CPU) or bf16 "
                         "(OpenVINO, ~1.5x the images/s on CPUs with AVX-512-BF16 or AMX; refused on others). The "
                         "export checks bf16 against f32 whenever this CPU has it (PSNR >= 40 dB, class top-1 within "
                         "its noise; with --precision bf16 also the photo share, and a failure fails the export)")
    ap.add_argument("--cpu-pinning", action="store_true",
                    help="openvino: bind inference threads to cores (off: pinned instances all bind to the first)")
    ap.add_argument("--max-queue-size", type=int, default=Limits.max_queue_size,
                    help="requests queued beyond this are rejected with UNAVAILABLE at once (0 = unbounded)")
    ap.add_argument("--queue-timeout-us", type=int, default=Limits.queue_timeout_us,
                    help="queued requests are rejected after waiting this long (the default: a full queue of the "
                         "largest requests' work), or sooner if the caller sends a shorter timeout (0 = wait forever, "
                         "and callers' timeouts are ignored); replaced by the start-up calibration's value")
    ap.add_argument("--scorer", default=str(SHIPPED_SCORER),
                    help="class-confidence scorer served beside the generator in every repository written (model "
                         "sketchygan_score); 'none' for none. Default: the shipped one, when present")
    ap.add_argument("--upsampler", default=str(SHIPPED_UPSAMPLER),
                    help="learned 2x upsampler fused into the generator's graph: IMAGE is twice the sketch's side "
                         "(python -m training upsampler trains one); 'none' for images at the sketch's side. "
                         "Default: the shipped one, when present")
    ap.add_argument("--fp16-min-psnr", type=float, default=MIN_PSNR_DB)
    args = ap.parse_args(argv)
    if args.command is not None:
        return args.fn(args)
    try:
        targets = [t for t in args.targets.split(",") if t]
        unknown = [t for t in targets if t not in TARGETS]
        if unknown or not targets:
            raise ValueError(f"unknown target(s) {unknown or args.targets!r}; expected a comma list of {list(TARGETS)}")
        try:
            preferred = tuple(int(x) for x in args.preferred_batch_sizes.split(",") if x)
        except ValueError:
            raise ValueError(f"--preferred-batch-sizes must be comma-separated integers, got "
                             f"{args.preferred_batch_sizes!r}") from None
        limits = Limits(runtime=args.cpu_runtime, instances=args.instances, threads=args.intra_op_threads,
                        max_queue_size=args.max_queue_size, queue_timeout_us=args.queue_timeout_us,
                        precision=args.precision)
        serving = ServingConfig(max_batch_size=args.max_batch_size, preferred_batch_sizes=preferred,
                                max_queue_delay_us=args.max_queue_delay_us, limits=limits,
                                cpu_pinning=args.cpu_pinning)
        scorer = None if args.scorer == "none" else Path(args.scorer)
        if scorer is not None and not scorer.is_file():
            if args.scorer != str(SHIPPED_SCORER):
                raise FileNotFoundError(f"scorer {scorer} not found; train one with `python -m training scorer`, or "
                                        "pass --scorer none")
            print(f"warning: no {SHIPPED_SCORER}: exporting without the class-confidence scorer", file=sys.stderr)
            scorer = None
        upsampler = None if args.upsampler == "none" else Path(args.upsampler)
        if upsampler is not None and not upsampler.is_file():
            if args.upsampler != str(SHIPPED_UPSAMPLER):
                raise FileNotFoundError(f"upsampler {upsampler} not found; train one with `python -m training "
                                        "upsampler`, or pass --upsampler none")
            upsampler = None
        report = run_export(Path(args.checkpoint), Path(args.out), Path(args.gpu_out), targets, serving, args.preset,
                            args.fp16_min_psnr, scorer, upsampler)
    except (ValueError, ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
