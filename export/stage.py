"""`python -m export stage`: a checkpoint exported as the next version of a running CPU deployment, staged for
`python -m serving rollout` (which runs this, then hands the folder to the server's supervisor).

Refused with the reason, before the server is touched, when the file is not a safetensors generator with its
sidecar, its weights are not finite, the export fails, or its contract (resolution, image size, noise size,
classes, styles) differs from the running model's. The staged folder holds one version folder's files, the contract
and a parity reference: the images the exported ONNX gives in process, in the deployment's runtime and precision,
for a few fixed inputs (what the supervisor compares the running server's answers with).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from triton_repo.contract import MODEL_NAME
from triton_repo.rollout_files import CONTRACT_FILE, PARITY_FILE, VERSION_FILES, contract_fields, contract_mismatch

PARITY_IMAGES = 8


def _finite(g) -> None:
    import torch
    for name, t in g.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"refused: the checkpoint's tensor {name!r} holds NaN or infinite values; nothing changed")


def stage(checkpoint: Path, running, upsampler: Path | None, out: Path) -> dict:
    """Export `checkpoint` for the CPU target into `out` (the files of one version folder, the contract and the
    parity reference); ValueError naming what is wrong when it cannot replace the running model (`running`: its
    config, a ModelConfig message)."""
    from export.pipeline import run_export
    from training import checkpoint as ckpt
    from triton_repo.config_reader import contract_from_config, parse_config, read_limits
    from triton_repo.runtimes import random_inputs, runner
    from triton_repo.serving_config import ServingConfig
    if not checkpoint.is_file():
        raise ValueError(f"refused: checkpoint {checkpoint} not found; nothing changed")
    try:
        g, _ = ckpt.load_generator(checkpoint)
    except Exception as e:  # noqa: BLE001 — not safetensors, no sidecar, wrong shapes: all refused the same way
        raise ValueError(f"refused: {checkpoint} is not a generator checkpoint this project can load (a .safetensors "
                         f"file with its .json sidecar): {e}; nothing changed") from None
    _finite(g)
    limits = read_limits(running)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        report = run_export(checkpoint, repo, Path(tmp) / "gpu", ["cpu"], ServingConfig(limits=limits), None, 0.0,
                            None, upsampler, None)
        new = contract_from_config(parse_config((repo / MODEL_NAME / "config.pbtxt").read_text()))
        why = contract_mismatch(contract_fields(contract_from_config(running)), contract_fields(new))
        if why:
            raise ValueError(f"refused: {why}; nothing changed")
        out.mkdir(parents=True, exist_ok=True)
        for f in VERSION_FILES:
            shutil.copyfile(repo / MODEL_NAME / "1" / f, out / f)
    (out / CONTRACT_FILE).write_text(json.dumps(contract_fields(new)))
    sketch, class_id, noise = random_inputs(PARITY_IMAGES, new.resolution, new.noise_dim, new.num_labels, seed=7)
    image = runner(limits.runtime, out / "model.onnx", 1, precision=limits.precision)(sketch, class_id, noise)
    np.savez(out / PARITY_FILE, SKETCH=sketch, CLASS_ID=class_id, NOISE=noise, IMAGE=image)
    return {"checkpoint_sha256": new.checkpoint_sha256, "runtime": limits.runtime, "precision": limits.precision,
            "onnx_parity": report.get("onnx_parity")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="the new generator .safetensors (+ .json sidecar)")
    p.add_argument("--running-config", required=True,
                   help="the running model's config.pbtxt (its contract, runtime and precision)")
    p.add_argument("--upsampler", help="learned upsampler fused into the new version (default: the shipped one when "
                                       "the running model has an upsampler; 'none' for none)")
    p.add_argument("--out", required=True, help="the staged folder (created)")


def run(args: argparse.Namespace) -> int:
    from training.upsampler import SHIPPED_UPSAMPLER
    from triton_repo.config_reader import parse_config
    try:
        running = parse_config(Path(args.running_config).read_text())
        if args.upsampler:
            upsampler = None if args.upsampler == "none" else Path(args.upsampler)
        else:
            upsampler = SHIPPED_UPSAMPLER if "upsampler_sha256" in running.parameters else None
        facts = stage(Path(args.checkpoint), running, upsampler, Path(args.out))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(facts))
    return 0
