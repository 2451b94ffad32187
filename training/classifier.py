"""A small photo classifier: the judge of class recognisability.

It is trained on the real images of every emoji of every style, the validation emoji included — the generator never
sees those, and a judge that has not seen a class's real drawings cannot tell whether a generated one is right
(trained on the training emoji only it scored 0.53 on the real validation images of default-v2). Its top-1 on the
real validation images is reported next to every score it gives, as its ceiling.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training import checkpoint as ckpt
from training.data import PairedData
from training.sources.base import cache_dir


class PhotoClassifier(nn.Module):
    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i in range(4):
            cout = width * 2**i
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """img [B,3,S,S] in [-1,1] -> logits."""
        return self.head(self.features(img).mean(dim=(2, 3)))


def _photos(data: PairedData, idx: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(data.photos[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1.0


JUDGE_TARGETS = ("class", "style")


def judge_labels(data: PairedData, target: str = "class") -> tuple[np.ndarray, int]:
    """(label per image, number of labels) that a judge learns: the class (whatever the image's style), or the
    output style (photo vs art: the photo-likeness judge of a data set with several styles)."""
    if target == "class":
        return data.class_of, len(data.class_names)
    if target == "style" and data.output_styles:
        return data.labels // len(data.class_names), len(data.output_styles)
    raise ValueError(f"a judge of {target!r} needs {'a data set with output styles' if target == 'style' else ''} "
                     f"(targets: {list(JUDGE_TARGETS)})")


@torch.enable_grad()
def train_classifier(data: PairedData, steps: int = 1500, batch: int = 64, seed: int = 0,
                     target: str = "class") -> PhotoClassifier:
    """Train on the real images of all emoji (flips, small shifts, colour jitter) — cached by the data fingerprint.
    `target`: what it tells apart (`judge_labels`)."""
    label_np, n = judge_labels(data, target)
    suffix = "" if target == "class" else f"-{target}-smooth"
    path = cache_dir() / f"judge-{data.fingerprint()[:16]}-{steps}{suffix}.safetensors"
    model = PhotoClassifier(n)
    if path.exists():
        tensors, _ = ckpt.load(path)
        ckpt.load_state(model, tensors, "classifier", path)
        return model.eval()
    # a style judge sees each style equally often (206 photos next to ~1,300 art images), a class judge every image
    weights = torch.from_numpy(1.0 / np.bincount(label_np)[label_np]) if target == "style" else None
    fit(model, data, np.arange(len(data.labels)), label_np, steps, batch, seed, weights, smooth=target == "style")
    ckpt.save(path, {f"classifier.{k}": v for k, v in model.state_dict().items()},
              {"kind": "judge", "data_fingerprint": data.fingerprint(), "steps": steps, "target": target})
    return model


@torch.enable_grad()
def fit(model: PhotoClassifier, data: PairedData, items: np.ndarray, label_np: np.ndarray, steps: int, batch: int,
        seed: int, weights: torch.Tensor | None = None, smooth: bool = False) -> PhotoClassifier:
    """The one training loop of the project's classifiers: Adam on cross-entropy over the real images `items`
    (flips, small shifts, brightness jitter; `weights`: how often each item is drawn; `smooth`: half the batches
    also blurred as a 64 px generator draws). Leaves `model` in eval mode."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    labels = torch.from_numpy(label_np)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    for _ in range(steps):
        pick = (torch.multinomial(weights, batch, replacement=True, generator=g) if weights is not None
                else torch.randint(len(items), (batch,), generator=g))
        idx = items[pick.numpy()]
        x = _photos(data, idx)
        if torch.rand(1, generator=g).item() < 0.5:
            x = x.flip(3)
        dx, dy = torch.randint(-3, 4, (2,), generator=g).tolist()
        x = torch.roll(x, (dy, dx), (2, 3))
        x = (x * torch.empty(len(idx), 1, 1, 1).uniform_(0.8, 1.2, generator=g)).clamp(-1, 1)
        if smooth and torch.rand(1, generator=g).item() < 0.5:
            # the images as smooth as a 64 px generator draws them (2x down and up again): without it, blur itself
            # reads as a cue (a style judge called 44 % of a pure art model's outputs photographs)
            x = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="bilinear", align_corners=False)
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: PhotoClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((model(images).argmax(1) == labels).float().mean())
