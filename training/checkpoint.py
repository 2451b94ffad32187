"""Checkpoints: safetensors (never pickle) plus a JSON sidecar, written atomically.

Two kinds share one format:
- a training state `<run>/checkpoint.safetensors` (G, D, EMA G, both optimisers) for exact resume;
- a generator `<run>/generator.safetensors` (EMA weights only) for evaluation, export and shipping.
The sidecar `<same name>.json` holds the model/train config, class names, step, data fingerprint, metrics and the
sha256 of the tensor file, so a half-written or swapped pair is detected at load.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from training.config import ModelConfig, model_config_from_dict

FORMAT = "sketchygan-checkpoint/1"

# the generator this repository ships (what `make export` and `make serve` start from)
SHIPPED = Path("checkpoints/sketchygan-cpu.safetensors")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit the model it is loaded into."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sidecar_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def save(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write tensors + sidecar atomically (temp files, then rename; the sidecar goes last and names the hash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    meta = {**meta, "format": FORMAT, "sha256": sha256_file(tmp)}
    tmp_meta = tmp.with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(tmp, path)
    os.replace(tmp_meta, sidecar_path(path))


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read tensors + sidecar, checking the pair belongs together."""
    path = Path(path)
    meta_path = sidecar_path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not meta_path.exists():
        raise CheckpointError(f"checkpoint {path} has no sidecar {meta_path} (expected a .json beside the "
                              f".safetensors)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"sidecar {meta_path} is not valid JSON: {e}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} has format {meta.get('format')!r}; expected {FORMAT!r}")
    digest = sha256_file(path)
    if meta.get("sha256") != digest:
        raise CheckpointError(f"{path} does not match its sidecar (sha256 {digest[:12]}… vs "
                              f"{str(meta.get('sha256'))[:12]}…): corrupt or half-written")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
    return tensors, meta


def load_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, source: Path) -> None:
    """Load `prefix.*` tensors into a module; a shape or key mismatch names the checkpoint and the difference."""
    state = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
           for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or bad:
        raise CheckpointError(f"{source} does not fit this model ({prefix}): missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]}, shape mismatches {bad[:3]} — was it written for another preset?")
    module.load_state_dict(state)


def load_generator(path: Path, expect: ModelConfig | None = None):
    """Build the generator described by a checkpoint's sidecar and load its (EMA) weights, in eval mode."""
    from training.generator import Generator
    tensors, meta = load(path)
    try:
        cfg = model_config_from_dict(meta["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{sidecar_path(path)} has no valid model config: {e}") from None
    if expect is not None and cfg != expect:
        raise CheckpointError(f"{path} was trained with {cfg}, expected {expect}")
    g = Generator(cfg)
    prefix = "ema" if any(k.startswith("ema.") for k in tensors) else "generator"
    load_state(g, tensors, prefix, path)
    return g.eval(), meta


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """An optimiser's state as flat tensors `<prefix>.<param index>.<name>`, to store beside the weights."""
    out = {}
    for idx, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            out[f"{prefix}.{idx}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    """Inverse of optimizer_tensors: restore `opt`'s state from the stored tensors."""
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)
