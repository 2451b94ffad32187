"""The class-confidence scorer served beside the generator: how sure the project is that an image shows its class.

A `PhotoClassifier` trained on the real images of the *training* split only (every style of the data; flips, shifts,
brightness and, half the time, the blur of a 64 px generator), so that what it says about images made from the
validation sketches is a fair measure. The evaluation judge (training/classifier.py) is another network: it also sees
the validation emoji, and is retrained per evaluation. `score_vs_judge` reports how the two relate.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import checkpoint as ckpt
from training.classifier import PhotoClassifier, _photos, accuracy, fit, train_classifier
from training.data import PairedData, align_classes, load_data

KIND = "scorer"
SHIPPED_SCORER = Path("checkpoints/scorer.safetensors")


@dataclass(frozen=True)
class ScorerConfig:
    steps: int = 1500
    batch: int = 64
    seed: int = 0
    width: int = 16  # channels of the first of four conv blocks (x2 each)

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"ScorerConfig.{name} must be >= 1, got {getattr(self, name)!r}")


def _top1(model: PhotoClassifier, data: PairedData, items: np.ndarray) -> float:
    if len(items) == 0:
        return float("nan")
    return accuracy(model, _photos(data, items), torch.from_numpy(data.class_of[items]))


def train_scorer(data: PairedData, cfg: ScorerConfig = ScorerConfig()) -> tuple[PhotoClassifier, dict[str, Any]]:
    """(the scorer, its sidecar metadata with its top-1 on the real training and validation images)."""
    train, val = data.split("train"), data.split("val")
    if len(train) == 0:
        raise ValueError("the data has no training items to train a scorer on")
    model = PhotoClassifier(len(data.class_names), cfg.width)
    fit(model, data, train, data.class_of, cfg.steps, cfg.batch, cfg.seed, smooth=True)
    meta = {"kind": KIND, "class_names": list(data.class_names), "resolution": data.resolution,
            "data_fingerprint": data.fingerprint(), "config": asdict(cfg),
            "top1_real_train": round(_top1(model, data, train), 4),
            "top1_real_validation": round(_top1(model, data, val), 4),
            "n_train": int(len(train)), "n_validation": int(len(val))}
    return model, meta


def save_scorer(path: Path, model: PhotoClassifier, meta: dict[str, Any]) -> None:
    ckpt.save(path, {f"classifier.{k}": v for k, v in model.state_dict().items()}, meta)


def load_scorer(path: Path) -> tuple[PhotoClassifier, dict[str, Any]]:
    """(the scorer in eval mode, its metadata); a clear error for a file that is not a scorer."""
    tensors, meta = ckpt.load(path)
    if meta.get("kind") != KIND:
        raise ckpt.CheckpointError(f"{path} is not a scorer checkpoint (kind {meta.get('kind')!r}); make one with "
                                   f"`python -m training scorer`")
    model = PhotoClassifier(len(meta["class_names"]), int(meta.get("config", {}).get("width", 16)))
    ckpt.load_state(model, tensors, "classifier", path)
    return model.eval(), meta


@torch.no_grad()
def class_probs(model: PhotoClassifier, images: torch.Tensor, batch: int = 256) -> np.ndarray:
    """[N, C] class probabilities (softmax of the logits) of images in [-1, 1]."""
    return torch.cat([torch.softmax(model(images[a:a + batch]), dim=1) for a in range(0, len(images), batch)]).numpy()


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of `scores` for the `positive` items (ties count half); None with one class."""
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return None
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def relation(conf: np.ndarray, right: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """How a score relates to a judge's verdicts. conf, right: [seeds, N] (per seed and sketch); labels: [N]."""
    flat_c, flat_r = conf.reshape(-1), right.reshape(-1)
    bins = [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.01)]
    by_bin = []
    for lo, hi in bins:
        m = (flat_c >= lo) & (flat_c < hi)
        by_bin.append({"confidence": f"{lo:.2f}-{min(hi, 1.0):.2f}", "images": int(m.sum()),
                       "judge_top1": round(float(flat_r[m].mean()), 4) if m.any() else None})
    classes = np.unique(labels)
    cls_conf = np.array([conf[:, labels == c].mean() for c in classes])
    cls_top1 = np.array([right[:, labels == c].mean() for c in classes])
    r = float(np.corrcoef(cls_conf, cls_top1)[0, 1]) if len(classes) > 2 and cls_conf.std() and cls_top1.std() else None
    best = conf.argmax(axis=0)  # the result a page ordered by score shows first
    n = conf.shape[1]
    return {
        "images": int(flat_c.size),
        "judge_top1": round(float(flat_r.mean()), 4),
        "mean_confidence": round(float(flat_c.mean()), 4),
        "mean_confidence_judge_right": round(float(flat_c[flat_r].mean()), 4) if flat_r.any() else None,
        "mean_confidence_judge_wrong": round(float(flat_c[~flat_r].mean()), 4) if (~flat_r).any() else None,
        "auc_confidence_for_judge_right": None if (a := auc(flat_c, flat_r)) is None else round(a, 4),
        "by_confidence": by_bin,
        "judge_top1_of_top_scored_seed": round(float(right[best, np.arange(n)].mean()), 4),
        "judge_top1_of_lowest_scored_seed": round(float(right[conf.argmin(axis=0), np.arange(n)].mean()), 4),
        "per_class": {class_names[c]: {"mean_confidence": round(float(cc), 4), "judge_top1": round(float(ct), 4)}
                      for c, cc, ct in zip(classes, cls_conf, cls_top1)},
        "pearson_r_per_class": None if r is None else round(r, 4),
    }


def score_vs_judge(generator_path: Path, scorer_path: Path, data_spec: str | None = None, inputs: str = "thin",
                   seeds: int = 4, style: str | None = None) -> dict[str, Any]:
    """Generate from the validation sketches (`inputs`) x `seeds`, score each image with the scorer and with the
    evaluation judge, and report how the scorer's confidence relates to the judge's top-1 (`relation`).

    A generator with output styles draws in `style` (default: its default style, a photograph) from one style's
    sketches (default: `styles.sketch_data`: the line drawings for `thin`), and its images are judged by the class judge
    of `evaluate-styles` (trained on the real images of both styles): an art-only judge cannot read a photograph."""
    from training.evaluate import generate, load_any_generator, validation_sketches
    from training.styles import sketch_data
    g, meta = load_any_generator(generator_path)
    scorer, smeta = load_scorer(scorer_path)
    styles = list(meta.get("output_styles") or [])
    if style is not None and style not in styles:
        raise ValueError(f"style {style!r}: {generator_path} draws {styles or 'one style'}")
    spec = data_spec or sketch_data(meta.get("data", "default"), inputs, style)
    data = load_data(spec, smeta["resolution"])
    if data.output_styles:
        raise ValueError(f"score-report draws from one style's sketches; {spec} has {data.output_styles}: pass "
                         f"--data default-v3 (the line drawings) or --data photos")
    data = align_classes(data, list(meta.get("class_names") or data.class_names))
    if list(smeta["class_names"]) != list(data.class_names):
        raise ValueError(f"the scorer's classes {smeta['class_names']} are not the generator's {data.class_names}")
    idx, sketches = validation_sketches(data, inputs=inputs)
    labels = torch.from_numpy(data.labels[idx])
    drawn = styles[0] if styles and style is None else style
    offset = styles.index(drawn) * len(data.class_names) if drawn else 0
    # as served: the generator's output quantised to uint8, then read back into [-1, 1]
    outs = [((o + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1.0
            for o in generate(g, sketches, labels + offset, seeds)]
    if styles:
        from training.style_eval import judges
        judge = judges(data.resolution)[0]["class"]
    else:
        judge = train_classifier(data)
    with torch.no_grad():
        right = np.stack([(judge(o).argmax(1) == labels).numpy() for o in outs])
    probs = np.stack([class_probs(scorer, o) for o in outs])  # [seeds, N, C]
    label_np = data.labels[idx]
    conf = probs[:, np.arange(len(idx)), label_np]
    report = relation(conf, right, label_np, list(data.class_names))
    report |= {"scorer_top1": round(float((probs.argmax(2) == label_np).mean()), 4), "generator": str(generator_path),
               "style": drawn, "judge": "class judge on photos + art (evaluate-styles)" if styles
               else f"class judge on {spec}", "data": spec,
               "scorer": str(scorer_path), "scorer_sha256": ckpt.sha256_file(scorer_path),
               "scorer_top1_real_validation": smeta.get("top1_real_validation"), "inputs": inputs, "seeds": seeds,
               "n_validation": int(len(idx))}
    return report
