"""`python -m export`: checkpoint -> ONNX (parity) -> FP16 check -> Triton model folders (CPU + GPU targets).

    python -m export                       # shipped checkpoint -> model_repository/ + model_repository_gpu/*/
    python -m export --checkpoint runs/x/generator.safetensors --out /tmp/repo --targets cpu --scorer none
    python -m export trt-build --folder model_repository_gpu/tensorrt/sketchygan   # on the target GPU only
    python -m export torch-bench --device cuda --batches 1,32                       # PyTorch FP16 vs FP32
    python -m export int8-study                    # int8 (NNCF) gated against f32, timed against f32/bf16
    python -m export stage --checkpoint NEW --running-config CFG --out DIR   # python -m serving rollout runs this
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from export.errors import ExportError
from export.fp16_check import MIN_PSNR_DB
from export.pipeline import run_export
from training import checkpoint as ckpt
from training.scorer import SHIPPED_SCORER
from training.upsampler import SHIPPED_UPSAMPLER
from triton_repo.precision import DEFAULT_PRECISION, PRECISIONS
from triton_repo.runtimes import CPU_RUNTIMES
from triton_repo.serving_config import TARGETS, Limits, ServingConfig


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
    sub = ap.add_subparsers(dest="command", metavar="{trt-build,stage,torch-bench,int8-study}",
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
    p = sub.add_parser("stage", help="a checkpoint exported as the next version of a running CPU deployment "
                                     "(what `python -m serving rollout` runs)")
    from export import stage
    stage.add_arguments(p)
    p.set_defaults(fn=stage.run)
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
