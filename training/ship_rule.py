"""The rule a candidate generator must meet to replace the shipped one, fixed before training.

Both are scored by `training/evaluate.py` on the same thin-stroke validation set with the same seeds and judge; the
candidate ships only when every check passes (and a person has looked at its per-class grids for class templates).
The class-template check reads the outputs' edge maps (`template_ratio_edges`, since the photo style): the pixel
ratio it replaced could not tell "one colour per class, shaped as drawn" from "one picture per class".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ShipRule:
    min_top1_gain: float = 0.05  # judge top-1 on generated images, absolute
    max_fidelity_loss: float = 0.03  # overall sketch fidelity may drop at most this much
    min_diversity: float = 0.05  # mean |difference| between seeds


@dataclass(frozen=True)
class Check:
    name: str
    candidate: float
    baseline: float
    needed: str
    passed: bool


@dataclass(frozen=True)
class KeepRule:
    """"At least as good" for a model that keeps a style it already had (the art style of a model that adds the photo
    style): no figure worse than the shipped one's by more than the evaluation's noise. 85 drawings x 4
    seeds = 340 judged images, so top-1 alone has a binomial standard error of about 0.5/sqrt(340) = 0.027; the
    tolerances are of that order (fixed before the photo-style model they judge was trained)."""
    max_top1_loss: float = 0.03
    max_fidelity_loss: float = 0.01
    max_worst_class_loss: float = 0.03  # ~10 drawings a class: the noisiest figure
    max_template_loss: float = 0.05
    min_diversity: float = 0.05


def _comparable(candidate: dict[str, Any], baseline: dict[str, Any]) -> None:
    for key in ("inputs", "n_validation", "seeds"):
        if candidate.get(key) != baseline.get(key):
            raise ValueError(f"reports are not comparable: {key} {candidate.get(key)!r} vs {baseline.get(key)!r}")


def _at_least(name: str, c: dict[str, Any], b: dict[str, Any], key: str, tolerance: float) -> Check:
    return Check(name, c[key], b[key], f">= {b[key] - tolerance:.4f}", c[key] >= b[key] - tolerance - 1e-9)


def keep_checks(candidate: dict[str, Any], baseline: dict[str, Any], rule: KeepRule = KeepRule()) -> list[Check]:
    """The keep rule's criteria on two evaluation reports of the same inputs (each figure within its tolerance)."""
    _comparable(candidate, baseline)
    c, b = candidate, baseline
    return [_at_least("judge top-1", c, b, "class_top1_generated", rule.max_top1_loss),
            _at_least("template ratio (edges)", c, b, "template_ratio_edges", rule.max_template_loss),
            _at_least("worst-class fidelity", c, b, "worst_class_fidelity", rule.max_worst_class_loss),
            _at_least("fidelity", c, b, "sketch_fidelity_f2px", rule.max_fidelity_loss),
            Check("seed diversity", c["diversity_mean_abs_diff"], b["diversity_mean_abs_diff"],
                  f">= {rule.min_diversity:.2f}", c["diversity_mean_abs_diff"] >= rule.min_diversity)]


def checks(candidate: dict[str, Any], baseline: dict[str, Any], rule: ShipRule = ShipRule()) -> list[Check]:
    """Every criterion of the rule on two evaluation reports of the same inputs."""
    _comparable(candidate, baseline)
    c, b = candidate, baseline
    return [
        Check("judge top-1", c["class_top1_generated"], b["class_top1_generated"],
              f">= {b['class_top1_generated'] + rule.min_top1_gain:.4f}",
              c["class_top1_generated"] >= b["class_top1_generated"] + rule.min_top1_gain - 1e-9),
        Check("template ratio (edges)", c["template_ratio_edges"], b["template_ratio_edges"],
              f"> {b['template_ratio_edges']:.4f}", c["template_ratio_edges"] > b["template_ratio_edges"]),
        Check("worst-class fidelity", c["worst_class_fidelity"], b["worst_class_fidelity"],
              f"> {b['worst_class_fidelity']:.4f}", c["worst_class_fidelity"] > b["worst_class_fidelity"]),
        Check("fidelity", c["sketch_fidelity_f2px"], b["sketch_fidelity_f2px"],
              f">= {b['sketch_fidelity_f2px'] - rule.max_fidelity_loss:.4f}",
              c["sketch_fidelity_f2px"] >= b["sketch_fidelity_f2px"] - rule.max_fidelity_loss - 1e-9),
        Check("seed diversity", c["diversity_mean_abs_diff"], b["diversity_mean_abs_diff"],
              f">= {rule.min_diversity:.2f}", c["diversity_mean_abs_diff"] >= rule.min_diversity),
    ]


def table(rows: list[Check]) -> str:
    """Markdown table of the checks."""
    out = ["| criterion | candidate | shipped | needed | passes |", "|---|---|---|---|---|"]
    out += [f"| {r.name} | {r.candidate:.4f} | {r.baseline:.4f} | {r.needed} | {'yes' if r.passed else 'NO'} |"
            for r in rows]
    return "\n".join(out)
