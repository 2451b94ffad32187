"""Evaluate a generator on the validation split: sketch fidelity, class recognisability, diversity.

- fidelity: F-score (2 px tolerance) between the input sketch's ink and the Canny edges of the output, reported
  next to a shuffled-pairs baseline (the same outputs scored against other sketches);
- fidelity per class, and the worst class's (a class template shows up as one class's low fidelity);
- recognisability: top-1 of a judge (training/classifier.py) trained on the real images of all emoji, the
  validation emoji included (ceiling: its top-1 on the real validation images, reported beside it);
- diversity: mean absolute difference (0..1 scale) between outputs for different noise seeds.
- class template: for different sketches of one class and the same noise, output difference / sketch difference,
  on the outputs' edge maps (`template_ratio_edges`, colour-blind: a class colour is not a class template) and, as
  before, on their pixels (`template_ratio`, kept for comparison with older reports).
Validation inputs (`inputs="edges"`) are the photos' edge maps passed through the sketch augmentation with a fixed
seed, so they are sparse and wobbly like hand drawings; `inputs="thin"` is the thin-stroke set: human line drawings
(OpenMoji's, EmojiOne's and Streamline's line art in default-v3) thinned to 1-2 px pen strokes. Both are never seen
in training (the split is by object: all styles of one emoji on the same side). Every score is over all noise seeds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from training import checkpoint as ckpt
from training.classifier import accuracy, train_classifier
from training.data import PairedData, align_classes, load_data
from training.edges import SketchAugment

INPUTS = ("edges", "thin")


def validation_sketches(data: PairedData, seed: int = 0, inputs: str = "edges") -> tuple[np.ndarray, np.ndarray]:
    """(photo indices, sketches) of the validation split.

    `edges`: one sketch per validation photo, human if available else augmented edges.
    `thin`: the thin-stroke set — only photos with a human line drawing (default-v2: OpenMoji's line art of emoji
    never seen in training), redrawn as a pen would: thinned to 1 px, then 1 or 2 px wide (fixed by `seed`)."""
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {list(INPUTS)}, got {inputs!r}")
    rng = np.random.default_rng(seed)
    idx = data.split("val")
    if len(idx) == 0:
        raise ValueError("the dataset has no validation split to evaluate on")
    if inputs == "thin":
        from training.edges import thin
        keep, out = [], []
        for i in idx:
            human = data.sketch_of(i, rng)
            if human is None:
                continue
            ink = thin((human < 128).astype(np.uint8))
            if rng.random() < 0.5:
                ink = cv2.dilate(ink, np.ones((2, 2), np.uint8))
            keep.append(i)
            out.append(np.where(ink > 0, 0, 255).astype(np.uint8))
        if not keep:
            raise ValueError("the thin-stroke set needs human line drawings in the validation split: use "
                             "--data default-v2 (or a Sketchy root)")
        return np.array(keep), np.stack(out)
    aug = SketchAugment()
    out = []
    for i in idx:
        human = data.sketch_of(i, rng)
        out.append(human if human is not None else aug(data.edges[i], rng, 1.0))
    return idx, np.stack(out)


def edge_template_score(sketches: np.ndarray, labels: np.ndarray, images: np.ndarray) -> float:
    """The class-template ratio on structure alone: over pairs of different sketches of one class (same noise), the
    fraction of pixels where the outputs' edge maps differ, against the fraction where the sketches' ink differs.
    Colour-blind, so "every flower pink, shaped as drawn" scores like varied colours, and "one picture per class"
    still scores near 0 (the output edges are the same whatever is drawn)."""
    edges = np.stack([_edges(im) for im in images])
    ink = sketches < 128
    out_d, sk_d = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                i, j = members[a], members[b]
                out_d.append(float((edges[i] != edges[j]).mean()))
                sk_d.append(float((ink[i] != ink[j]).mean()))
    if not out_d or not np.mean(sk_d):
        return float("nan")
    return round(float(np.mean(out_d)) / float(np.mean(sk_d)), 4)


def class_template_score(sketches: np.ndarray, labels: np.ndarray, images: np.ndarray) -> dict[str, float]:
    """How much the output follows the sketch rather than the class: over pairs of *different* sketches of the same
    class generated with the same noise, the mean output difference (0..1) against the mean sketch difference
    (fraction of pixels whose ink differs). A class template gives near-identical outputs for different sketches:
    a ratio near 0."""
    out_d, sk_d = [], []
    ink = sketches < 128
    img = images.astype(np.float32) / 255.0
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                i, j = members[a], members[b]
                out_d.append(float(np.abs(img[i] - img[j]).mean()))
                sk_d.append(float((ink[i] != ink[j]).mean()))
    if not out_d:
        return {"same_class_output_diff": float("nan"), "same_class_sketch_diff": float("nan"),
                "template_ratio": float("nan")}
    o, k = float(np.mean(out_d)), float(np.mean(sk_d))
    return {"same_class_output_diff": round(o, 4), "same_class_sketch_diff": round(k, 4),
            "template_ratio": round(o / k, 4) if k else float("nan")}


def _edges(img: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return cv2.Canny(cv2.GaussianBlur(gray, (3, 3), 0), 50, 150, L2gradient=True) > 0


def edge_fscore(sketch: np.ndarray, image: np.ndarray, tol: float = 2.0) -> float:
    """Symmetric F-score between sketch ink and image edges, each point matched within `tol` pixels."""
    ink, edges = sketch < 128, _edges(image)
    if not ink.any() or not edges.any():
        return 0.0
    d_ink = cv2.distanceTransform((~ink).astype(np.uint8), cv2.DIST_L2, 3)
    d_edge = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float((d_ink[edges] <= tol).mean())
    recall = float((d_edge[ink] <= tol).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def load_any_generator(path: Path):
    """SketchyGAN or pix2pix checkpoint -> (module called as g(sketch, y, z), meta)."""
    _, meta = ckpt.load(path)
    if meta.get("kind") == "pix2pix":
        from training.pix2pix import load_pix2pix
        return load_pix2pix(path)
    return ckpt.load_generator(path)


@torch.no_grad()
def generate(g, sketches: np.ndarray, labels: torch.Tensor, seeds: int, batch: int = 64) -> list[torch.Tensor]:
    """Outputs in [-1,1] for every sketch, one tensor per noise seed (seed s draws z from 1000 + s)."""
    outs = []
    for s in range(seeds):
        gen = torch.Generator().manual_seed(1000 + s)
        z_all = torch.randn(len(sketches), g.cfg.noise_dim, generator=gen)
        chunks = []
        for a in range(0, len(sketches), batch):
            sk = torch.from_numpy(sketches[a:a + batch]).float().unsqueeze(1) / 255.0
            chunks.append(g(sk, labels[a:a + batch], z_all[a:a + batch]))
        outs.append(torch.cat(chunks))
    return outs


def per_class(values: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """Mean of `values` per class present in `labels`."""
    return {class_names[c]: round(float(values[labels == c].mean()), 4) for c in np.unique(labels)}


@torch.no_grad()
def evaluate_generator(g, data: PairedData, seeds: int = 4, batch: int = 64,
                       classifier_steps: int = 1500, inputs: str = "edges", style_offset: int = 0) -> dict[str, Any]:
    """Every score over all `seeds` noise seeds; per-class fidelity shows a class template as one low class.
    `style_offset`: the first conditioning row of the output style to draw in (style x classes; 0 = the default)."""
    idx, sketches = validation_sketches(data, inputs=inputs)
    labels_np = data.labels[idx]
    labels = torch.from_numpy(labels_np)
    outs = generate(g, sketches, labels + style_offset, seeds, batch)
    imgs = [((o + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy() for o in outs]
    n = len(idx)
    fid = np.array([[edge_fscore(sketches[i], im[i]) for i in range(n)] for im in imgs]).mean(axis=0)
    shuffled = float(np.mean([edge_fscore(sketches[(i + 1) % n], im[i]) for im in imgs for i in range(n)]))
    judge = train_classifier(data, steps=classifier_steps)
    real = torch.from_numpy(data.photos[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    top1 = float(np.mean([accuracy(judge, o, labels) for o in outs]))
    div = float(np.mean([(outs[a] - outs[b]).abs().mean().item() / 2.0
                         for a in range(seeds) for b in range(a + 1, seeds)])) if seeds > 1 else 0.0
    templates = [class_template_score(sketches, labels_np, im) for im in imgs]
    fid_by_class = per_class(fid, labels_np, data.class_names)
    return {
        "inputs": inputs,
        "n_validation": int(n),
        "seeds": seeds,
        "sketch_fidelity_f2px": round(float(fid.mean()), 4),
        "sketch_fidelity_shuffled_baseline": round(shuffled, 4),
        "fidelity_per_class": fid_by_class,
        "worst_class_fidelity": min(fid_by_class.values()),
        "class_top1_generated": round(top1, 4),
        "judge_top1_real_validation": round(accuracy(judge, real, labels), 4),
        "chance_top1": round(1.0 / len(data.class_names), 4),
        "diversity_mean_abs_diff": round(div, 4),
        "l1_to_real_photo": round(float((outs[0] - real).abs().mean() / 2.0), 4),
        "same_class_output_diff": round(float(np.mean([t["same_class_output_diff"] for t in templates])), 4),
        "same_class_sketch_diff": templates[0]["same_class_sketch_diff"],
        "template_ratio": round(float(np.mean([t["template_ratio"] for t in templates])), 4),
        "template_ratio_edges": round(float(np.mean([edge_template_score(sketches, labels_np, im) for im in imgs])), 4),
        "template_ratio_edges_per_class": {
            data.class_names[c]: round(float(np.mean([edge_template_score(sketches[labels_np == c],
                                                                          labels_np[labels_np == c],
                                                                          im[labels_np == c]) for im in imgs])), 4)
            for c in np.unique(labels_np) if (labels_np == c).sum() >= 2},
        "items_per_class": {data.class_names[c]: int((labels_np == c).sum()) for c in np.unique(labels_np)},
    }


def evaluate_checkpoint(path: Path, data_spec: str | None = None, seeds: int = 4,
                        classifier_steps: int = 1500, inputs: str = "edges",
                        style: str | None = None) -> dict[str, Any]:
    """`style`: which output style of a checkpoint with several to score (default: its default style); the data
    must then be one style's (e.g. default-v3 for art), so that the report compares with one-style reports."""
    from training.styles import sketch_data
    g, meta = load_any_generator(path)
    resolution = meta.get("model", meta.get("pix2pix", {})).get("resolution", 64)
    data = load_data(data_spec or sketch_data(meta.get("data", "default"), inputs, style), resolution)
    if data.output_styles:
        raise ValueError(f"evaluate scores one style on one style's data; {data_spec or meta.get('data')} has "
                         f"{data.output_styles}: pass --data default-v3 --style art, --data photos --style photo, or "
                         f"use `evaluate-styles`")
    data = align_classes(data, list(meta.get("class_names") or data.class_names))
    styles = list(meta.get("output_styles") or [])
    if style is not None and style not in styles:
        raise ValueError(f"style {style!r}: {path} draws {styles or 'one style'}")
    offset = styles.index(style) * len(data.class_names) if style else 0
    report = evaluate_generator(g, data, seeds=seeds, classifier_steps=classifier_steps, inputs=inputs,
                                style_offset=offset)
    report["style"] = style or (styles[0] if styles else None)
    report["checkpoint"] = str(path)
    report["kind"] = meta.get("kind", "sketchygan")
    report["step"] = meta.get("step")
    report["data_matches_training"] = data.fingerprint() == meta.get("data_fingerprint")
    return report
