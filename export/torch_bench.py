"""PyTorch FP16 (autocast, optionally torch.compile) vs FP32 eager on the served graph: the measured stand-in for a
TensorRT FP16 engine until one can be timed in the production container.

For each batch size: images/s per variant, the ratio to FP32 eager at the same batch (timed back to back in rounds,
so drifts of a shared machine cancel), and each variant's accuracy against FP32 eager on the same inputs (PSNR and
max uint8 levels). Meant for a GPU (`--device cuda`); `--device cpu` is a dry run whose timings mean little.

    python -m export torch-bench --device cuda --batches 1,32 --out docs/benchmarks/torch_gpu.json
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from export.fp16_check import psnr
from export.graph import ServingGraph
from training.checkpoint import SHIPPED, CheckpointError, load_generator
from triton_repo.tables import md_table

# name -> (autocast dtype or None for FP32, torch.compile?)
VARIANTS: dict[str, tuple[torch.dtype | None, bool]] = {
    "fp32_eager": (None, False),
    "fp16_eager": (torch.float16, False),
    "fp16_compiled": (torch.float16, True),
    "fp32_compiled": (None, True),
}


@dataclass(frozen=True)
class TorchBenchConfig:
    checkpoint: Path = SHIPPED
    device: str = "cuda"
    batches: tuple[int, ...] = (1, 32)
    variants: tuple[str, ...] = ("fp32_eager", "fp16_eager", "fp16_compiled")
    iters: int = 50  # timed calls per variant per round
    rounds: int = 3
    warmup: int = 5  # calls before timing (after compilation)
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant(s) {unknown}: expected some of {list(VARIANTS)}")
        if "fp32_eager" not in self.variants:
            raise ValueError("variants must include fp32_eager (the reference every ratio is taken against)")
        if not self.batches or min(self.batches) < 1:
            raise ValueError(f"batches must be positive integers, got {self.batches}")
        for name, ok, want in (("iters", self.iters >= 1, ">= 1"), ("rounds", self.rounds >= 1, ">= 1"),
                               ("warmup", self.warmup >= 0, ">= 0")):
            if not ok:
                raise ValueError(f"TorchBenchConfig.{name} must be {want}, got {getattr(self, name)!r}")
        if self.device not in ("cuda", "cpu") and not self.device.startswith("cuda:"):
            raise ValueError(f"device {self.device!r}: expected cuda, cuda:N or cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"CUDA is not available here (torch {torch.__version__}); run on a GPU machine, or "
                             "use --device cpu for a dry run")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _caller(graph: ServingGraph, device: torch.device, variant: str) -> Callable:
    dtype, compiled = VARIANTS[variant]
    fn = torch.compile(graph) if compiled else graph

    def call(*x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                    enabled=dtype is not None):
            return fn(*x)
    return call


def _inputs(graph: ServingGraph, batch: int, device: torch.device, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    cfg = graph.g.cfg
    s = cfg.resolution
    sketch = torch.randint(0, 256, (batch, s, s), generator=g, dtype=torch.uint8)
    cid = torch.randint(0, cfg.num_classes, (batch, 1), generator=g, dtype=torch.int32)
    noise = torch.randn(batch, cfg.noise_dim, generator=g)
    return tuple(t.to(device) for t in (sketch, cid, noise))


def _seconds_per_call(call: Callable, x: tuple, iters: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        call(*x)
    _sync(device)
    return (time.perf_counter() - t0) / iters


def run_bench(cfg: TorchBenchConfig, log: Callable[[str], None] = print) -> dict:
    device = torch.device(cfg.device)
    g, meta = load_generator(cfg.checkpoint)
    graph = ServingGraph(g).to(device).eval()
    calls = {v: _caller(graph, device, v) for v in cfg.variants}
    rows = []
    for batch in cfg.batches:
        x = _inputs(graph, batch, device, cfg.seed)
        ref = calls["fp32_eager"](*x).cpu().numpy()
        accuracy = {}
        for v, call in calls.items():
            log(f"batch {batch}: {v} warm-up{' (compiling)' if VARIANTS[v][1] else ''} ...")
            out = call(*x).cpu().numpy()
            for _ in range(cfg.warmup):
                call(*x)
            diff = np.abs(out.astype(np.int16) - ref.astype(np.int16))
            p = psnr(out, ref)
            accuracy[v] = {"psnr_db": None if math.isinf(p) else p, "max_levels": int(diff.max()),  # None: identical
                           "mean_levels": float(diff.mean())}
        per_round: dict[str, list[float]] = {v: [] for v in calls}
        for _ in range(cfg.rounds):  # interleaved: every variant once per round
            for v, call in calls.items():
                per_round[v].append(_seconds_per_call(call, x, cfg.iters, device))
        for v in calls:
            ratios = [per_round["fp32_eager"][r] / per_round[v][r] for r in range(cfg.rounds)]
            sec = statistics.median(per_round[v])
            rows.append({"variant": v, "batch": batch, "ms_per_batch": round(1000 * sec, 3),
                         "images_per_s": round(batch / sec, 1),
                         "speedup_vs_fp32_eager": round(statistics.median(ratios), 3),
                         "speedup_range": [round(min(ratios), 3), round(max(ratios), 3)],
                         **{k: (round(a, 2) if isinstance(a, float) else a) for k, a in accuracy[v].items()}})
            log(f"batch {batch}: {v} {rows[-1]['images_per_s']} img/s, x{rows[-1]['speedup_vs_fp32_eager']} "
                f"vs fp32 eager, PSNR {rows[-1]['psnr_db']} dB")
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
           "cuda": torch.version.cuda, "cpu_threads": torch.get_num_threads()}
    return {"config": {**asdict(cfg), "checkpoint": str(cfg.checkpoint)}, "env": env,
            "model": meta.get("model", {}), "results": rows}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def markdown(report: dict) -> str:
    lines = [f"{report['env']['device_name']} ({report['env']['device']}), torch {report['env']['torch']}", ""]
    headers = ["batch", "variant", "ms / batch", "images/s", "× fp32 eager", "PSNR vs fp32 (dB)", "max levels"]
    lines += md_table(headers, [[r["batch"], r["variant"], r["ms_per_batch"], r["images_per_s"],
                                 r["speedup_vs_fp32_eager"], r["psnr_db"], r["max_levels"]] for r in report["results"]])
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of `python -m export torch-bench`."""
    ap.add_argument("--checkpoint", default=str(SHIPPED))
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (dry run)")
    ap.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    ap.add_argument("--variants", default=",".join(TorchBenchConfig.variants), help=f"some of {list(VARIANTS)}")
    ap.add_argument("--iters", type=int, default=TorchBenchConfig.iters)
    ap.add_argument("--rounds", type=int, default=TorchBenchConfig.rounds)
    ap.add_argument("--out", help="write the JSON report here")


def run(args: argparse.Namespace) -> int:
    try:
        try:
            batches = tuple(int(b) for b in args.batches.split(","))
        except ValueError:
            raise ValueError(f"--batches {args.batches!r}: expected comma-separated positive integers") from None
        if not Path(args.checkpoint).is_file():
            raise ValueError(f"--checkpoint {args.checkpoint}: no such file")
        cfg = TorchBenchConfig(checkpoint=Path(args.checkpoint), device=args.device, batches=batches,
                               variants=tuple(v for v in args.variants.split(",") if v), iters=args.iters,
                               rounds=args.rounds)
        report = run_bench(cfg)
    except (ValueError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    return 0

