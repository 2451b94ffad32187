"""`python -m training bench`: training img/s of the plain eager loop vs the optimised variants, side by side.

Each variant trains the same preset on the same batches for `--steps` timed iterations after `--warmup`;
variants are interleaved in rounds so machine noise hits all of them alike. Prints a table and ratios.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from training.config import preset
from training.data import load_data
from training.train import RunOptions, Trainer

VARIANTS = {
    "eager": {},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of `python -m training bench`."""
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--data", default="default")
    ap.add_argument("--steps", type=int, default=10, help="timed iterations per variant and round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variants", default="eager,channels_last",
                    help=f"comma list of {sorted(VARIANTS)} (compile: +20%% on tiny but ~7 min of compilation)")


def run(args: argparse.Namespace) -> int:
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        raise ValueError(f"--variants: unknown {unknown}; expected some of {sorted(VARIANTS)}")
    m, t = preset(args.preset)
    data = load_data(args.data, m.resolution)
    names = args.variants.split(",")
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            cfg = dataclasses.replace(t, steps=10**6, **VARIANTS[n])
            trainers[n] = Trainer(m, cfg, data, RunOptions(out=Path(tmp) / n, progress=False))
        times = {n: 0.0 for n in names}
        for n, tr in trainers.items():
            for i in range(args.warmup):
                tr.train_step(tr.sampler.batch(i, 10**6))
        for r in range(args.rounds):
            for n, tr in trainers.items():
                batches = [tr.sampler.batch(1000 + r * args.steps + i, 10**6) for i in range(args.steps)]
                t0 = time.perf_counter()
                for b in batches:
                    tr.train_step(b)
                times[n] += time.perf_counter() - t0
    n_img = args.rounds * args.steps * t.batch_size
    ips = {n: n_img / times[n] for n in names}
    base = ips[names[0]]
    print(f"preset={args.preset} batch={t.batch_size} threads={torch.get_num_threads()} "
          f"steps={args.rounds}x{args.steps}")
    print(f"{'variant':<15}{'img/s':>8}{'ratio':>8}")
    for n in names:
        print(f"{n:<15}{ips[n]:8.2f}{ips[n] / base:8.2f}")
    print(json.dumps({"img_per_s": ips, "ratio_vs_" + names[0]: {n: ips[n] / base for n in names}}))
    return 0

