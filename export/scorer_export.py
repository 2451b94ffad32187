"""The class-confidence scorer (training/scorer.py) -> score.onnx with the scorer's contract, checked against PyTorch,
-> the `sketchygan_score` model folder beside the generator."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from export.errors import ExportError
from export.onnx_export import OPSET, check_io
from training import checkpoint as ckpt
from training.classifier import PhotoClassifier
from training.scorer import load_scorer
from triton_repo.contract import CLASS_ID, CONFIDENCE, IMAGE, PROBS, Contract, ScorerContract
from triton_repo.runtimes import ort_session

MAX_PROB_DIFF = 1e-4  # ONNX Runtime vs PyTorch, in probability


class ScorerGraph(nn.Module):
    """image uint8 [B,S,S,3] + class id int32 [B,1] -> (P(class) [B,1], softmax [B,C]); any class id is clamped into
    range (the CPU model refuses out-of-range ids before they get here). `pool`: the image is `pool` x the side the
    classifier was trained at (an upsampled generator's image), averaged down to it first."""

    def __init__(self, classifier: PhotoClassifier, num_classes: int, pool: int = 1) -> None:
        super().__init__()
        self.c = classifier.eval()
        self.num_classes = num_classes
        self.pool = pool

    def forward(self, image: torch.Tensor, class_id: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        probs = torch.softmax(self.c(x), dim=1)
        y = class_id.clamp(0, self.num_classes - 1).to(torch.int64)
        return probs.gather(1, y), probs


def export_scorer(classifier: PhotoClassifier, contract: ScorerContract, path: Path, pool: int = 1) -> None:
    graph = ScorerGraph(classifier, len(contract.class_names), pool).eval()
    s = contract.resolution
    example = (torch.zeros(2, s, s, 3, dtype=torch.uint8), torch.zeros(2, 1, dtype=torch.int32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, example, str(path), input_names=[IMAGE, CLASS_ID], output_names=[CONFIDENCE, PROBS],
                          dynamic_axes={n: {0: "batch"} for n in (IMAGE, CLASS_ID, CONFIDENCE, PROBS)},
                          opset_version=OPSET, dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    check_io(path, contract)


def scorer_parity(classifier: PhotoClassifier, contract: ScorerContract, path: Path, n: int = 16,
                  seed: int = 0, pool: int = 1) -> dict:
    """ONNX Runtime vs PyTorch on random images; fails above MAX_PROB_DIFF."""
    rng = np.random.default_rng(seed)
    s, c = contract.resolution, len(contract.class_names)
    image = rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8)
    cid = rng.integers(0, c, (n, 1)).astype(np.int32)
    with torch.no_grad():
        ref = ScorerGraph(classifier, c, pool)(torch.from_numpy(image), torch.from_numpy(cid))
    got = ort_session(path).run([CONFIDENCE, PROBS], {IMAGE: image, CLASS_ID: cid})
    diff = max(float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got))
    if diff > MAX_PROB_DIFF:
        raise ExportError(f"the scorer's ONNX output differs from PyTorch by {diff:.2g} (> {MAX_PROB_DIFF:g})")
    return {"max_abs_diff": diff, "n_samples": n}


def scorer_for(path: Path, generator: Contract) -> tuple[PhotoClassifier, ScorerContract, dict]:
    """The scorer at `path` and its contract, checked to fit `generator`: same classes in the same order, trained at
    the sketch's size (it takes the generator's IMAGE, `upscale` x that, and averages it down in the graph)."""
    classifier, meta = load_scorer(path)
    names = tuple(meta["class_names"])
    if names != generator.class_names or int(meta["resolution"]) != generator.resolution:
        raise ckpt.CheckpointError(
            f"scorer {path} ({len(names)} classes {list(names)}, {meta['resolution']} px) does not fit the generator "
            f"({list(generator.class_names)}, {generator.resolution} px); train one on the generator's data with "
            f"`python -m training scorer --data <data>`")
    return classifier, ScorerContract(generator.image_resolution, names, ckpt.sha256_file(path)), meta
