"""The SketchyGAN training loop: one D step then one G step per iteration, EMA generator, exact resume, DDP.

Run state lives in `<out>/`: checkpoint.safetensors/.json (full state), generator.safetensors/.json (EMA G only),
losses.csv + losses.png, samples/step_XXXXXX.png, config.txt. Launch with torchrun for DistributedDataParallel.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training import checkpoint as ckpt
from training import losses
from training.config import ModelConfig, TrainConfig, describe, to_dict, train_config_from_dict
from training.data import PairedData
from training.diffaugment import augment
from training.discriminator import Discriminator
from training.edges import HumanStrokes
from training.generator import Generator
from training.optim import ema_update, param_groups
from training.reporting import append_loss_row, plot_losses, sample_grid, truncate_loss_rows
from training.sampler import Batch, BatchSampler
from training.tensors import to_tensors


@dataclass(frozen=True)
class RunOptions:
    """Where a run writes and how it starts (everything about the model and optimisation is in the configs)."""

    out: Path
    preset: str = "cpu"
    resume: bool = False
    perceptual_weights: Path | None = None
    data_spec: str = "default"
    progress: bool = True
    init_from: Path | None = None  # warm start: weights + optimiser state of another run, new train config
    finetune_from: Path | None = None  # fine-tune: a generator.safetensors (any data, same classes), fresh D, step 0


def noise_for(seed: int, step: int, rank: int, batch: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent noise batches, a pure function of (seed, step, rank): resume replays them exactly."""
    g = torch.Generator().manual_seed(((seed * 1_000_003 + step) * 101 + rank) % (2**63))
    return torch.randn(batch, dim, generator=g), torch.randn(batch, dim, generator=g)


@torch.no_grad()
def recalibrate_bn(model: Generator, sampler: BatchSampler, steps: int, noise_dim: int, batches: int = 16) -> None:
    """Re-estimate running BN statistics for the EMA weights (cumulative average over fresh batches), so the
    inference-mode generator sees statistics of its own activations rather than the raw model's."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(batches):
        sketch, _, y = to_tensors(sampler.batch(10**9 + i, steps))
        z, _ = noise_for(0, 10**9 + i, 0, len(y), noise_dim)
        model(sketch, y, z)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


class Trainer:
    """Owns models, optimisers and the run folder. `run()` trains to cfg.steps from wherever the folder is."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, data: PairedData, opts: RunOptions) -> None:
        if data.resolution != model_cfg.resolution:
            raise ValueError(f"data is {data.resolution}px but the model is {model_cfg.resolution}px")
        if data.num_labels != model_cfg.num_classes:  # one conditioning row per class (and output style)
            model_cfg = dataclasses.replace(model_cfg, num_classes=data.num_labels)
        self.model_cfg, self.cfg, self.data, self.opts = model_cfg, cfg, data, opts
        self.out = Path(opts.out)
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.G, self.D = Generator(model_cfg), Discriminator(model_cfg)
        self.G_ema = copy.deepcopy(self.G).eval()
        for p in self.G_ema.parameters():
            p.requires_grad_(False)
        if cfg.channels_last:
            self.G, self.D = self.G.to(memory_format=torch.channels_last), self.D.to(memory_format=torch.channels_last)
        self.opt_g = torch.optim.Adam(param_groups(self.G, cfg.weight_decay_conv, cfg.weight_decay_fc), lr=cfg.lr_g,
                                      betas=cfg.betas)
        self.opt_d = torch.optim.Adam(param_groups(self.D, cfg.weight_decay_conv, cfg.weight_decay_fc), lr=cfg.lr_d,
                                      betas=cfg.betas)
        self.perceptual = None
        if opts.perceptual_weights:
            from training.perceptual_net import VGG16Features
            self.perceptual = VGG16Features.from_file(opts.perceptual_weights)
        self.sampler = BatchSampler(data, cfg.batch_size, seed=cfg.seed * 7919 + self.rank,
                                    start=cfg.curriculum_start, ramp=cfg.curriculum_ramp,
                                    strokes=HumanStrokes() if cfg.human_strokes else None)
        self.step = 0
        self.history: list[dict[str, Any]] = []  # warm starts this run descends from
        self.g_train, self.d_train = self.G, self.D
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            self.g_train, self.d_train = DDP(self.G), DDP(self.D)
        if cfg.compile:
            self.g_train, self.d_train = torch.compile(self.g_train), torch.compile(self.d_train)

    # ------------------------------------------------------------ state

    def meta(self) -> dict[str, Any]:
        return {"kind": "sketchygan", "model": to_dict(self.model_cfg), "train": to_dict(self.cfg),
                "class_names": self.data.class_names,
                **({"output_styles": self.data.output_styles} if self.data.output_styles else {}), "step": self.step,
                "data_fingerprint": self.data.fingerprint(), "data": self.opts.data_spec,
                "preset": self.opts.preset, "world_size": self.world, "history": self.history}

    def save(self) -> None:
        if self.rank != 0:
            return
        tensors = {f"generator.{k}": v for k, v in self.G.state_dict().items()}
        tensors |= {f"discriminator.{k}": v for k, v in self.D.state_dict().items()}
        tensors |= {f"ema.{k}": v for k, v in self.G_ema.state_dict().items()}
        tensors |= ckpt.optimizer_tensors(self.opt_g, "opt_g") | ckpt.optimizer_tensors(self.opt_d, "opt_d")
        ckpt.save(self.out / "checkpoint.safetensors", tensors, self.meta())
        # the inference generator: EMA weights with BN statistics re-estimated for those weights
        g = copy.deepcopy(self.G_ema)
        recalibrate_bn(g, self.sampler, self.cfg.steps, self.model_cfg.noise_dim)
        ckpt.save(self.out / "generator.safetensors", {f"ema.{k}": v for k, v in g.state_dict().items()}, self.meta())

    def restore(self, path: Path | None = None, same_train_config: bool = True) -> None:
        """Load a full training state. Resume (`same_train_config`) demands the run's settings; a warm start
        (`--init-from`) keeps the model/data checks only and continues the step count with the new settings."""
        path = path or self.out / "checkpoint.safetensors"
        tensors, meta = ckpt.load(path)
        if meta.get("model") != to_dict(self.model_cfg):
            raise ckpt.CheckpointError(f"cannot resume {path}: it was written for model {meta.get('model')}, this run "
                                       f"is {to_dict(self.model_cfg)}")
        if meta.get("data_fingerprint") != self.data.fingerprint():
            raise ckpt.CheckpointError(f"cannot resume {path}: it was trained on different data (fingerprint "
                                       f"{str(meta.get('data_fingerprint'))[:12]}…, now "
                                       f"{self.data.fingerprint()[:12]}…)")
        old = train_config_from_dict(meta.get("train", {}))
        if same_train_config and dataclasses.replace(old, steps=self.cfg.steps) != self.cfg:
            raise ckpt.CheckpointError(f"cannot resume {path}: training settings differ from the run's "
                                       f"(only --steps may change on resume)")
        ckpt.load_state(self.G, tensors, "generator", path)
        ckpt.load_state(self.D, tensors, "discriminator", path)
        ckpt.load_state(self.G_ema, tensors, "ema", path)
        ckpt.load_optimizer(self.opt_g, tensors, "opt_g")
        ckpt.load_optimizer(self.opt_d, tensors, "opt_d")
        self.step = int(meta["step"])
        self.history = list(meta.get("history", [])) + ([] if same_train_config else [
            {"init_from": str(path), "step": self.step, "sha256": meta["sha256"], "train": meta.get("train")}])

    def finetune(self, path: Path) -> None:
        """Start G (and its EMA) from a trained generator, possibly trained on other data with the same classes;
        D and both optimisers start fresh and the step count starts at 0 (the schedule is this run's)."""
        g, meta = ckpt.load_generator(path)
        if list(meta.get("class_names", [])) != list(self.data.class_names):
            raise ckpt.CheckpointError(f"cannot fine-tune from {path}: its classes {meta.get('class_names')} differ "
                                       f"from the data's {self.data.class_names} (class ids must mean the same)")
        src_styles = len(meta.get("output_styles", [])) or 1
        n_styles = len(self.data.output_styles) or 1
        if src_styles not in (1, n_styles):
            raise ckpt.CheckpointError(f"cannot fine-tune from {path}: it draws styles {meta.get('output_styles')}, "
                                       f"the data has {self.data.output_styles or 'one style'}")
        # the same model, or a one-style generator that starts every style of this one (training/styles.py)
        expect = (self.model_cfg if src_styles == n_styles else
                  dataclasses.replace(self.model_cfg, num_classes=len(self.data.class_names)))
        if g.cfg != expect:
            raise ckpt.CheckpointError(f"{path} was trained with {g.cfg}, expected {expect}")
        state = g.state_dict()
        if src_styles != n_styles:
            from training.styles import expand_state
            state = expand_state(state, len(self.data.class_names), n_styles)
        self.G.load_state_dict(state)
        self.G_ema.load_state_dict(state)
        self.history = list(meta.get("history", [])) + [
            {"finetune_from": str(path), "sha256": meta["sha256"], "step": int(meta.get("step", 0)),
             "data": meta.get("data"), "train": meta.get("train")}]

    # ------------------------------------------------------------ loop

    def lr_mult(self, step: int) -> float:
        return max(self.cfg.lr_floor, 1.0 - 0.9 * step / max(1, self.cfg.steps))

    def diversity_by_style(self, fake1: torch.Tensor, fake2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor,
                           y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The diversity term of each output style's items apart (logged, not trained on): shows which style
        spends it."""
        if not self.data.output_styles:
            return {}
        style = y // len(self.data.class_names)
        with torch.no_grad():
            return {f"div_{name}": losses.diversity(fake1[m], fake2[m], z1[m], z2[m], self.cfg.diversity_norm)
                    for k, name in enumerate(self.data.output_styles) if (m := style == k).any()}

    def cross_style_items(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(batch positions, default-style labels) of the items of other styles, when `w_cross_style` asks for
        them: the same class in style 0 (label = class, training/styles.py)."""
        if self.cfg.w_cross_style <= 0 or not self.data.output_styles:
            return None
        c = len(self.data.class_names)
        idx = torch.nonzero(y >= c).flatten()
        return (idx, y[idx] % c) if len(idx) else None

    def augment_generator(self) -> torch.Generator:
        """The random source of this step's augmentation: a function of (seed, step, rank), so that a resumed run
        augments exactly as an uninterrupted one."""
        return torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + self.step * 7_919 + self.rank * 13 + 1)
                                             % (1 << 62))

    def train_step(self, batch: Batch) -> dict[str, float]:
        cfg = self.cfg
        sketch, real, y = to_tensors(batch, cfg.channels_last)
        z1, z2 = noise_for(cfg.seed, self.step, self.rank, len(y), self.model_cfg.noise_dim)
        mult = self.lr_mult(self.step)
        for opt, base in ((self.opt_g, cfg.lr_g), (self.opt_d, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * mult
        cross = self.cross_style_items(y)
        n = len(y)
        # both noise draws (and the cross-style drawings) in one generator call (one BN batch, one DDP forward)
        g_in = [torch.cat([sketch, sketch]), torch.cat([y, y]), torch.cat([z1, z2])]
        cross_twice = cross is not None and cfg.cross_style_diversity  # both noise draws of the crossed drawings
        cross_draws = 2 if cross_twice else 1
        if cross is not None:
            idx, y_cross = cross
            zc = [z1[idx], z2[idx]][:cross_draws]
            g_in = [torch.cat([g_in[0]] + [sketch[idx]] * cross_draws), torch.cat([g_in[1]] + [y_cross] * cross_draws),
                    torch.cat([g_in[2], *zc])]
        fakes = self.g_train(*g_in)
        m = len(cross[0]) if cross is not None else 0
        fake1, fake2, fake_cross = fakes[:n], fakes[n:2 * n], fakes[2 * n:2 * n + m]
        # the cross-style drawings' second draw: without it nothing asks their seeds to differ
        div_cross = (losses.diversity(fake_cross, fakes[2 * n + m:], *zc, cfg.diversity_norm, cfg.diversity_cap)
                     if cross_twice else torch.zeros(()))

        # D step: real and fakes in one forward (D has no batch statistics, so concatenation changes nothing)
        gen = self.augment_generator()
        d_in = torch.cat([real, fake1.detach(), fake_cross.detach()])
        if cfg.diff_augment:  # every image D sees, real and fake, through the same kind of random transform
            (d_in,) = augment(d_in, policy=cfg.diff_augment, generator=gen)
        logits, cls = self.d_train(d_in)
        real_logits, fake_logits = logits[:n], logits[n:]
        d_gan = losses.gan_loss_d(real_logits, fake_logits)
        d_ac = losses.focal_ce(cls[:n], y, cfg.focal_gamma)
        self.opt_d.zero_grad(set_to_none=True)
        (d_gan + cfg.w_ac_real * d_ac).backward()
        self.opt_d.step()

        # G step against the updated D (D's own parameters frozen: only input gradients are needed)
        self.D.requires_grad_(False)
        d_fake1, d_real, d_cross = fake1, real, fake_cross
        if cfg.diff_augment:  # a fake and its real through the same transform, so that feature matching pairs them
            d_fake1, d_real = augment(fake1, real, policy=cfg.diff_augment, generator=gen)
            if len(fake_cross):
                (d_cross,) = augment(fake_cross, policy=cfg.diff_augment, generator=gen)
        f_logits, f_cls, f_feats = self.D(torch.cat([d_fake1, d_cross]), return_features=True)
        g_gan = losses.gan_loss_g(f_logits[:n])
        g_ac = F.cross_entropy(f_cls[:n], y)
        l1 = losses.l1(fake1, real) if cfg.l1_draw == "first" else losses.l1_nearest(fake1, fake2, real)
        if self.perceptual is not None:
            perc = losses.perceptual(self.perceptual, fake1, real)
        else:
            with torch.no_grad():
                _, _, r_feats = self.D(d_real, return_features=True)
            perc = losses.feature_matching(r_feats, [f[:n] for f in f_feats])
        div = losses.diversity(fake1, fake2, z1, z2, cfg.diversity_norm, cfg.diversity_cap)
        cross_loss = torch.zeros(())
        if cross is not None:
            cross_loss = losses.gan_loss_g(f_logits[n:]) + cfg.w_ac_fake * F.cross_entropy(f_cls[n:], cross[1])
        loss_g = (g_gan + cfg.w_ac_fake * g_ac + cfg.w_l1 * l1 + cfg.w_perceptual * perc + cfg.w_diversity * div
                  + cfg.w_cross_style * cross_loss + cfg.w_diversity * div_cross)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        ema_update(self.G_ema, self.G, cfg.ema_decay)
        vals = {"d_gan": d_gan, "d_ac": d_ac, "g_gan": g_gan, "g_ac": g_ac, "l1": l1, "perceptual": perc,
                "diversity": div, **({"cross": cross_loss} if cross is not None else {}),
                **({"div_cross": div_cross} if cross_twice else {}),
                **self.diversity_by_style(fake1, fake2, z1, z2, y)}
        out = {k: float(v.detach()) for k, v in vals.items()}
        if not all(math.isfinite(v) for v in out.values()):
            raise FloatingPointError(f"non-finite loss at step {self.step}: {out}")
        out["lr_mult"] = mult
        return out

    def run(self, until: int | None = None) -> dict[str, float]:
        """Train to cfg.steps (or stop early at `until`, checkpointing there, as an interruption would)."""
        cfg, out = self.cfg, self.out
        stop = cfg.steps if until is None else min(until, cfg.steps)
        if self.rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.txt").write_text(describe(self.model_cfg, cfg, self.opts.preset) + "\n")
        if self.opts.resume:
            self.restore()
        elif (out / "checkpoint.safetensors").exists():
            raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        elif self.opts.init_from:
            self.restore(Path(self.opts.init_from), same_train_config=False)
        elif self.opts.finetune_from:
            self.finetune(Path(self.opts.finetune_from))
        self.started_at = self.step
        csv_path = out / "losses.csv"
        if self.rank == 0:
            truncate_loss_rows(csv_path, self.step)
        if self.rank == 0 and self.step == 0:
            print(describe(self.model_cfg, cfg, self.opts.preset), flush=True)
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.opts.progress or self.rank != 0,
                   desc="train", dynamic_ncols=True)
        last: dict[str, float] = {}
        t0, n0 = time.perf_counter(), self.step
        while self.step < stop:
            last = self.train_step(self.sampler.batch(self.step, cfg.steps))
            self.step += 1
            done = self.step
            ips = (done - n0) * cfg.batch_size * self.world / max(1e-9, time.perf_counter() - t0)
            last["img_per_s"] = ips
            if self.rank == 0:
                if done % cfg.log_every == 0 or done == stop:
                    append_loss_row(csv_path, {"step": done, **last})
                bar.set_postfix(d=f"{last['d_gan']:.2f}", g=f"{last['g_gan']:.2f}", l1=f"{last['l1']:.3f}",
                                ips=f"{ips:.1f}")
                bar.update(1)
                if done % cfg.sample_every == 0 or done == cfg.steps:
                    sample_grid(self.G_ema, self.data, out / "samples" / f"step_{done:06d}.png")
            if done % cfg.checkpoint_every == 0 or done == stop:
                self.save()
                if self.rank == 0 and csv_path.exists():
                    plot_losses(csv_path, out / "losses.png")
        bar.close()
        return last


def setup_distributed() -> None:
    """Join a torchrun process group (gloo on CPU) when WORLD_SIZE > 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
