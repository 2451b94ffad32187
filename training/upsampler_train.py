"""Train the 2x upsampler (training/upsampler.py) on the photos and art rendered at 64 and 128 px, and measure it
against bicubic: on held-out real images (PSNR and sharpness against the 128 px truth, the photo judge at 128 px)
and on the generator's photo-style outputs (the photo and class judges at 128 px, sharpness).
`python -m training upsampler` runs both."""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.classifier import accuracy, judge_labels, train_classifier
from training.data import PairedData, load_data
from training.styles import STYLED_DATA, STYLES, label
from training.upsampler import Upsampler, UpsamplerConfig, bicubic, load_upsampler, save_upsampler


@dataclass(frozen=True)
class UpsamplerTrainConfig:
    data: str = "default-v4"  # photos + art, each rendered at `low` and at scale x `low` from the same sources
    low: int = 64
    steps: int = 3000
    batch_size: int = 16
    lr: float = 1e-3
    w_grad: float = 1.0  # L1 on image gradients beside L1 on pixels: pays for edges that plain L1 averages away
    input_noise: float = 0.02  # a generator's 64 px image is no exact rendering: a little noise on the input
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("low", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"UpsamplerTrainConfig.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "w_grad", "input_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"UpsamplerTrainConfig.{name} must not be negative, got {getattr(self, name)}")


@dataclass(frozen=True)
class Pairs:
    """The same images at the low and the high resolution, in [-1,1], NCHW; `val` held out, `photo` the photos."""

    low: torch.Tensor
    high: torch.Tensor
    val: np.ndarray
    photo: np.ndarray
    high_data: PairedData


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def load_pairs(spec: str, low: int, scale: int) -> Pairs:
    lo, hi = load_data(spec, low), load_data(spec, low * scale)
    if not np.array_equal(lo.labels, hi.labels) or not np.array_equal(lo.val, hi.val):
        raise ValueError(f"data {spec!r} at {low} and {low * scale} px does not hold the same images in the same order")
    photo = (hi.labels // len(hi.class_names) == STYLES.index("photo") if hi.output_styles
             else np.zeros(len(hi.labels), bool))
    return Pairs(_tensor(lo.photos), _tensor(hi.photos), lo.val.copy(), photo, hi)


def gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean |horizontal and vertical finite differences of a - those of b|."""
    return ((a.diff(dim=3) - b.diff(dim=3)).abs().mean() + (a.diff(dim=2) - b.diff(dim=2)).abs().mean()) / 2


def sharpness(img: torch.Tensor) -> float:
    """Mean absolute finite difference (grey levels of 255 per pixel step): higher is sharper."""
    return float((img.diff(dim=3).abs().mean() + img.diff(dim=2).abs().mean()) / 2 * 127.5)


def edge_error(img: torch.Tensor, truth: torch.Tensor) -> float:
    """`gradient_l1` in grey levels: how far the image's edges are from the truth's (lower is better; unlike
    `sharpness`, ringing and noise do not score as detail)."""
    return float(gradient_l1(img, truth) * 127.5)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) / 2).pow(2).mean())
    return 10 * float(np.log10(1.0 / max(mse, 1e-12)))


@torch.enable_grad()
def train_upsampler(cfg: UpsamplerTrainConfig, model_cfg: UpsamplerConfig, out: Path, log_every: int = 100,
                    pairs: Pairs | None = None) -> Upsampler:
    """Adam on L1 (+ gradient L1) over the training images (flips, input noise); writes `out` and prints progress.
    `pairs`: the images to learn from (default: `cfg.data` rendered at both sides)."""
    pairs = pairs if pairs is not None else load_pairs(cfg.data, cfg.low, model_cfg.scale)
    train = np.flatnonzero(~pairs.val)
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = Upsampler(model_cfg).train()
    opt = torch.optim.Adam(model.parameters(), cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    start = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        idx = torch.from_numpy(train[torch.randint(len(train), (cfg.batch_size,), generator=g).numpy()])
        lo, hi = pairs.low[idx], pairs.high[idx]
        if torch.rand(1, generator=g).item() < 0.5:
            lo, hi = lo.flip(3), hi.flip(3)
        lo = lo + cfg.input_noise * torch.randn(lo.shape, generator=g)
        pred = model(lo)
        loss = (pred - hi).abs().mean() + cfg.w_grad * gradient_l1(pred, hi)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % log_every == 0 or step == cfg.steps:
            print(f"upsampler step {step}/{cfg.steps} loss {loss.item():.4f} "
                  f"({step / (time.perf_counter() - start):.1f} step/s)", flush=True)
    model.eval()
    save_upsampler(out, model, {"train": asdict(cfg), "data_fingerprint": pairs.high_data.fingerprint()})
    return model


def _photo_share(style_judge, img: torch.Tensor) -> float:
    """The share of `img` the photo-vs-art judge calls photographs."""
    return round(accuracy(style_judge, img, torch.full((len(img),), STYLES.index("photo"))), 4)


@torch.no_grad()
def _held_out(model: Upsampler, pairs: Pairs, style_judge) -> dict[str, Any]:
    """bicubic vs learned on the held-out real images of each kind, against the high-resolution truth."""
    out: dict[str, Any] = {}
    for kind, mask in (("photos", pairs.photo), ("art", ~pairs.photo)):
        idx = torch.from_numpy(np.flatnonzero(pairs.val & mask))
        lo, hi = pairs.low[idx], pairs.high[idx]
        ups = {"bicubic": bicubic(lo, model.cfg.scale), "learned": model(lo), "truth": hi}
        rows = {}
        for name, img in ups.items():
            rows[name] = {"sharpness": round(sharpness(img), 3), "photo_share": _photo_share(style_judge, img)}
            if name != "truth":
                rows[name] |= {"psnr_db": round(psnr(img, hi), 3), "edge_error": round(edge_error(img, hi), 3)}
        out[kind] = {"n": int(len(idx)), **rows}
    return out


@torch.no_grad()
def _generated(model: Upsampler, generator_path: Path, judges: dict, seeds: int = 2) -> dict[str, Any]:
    """The generator's photo-style outputs on the thin-stroke set and the held-out photos' edge maps, upsampled both
    ways and judged at the high resolution."""
    from training.evaluate import generate, load_any_generator, validation_sketches
    g, meta = load_any_generator(generator_path)
    size = g.cfg.resolution
    art = load_data(STYLED_DATA["default-v4"]["art"], size)
    photos = load_data(STYLED_DATA["default-v4"]["photo"], size)
    n = len(art.class_names)
    styled = bool(meta.get("output_styles"))
    out: dict[str, Any] = {"generator": str(generator_path), "seeds": seeds}
    for name, (data, inputs) in {"thin": (art, "thin"), "photo_edges": (photos, "edges")}.items():
        idx, sketches = validation_sketches(data, inputs=inputs)
        classes = torch.from_numpy(data.class_of[idx])
        rows = label(classes, STYLES.index("photo"), n) if styled else classes
        imgs = torch.cat(generate(g, sketches, rows, seeds))
        cls = classes.repeat(seeds)
        res = {}
        for how, up in (("bicubic", bicubic(imgs, model.cfg.scale)), ("learned", model(imgs))):
            res[how] = {"sharpness": round(sharpness(up), 3), "photo_share": _photo_share(judges["style"], up),
                        "class_top1": round(accuracy(judges["class"], up, cls), 4)}
        out[name] = {"n": int(len(idx)), **res}
    return out


JUDGE_STEPS = 600  # at 128 px a judge step costs ~4x one at 64 px; 600 steps reach the accuracy the report prints


def evaluate_upsampler(model: Upsampler, generator_path: Path | None, pairs: Pairs, data: str = "default-v4",
                       judge_steps: int = JUDGE_STEPS) -> dict[str, Any]:
    """The report of docs/model.md's 128 px section: held-out real images (`pairs`, `data` rendered at both sides)
    and (given a generator) its outputs, with each judge's own top-1 on the held-out real images (how far its
    verdicts can be trusted)."""
    judges = {"style": train_classifier(pairs.high_data, judge_steps, target="style"),
              "class": train_classifier(pairs.high_data, judge_steps)}
    val = np.flatnonzero(pairs.val)
    high = pairs.high[torch.from_numpy(val)]
    ceilings = {f"{target}_judge_real_val": round(accuracy(
        judges[target], high, torch.from_numpy(judge_labels(pairs.high_data, target)[0][val])), 4)
        for target in ("style", "class")}
    low = pairs.low.shape[-1]
    report: dict[str, Any] = {"low": low, "high": low * model.cfg.scale, "data": data, "judge_steps": judge_steps,
                              "judges": ceilings, "held_out": _held_out(model, pairs, judges["style"])}
    if generator_path is not None:
        report["generated_photo_style"] = _generated(model, generator_path, judges)
    return report


@torch.no_grad()
def inference_cost(generator_path: Path, model: Upsampler, batch: int = 8, rounds: int = 3,
                   seconds: float = 3.0) -> dict[str, Any]:
    """In-process images/s (PyTorch, this machine's threads) of the generator at its side, the same generator with
    the upsampler after it, and an untrained generator of the same architecture at the upsampler's side (option (a):
    a generator that draws 128 px itself), measured in interleaved rounds; ratios to the first."""
    import dataclasses

    from training.evaluate import load_any_generator
    from training.generator import Generator
    g, _ = load_any_generator(generator_path)
    big = Generator(dataclasses.replace(g.cfg, resolution=g.cfg.resolution * model.cfg.scale)).eval()

    def runner(gen, up=None):
        s = gen.cfg.resolution
        sk, z = torch.ones(batch, 1, s, s), torch.randn(batch, gen.cfg.noise_dim)
        y = torch.zeros(batch, dtype=torch.int64)
        return lambda: up(gen(sk, y, z)) if up is not None else gen(sk, y, z)

    runs = {"generator": runner(g), "generator+upsampler": runner(g, model), "generator_at_2x": runner(big)}
    images: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in runs.items():
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                fn()
                n += batch
            images[name].append(n / (time.perf_counter() - start))
    med = {k: float(np.median(v)) for k, v in images.items()}
    return {"batch": batch, "rounds": rounds, "images_per_s": {k: round(v, 1) for k, v in med.items()},
            "relative": {k: round(v / med["generator"], 3) for k, v in med.items()}}


@torch.no_grad()
def comparison_grid(model: Upsampler, generator_path: Path, path: Path, pairs: Pairs, rows: int = 6,
                    data: str = "default-v4") -> None:
    """A PNG a person can judge: per row, a held-out photo's truth | bicubic | learned, then the generator's
    photo-style image of that photo's edge map | bicubic | learned (all at the high side); `pairs`: `data` rendered
    at both sides."""
    from PIL import Image

    from training.evaluate import generate, load_any_generator, validation_sketches
    low = pairs.low.shape[-1]
    g, meta = load_any_generator(generator_path)
    photos = load_data(STYLED_DATA[data]["photo"], low)
    idx, sketches = validation_sketches(photos, inputs="edges")
    idx, sketches = idx[:rows], sketches[:rows]
    classes = torch.from_numpy(photos.class_of[idx])
    gen = generate(g, sketches, label(classes, STYLES.index("photo"), len(photos.class_names))
                   if meta.get("output_styles") else classes, 1)[0]
    real = torch.from_numpy(np.flatnonzero(pairs.val & pairs.photo)[:rows])
    lo, hi = pairs.low[real], pairs.high[real]
    cols = [hi, bicubic(lo, model.cfg.scale), model(lo), F.interpolate(gen, scale_factor=float(model.cfg.scale),
                                                                       mode="nearest"),
            bicubic(gen, model.cfg.scale), model(gen)]
    n = min(len(c) for c in cols)
    tiles = torch.cat([torch.cat([c[i] for c in cols], dim=2) for i in range(n)], dim=1)
    img = ((tiles.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)  # the format from the suffix (.jpg keeps the docs small)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`python -m training upsampler`'s options."""
    p.add_argument("--out", required=True, help="the upsampler's .safetensors (a .json sidecar is written beside it)")
    p.add_argument("--data", default="default-v4", help="data rendered at both resolutions (default: default-v4)")
    p.add_argument("--steps", type=int, default=UpsamplerTrainConfig.steps)
    p.add_argument("--w-grad", type=float, default=UpsamplerTrainConfig.w_grad,
                   help="weight of the L1 on image gradients beside the L1 on pixels")
    p.add_argument("--width", type=int, default=UpsamplerConfig.width, help="hidden channels")
    p.add_argument("--depth", type=int, default=UpsamplerConfig.depth, help="hidden 3x3 convolutions")
    p.add_argument("--generator", help="also judge this generator's photo-style outputs upsampled both ways, and time "
                   "it alone, with the upsampler, and at twice the side (in process, interleaved rounds)")
    p.add_argument("--grid", help="with --generator: an image of held-out photos (truth, bicubic, learned) beside the "
                   "generator's photo-style images (nearest, bicubic, learned); the format from the suffix")
    p.add_argument("--evaluate-only", action="store_true", help="measure the upsampler at --out, train nothing")
    p.add_argument("--output", help="also write the JSON report here")


def run(args: argparse.Namespace) -> int:
    """Train (unless --evaluate-only), then measure; the report is printed and written to --output."""
    out = Path(args.out)
    cfg = UpsamplerTrainConfig(data=args.data, steps=args.steps, w_grad=args.w_grad)
    if args.evaluate_only:
        model, _ = load_upsampler(out)
        model_cfg = model.cfg
    else:
        model_cfg = UpsamplerConfig(width=args.width, depth=args.depth)
    pairs = load_pairs(cfg.data, cfg.low, model_cfg.scale)  # loaded once: training, the report and the grid
    if not args.evaluate_only:
        model = train_upsampler(cfg, model_cfg, out, pairs=pairs)
    generator = Path(args.generator) if args.generator else None
    report = evaluate_upsampler(model, generator, pairs, args.data)
    if generator is not None:
        report["inference_cost"] = inference_cost(generator, model)
        if args.grid:
            comparison_grid(model, generator, Path(args.grid), pairs, data=args.data)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0
