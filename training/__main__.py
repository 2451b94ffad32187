"""`python -m training {train,evaluate,evaluate-styles,line-drawings,upsampler,compare,samples,scorer,score-report,
baseline,data,bench}`: the training package's command line."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from training import bench, style_eval, upsampler_train
from training import checkpoint as ckpt
from training.config import PRESETS, TrainConfig, preset


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="model/training preset (default: cpu)")
    p.add_argument("--data", default="default",
                   help="'default' (the shipped v1 model's emoji set), 'default-v2' (3 styles + OpenMoji line art), "
                        "'default-v3' (8 styles + OpenMoji, EmojiOne and Streamline line art), 'photos' (Tux Paint's "
                        "photo stamps), 'default-v4' (photos + default-v3 as two output styles), 'default-v5' "
                        "(default-v4 with the photos also paired with line drawings), a Sketchy root, or a "
                        "folder of <class>/<photo> images")
    p.add_argument("--resolution", type=int, help="override the preset's resolution (64, 128, 256)")
    p.add_argument("--steps", type=int, help="override the preset's number of iterations")
    p.add_argument("--batch-size", type=int, help="override the preset's batch size")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any training setting of the preset, e.g. --set w_diversity=4 (repeatable)")


def _overrides(pairs: list[str]) -> dict:
    """`--set KEY=VALUE` pairs -> TrainConfig fields, each value parsed as its field's type (bool: true/false)."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set expects KEY=VALUE with KEY one of {sorted(fields)}, got {pair!r}")
        current = getattr(TrainConfig(), key)
        try:
            if isinstance(current, bool):
                if text.lower() not in ("true", "false"):
                    raise ValueError("expected true or false")
                value = text.lower() == "true"
            elif isinstance(current, tuple):
                value = tuple(float(x) for x in text.split(","))
            else:
                value = type(current)(text)
        except ValueError as e:
            raise ValueError(f"--set {key}: cannot read {text!r} as {type(current).__name__} ({e})") from None
        out[key] = value
    return out


def _configs(args: argparse.Namespace):
    m, t = preset(args.preset)
    if args.resolution:
        m = dataclasses.replace(m, resolution=args.resolution)
    over = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size)) if v}
    if args.threads:
        over["num_threads"] = args.threads
    for k, v in over.items():
        if v <= 0:
            raise ValueError(f"--{k.replace('_', '-')} must be positive, got {v}")
    return m, dataclasses.replace(t, **over, **_overrides(getattr(args, "set", None) or []))


def _print_report(report: dict, output: str | None) -> None:
    """A command's JSON report, printed and, given `output`, written there."""
    text = json.dumps(report, indent=2)
    print(text)
    if output:
        Path(output).write_text(text + "\n")


def cmd_train(args: argparse.Namespace) -> int:
    from training.data import load_data
    from training.train import RunOptions, Trainer, setup_distributed
    setup_distributed()
    m, t = _configs(args)
    if args.channels_last:
        t = dataclasses.replace(t, channels_last=True)
    if args.compile:
        t = dataclasses.replace(t, compile=True)
    starts = [f for f, v in (("--resume", args.resume), ("--init-from", args.init_from),
                             ("--finetune-from", args.finetune_from)) if v]
    if len(starts) > 1:
        raise ValueError(f"{' and '.join(starts)} exclude each other: pick one starting point (--resume continues "
                         f"--out's own run, --init-from warm-starts from another run's checkpoint.safetensors, "
                         f"--finetune-from starts from a generator)")
    if args.finetune_from and not Path(args.finetune_from).is_file():
        raise FileNotFoundError(f"--finetune-from {args.finetune_from} is not a file")
    if args.perceptual_weights and not Path(args.perceptual_weights).is_file():
        raise FileNotFoundError(f"--perceptual-weights {args.perceptual_weights} is not a file")
    data = load_data(args.data, m.resolution)
    if data.skipped:
        print(f"skipped {data.skipped} unreadable images", file=sys.stderr)
    start = args.finetune_from or args.init_from or (Path(args.out) / "checkpoint.safetensors" if args.resume else None)
    start_meta = ckpt.sidecar_path(Path(start)) if start else None
    if start_meta and start_meta.is_file():  # class ids follow the starting checkpoint's class names (its sidecar;
        from training.data import align_classes  # the weights are read, and checked, once: by the trainer)
        names = json.loads(start_meta.read_text()).get("class_names")
        if names:
            data = align_classes(data, list(names))
    opts = RunOptions(out=Path(args.out), preset=args.preset, resume=args.resume, data_spec=args.data,
                      perceptual_weights=Path(args.perceptual_weights) if args.perceptual_weights else None,
                      progress=not args.no_progress, init_from=Path(args.init_from) if args.init_from else None,
                      finetune_from=Path(args.finetune_from) if args.finetune_from else None)
    if args.stop_at is not None and not 0 < args.stop_at <= t.steps:
        raise ValueError(f"--stop-at must be a step in 1..{t.steps} (the schedule's --steps), got {args.stop_at}")
    last = Trainer(m, t, data, opts).run(until=args.stop_at)
    print(json.dumps({"out": str(args.out), **{k: round(v, 4) for k, v in last.items()}}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_checkpoint
    report = evaluate_checkpoint(Path(args.checkpoint), data_spec=args.data, seeds=args.seeds, inputs=args.inputs,
                                 style=args.style)
    _print_report(report, args.output)
    return 0


def cmd_line_drawings(args: argparse.Namespace) -> int:
    from training.line_judge import line_likeness
    _print_report(line_likeness(), args.output)
    return 0


def cmd_scorer(args: argparse.Namespace) -> int:
    from training.data import load_data
    from training.scorer import ScorerConfig, save_scorer, train_scorer
    cfg = ScorerConfig(steps=args.steps, seed=args.seed)
    data = load_data(args.data, args.resolution)
    print(f"training the scorer: {len(data.split('train'))} training images, {len(data.class_names)} classes, "
          f"{cfg.steps} steps", file=sys.stderr)
    model, meta = train_scorer(data, cfg)
    meta["data"] = args.data
    save_scorer(Path(args.out), model, meta)
    print(json.dumps({"out": args.out, **meta}, indent=2))
    return 0


def cmd_score_report(args: argparse.Namespace) -> int:
    from training.scorer import score_vs_judge
    report = score_vs_judge(Path(args.checkpoint), Path(args.scorer), args.data, args.inputs, args.seeds, args.style)
    _print_report(report, args.output)
    return 0


def cmd_samples(args: argparse.Namespace) -> int:
    """Grid on hand-drawn-looking validation sketches (augmented edge maps of unseen objects), one per class."""
    import numpy as np

    from training.data import align_classes, load_data
    from training.evaluate import load_any_generator, validation_sketches
    from training.reporting import sample_grid
    g, meta = load_any_generator(Path(args.checkpoint))
    res = meta.get("model", meta.get("pix2pix", {})).get("resolution", 64)
    from training.styles import sketch_data
    data = align_classes(load_data(args.data or sketch_data(meta.get("data", "default"), args.inputs, args.style), res),
                         list(meta["class_names"]))
    if data.output_styles:
        raise ValueError("samples draw from one style's data: pass --data photos or --data default-v3 (and --style)")
    styles = list(meta.get("output_styles") or [])
    if args.style is not None and args.style not in styles:
        raise ValueError(f"--style {args.style!r}: this checkpoint draws {styles or 'one style'}")
    offset = styles.index(args.style) * len(data.class_names) if args.style else 0

    def rows_of(picked: list[int]) -> np.ndarray:  # the chosen style's conditioning rows for these items
        return data.labels[picked] + offset

    idx, sketches = validation_sketches(data, inputs=args.inputs)
    if args.per_class:  # rows grouped by class, in class order: a class template shows as a block of look-alikes
        order = [k for c in range(len(data.class_names))
                 for k in [k for k, i in enumerate(idx) if data.labels[i] == c][: args.per_class]]
        picked = [int(idx[k]) for k in order]
        sample_grid(g, data, Path(args.out), seeds=args.seeds, sketches=sketches[order], idx=picked,
                    cond_rows=rows_of(picked))
        print(f"wrote {args.out} ({len(order)} rows: up to {args.per_class} per class, in class order)")
        return 0
    picked: dict[int, int] = {}
    for k, i in enumerate(idx):
        picked.setdefault(int(data.labels[i]), k)
    order = list(picked.values())[: args.rows]
    chosen = [int(idx[k]) for k in order]
    sample_grid(g, data, Path(args.out), seeds=args.seeds, sketches=sketches[order], idx=chosen,
                cond_rows=rows_of(chosen))
    print(f"wrote {args.out}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from training.config import Pix2PixConfig
    from training.data import load_data
    from training.pix2pix import train_pix2pix
    m, t = _configs(args)
    data = load_data(args.data, m.resolution)
    cfg = Pix2PixConfig(steps=t.steps, batch_size=t.batch_size, num_threads=t.num_threads,
                        human_strokes=t.human_strokes)
    train_pix2pix(cfg, data, Path(args.out), data_spec=args.data, progress=not args.no_progress)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Summary of a dataset: images and line drawings per class and per source (style), and the split."""
    import numpy as np

    from training.data import load_data
    m, _ = _configs(args)
    d = load_data(args.data, m.resolution)
    has_line = np.zeros(len(d.photos), bool)
    has_line[d.sketch_photo] = True
    styles = d.styles if d.styles is not None else np.zeros(len(d.photos), np.int64)
    names = d.style_names or ["(one source)"]

    def counts(mask: np.ndarray) -> dict[str, int]:
        return {"images": int(mask.sum()), "line_drawings": int((mask & has_line).sum()),
                "validation_images": int((mask & d.val).sum()),
                "validation_line_drawings": int((mask & d.val & has_line).sum())}
    summary = {"photos": len(d.photos), "human_sketches": len(d.sketches), "classes": d.class_names,
               "train": int((~d.val).sum()), "val": int(d.val.sum()), "skipped": d.skipped,
               "per_class": {c: counts(d.labels == i) for i, c in enumerate(d.class_names)},
               "per_source": {s: counts(styles == i) for i, s in enumerate(names)},
               "fingerprint": d.fingerprint()}
    from training.data import EMOJI_DATA
    if args.data in EMOJI_DATA:
        from training.emoji_data import EmojiSpec, licences
        summary["licences"] = licences(EmojiSpec(**EMOJI_DATA[args.data]).styles)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """The ship rule (or, with `--rule keep`, the keep rule) of training/ship_rule.py on two evaluation reports;
    exit 0 only when the candidate passes."""
    from training.ship_rule import checks, keep_checks, table
    cand, base = (json.loads(Path(p).read_text()) for p in (args.candidate, args.shipped))
    rows = keep_checks(cand, base) if args.rule == "keep" else checks(cand, base)
    print(table(rows))
    ok = all(r.passed for r in rows)
    verdict = ("keeps the shipped quality", "does not keep it") if args.rule == "keep" else ("ships", "does not ship")
    print(verdict[0] if ok else f"{verdict[1]}: " + ", ".join(r.name for r in rows if not r.passed))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train SketchyGAN")
    _add_common(p)
    p.add_argument("--out", required=True, help="run folder (checkpoints, samples, losses)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--init-from", help="warm start from another run's checkpoint.safetensors (same model and data; "
                   "this run's training settings; the step count continues)")
    p.add_argument("--finetune-from", help="start the generator from a trained generator.safetensors (other data "
                   "allowed, same classes); fresh discriminator and optimisers, steps count from 0")
    p.add_argument("--perceptual-weights", help="local VGG16 weights (.safetensors) for the paper's perceptual loss")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the models")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="stop (and checkpoint) at STEP of the --steps "
                   "schedule, as an interruption would; --resume goes on from there")
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("evaluate", help="fidelity / recognisability / diversity of a generator checkpoint")
    p.add_argument("checkpoint", help="generator.safetensors (or a pix2pix baseline's)")
    p.add_argument("--data", default=None, help="dataset (default: the one recorded in the checkpoint; for a "
                   "checkpoint with styles, the line drawings' for thin, else the scored style's own)")
    p.add_argument("--seeds", type=int, default=4, help="noise seeds per sketch for the diversity metric")
    p.add_argument("--inputs", default="edges", choices=("edges", "thin"),
                   help="edges: augmented edge maps; thin: human line drawings as 1-2 px pen strokes (default-v2/v3)")
    p.add_argument("--style", default=None, help="a checkpoint with output styles: which to score (photo, art)")
    p.add_argument("--output", help="also write the JSON report here")
    p.set_defaults(fn=cmd_evaluate)
    p = sub.add_parser("evaluate-styles", help="every output style of a generator: photo-likeness, class top-1, "
                                               "thin-stroke fidelity, diversity (and the photo style's rule)")
    style_eval.add_arguments(p)
    p.set_defaults(fn=style_eval.run)
    p = sub.add_parser("line-drawings", help="which photo sketches look like real line drawings: the photos' edge "
                                             "maps or the line drawings made from them (training/line_drawing.py)")
    p.add_argument("--output", help="also write the JSON report here")
    p.set_defaults(fn=cmd_line_drawings)
    p = sub.add_parser("upsampler", help="train the learned 2x upsampler (64 -> 128 px) and measure it against "
                                         "bicubic on held-out images and on a generator's photo-style outputs")
    upsampler_train.add_arguments(p)
    p.set_defaults(fn=upsampler_train.run)
    p = sub.add_parser("scorer", help="train the class-confidence scorer served beside the generator (training "
                                      "images only)")
    p.add_argument("--data", default="default-v3", help="dataset (default: default-v3, the shipped scorer's: "
                   "emoji; default-v4 adds the photographs, default-v5 pairs them with line drawings too)")
    p.add_argument("--resolution", type=int, default=64, help="image size (the generator's resolution)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="checkpoints/scorer.safetensors")
    p.set_defaults(fn=cmd_scorer)
    p = sub.add_parser("score-report", help="how the scorer's confidence relates to the evaluation judge's top-1 on "
                                            "a generator's outputs for the validation sketches")
    p.add_argument("checkpoint", help="generator.safetensors")
    p.add_argument("--scorer", default="checkpoints/scorer.safetensors")
    p.add_argument("--data", default=None, help="dataset (default: the one recorded in the checkpoint; for a "
                   "checkpoint with styles, the line drawings' for thin, else the drawn style's own)")
    p.add_argument("--inputs", default="thin", choices=("edges", "thin"))
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--style", default=None, help="a checkpoint with output styles: which to score (photo, art; "
                   "default: its default style)")
    p.add_argument("--output", help="also write the JSON report here")
    p.set_defaults(fn=cmd_score_report)
    p = sub.add_parser("samples", help="sample grid of a checkpoint on validation sketches")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="PNG path")
    p.add_argument("--data", default=None, help="dataset (default: the checkpoint's; for a checkpoint with "
                   "styles, the line drawings' for thin, else the drawn style's own)")
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--inputs", default="edges", choices=("edges", "thin"), help="which validation sketches")
    p.add_argument("--per-class", type=int, default=0, metavar="N",
                   help="N rows of every class (instead of one row per class up to --rows)")
    p.add_argument("--style", default=None, help="output style to draw in (a checkpoint with styles: photo, art); "
                                                 "default: its default style")
    p.set_defaults(fn=cmd_samples)
    p = sub.add_parser("compare", help="the ship rule: a candidate's evaluation report against the shipped one's")
    p.add_argument("candidate", help="evaluation JSON of the candidate (python -m training evaluate --output)")
    p.add_argument("shipped", help="evaluation JSON of the shipped generator, same --data, --inputs and --seeds")
    p.add_argument("--rule", choices=("ship", "keep"), default="ship",
                   help="ship: better by the ship rule; keep: no worse than the noise allows (a style kept while "
                        "another is added)")
    p.set_defaults(fn=cmd_compare)
    p = sub.add_parser("baseline", help="train the pix2pix U-Net baseline on the same data")
    _add_common(p)
    p.add_argument("--out", required=True)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=cmd_baseline)
    p = sub.add_parser("data", help="load a dataset and print its summary")
    _add_common(p)
    p.set_defaults(fn=cmd_data)
    p = sub.add_parser("bench", help="training img/s: eager vs channels_last (vs torch.compile), side by side")
    bench.add_arguments(p)
    p.set_defaults(fn=bench.run)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
