"""What the client learns from the model config, the seed -> noise rule, and local request validation."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from urllib.parse import quote

import numpy as np

from sketchygan_client.errors import InvalidInput

MODEL_NAME = "sketchygan"
SCORER_NAME = MODEL_NAME + "_score"  # the class-confidence scorer beside the generator, when the server has one
# the CPU model's per-image output naming the checkpoint of the version that computed it (optional: GPU targets and
# older exports answer IMAGE only, and the receipt then names the config's checkpoint_sha256)
CHECKPOINT_OUTPUT = "CHECKPOINT"
DEFAULT_URL = "127.0.0.1:8001"  # where `make serve` listens


@dataclass(frozen=True)
class ModelInfo:
    """Contract values published as `parameters` in the model's config.pbtxt (docs/architecture.md, "Wire contract")."""

    name: str
    resolution: int
    noise_dim: int
    class_names: tuple[str, ...]
    max_batch_size: int
    checkpoint_sha256: str
    # the server's measured compute time for a request beyond its queue wait (start-up calibration); None when the
    # server publishes none (then the client keeps a fixed reserve)
    compute_reserve_s: float | None = None
    serving: dict | None = None  # the calibration's plan as published (runtime, layout, limits, measured costs)
    # the output styles the model draws, the default first (e.g. ("photo", "art")); () for a one-style model
    styles: tuple[str, ...] = ()
    # what computes the images: the CPU model's runtime (onnxruntime, openvino), else the backend or platform
    runtime: str = ""
    # the side of the IMAGE a request gets back: `resolution` (the sketch's side) unless the model upsamples inside
    # its graph (published as `image_resolution`); 0 here means "the same as resolution"
    image_resolution: int = 0
    # what the images are computed in: f32 or bf16 on CPU (the deployment's choice), fp16 on the GPU targets,
    # cpu-default for Triton's OpenVINO backend without bf16 (the plugin decides); "" when the server says nothing
    precision: str = ""
    instances: int = 1  # model instances that compute at once (the config's instance groups): a call split in this
    # many parts is computed in parallel

    def __post_init__(self) -> None:
        if not self.image_resolution:
            object.__setattr__(self, "image_resolution", self.resolution)

    @classmethod
    def from_config(cls, config: dict) -> "ModelInfo":
        """From tritonclient's `get_model_config(..., as_json=True)` (the 'config' object)."""
        cfg = config.get("config", config)
        params = {k: v.get("string_value", "") for k, v in cfg.get("parameters", {}).items()}
        missing = [k for k in ("resolution", "noise_dim", "class_names") if k not in params]
        if missing:
            raise InvalidInput(f"model {cfg.get('name')!r} does not publish contract parameters {missing}")
        reserve = params.get("compute_reserve_s")
        try:
            serving = json.loads(params["calibration"]) if "calibration" in params else None
        except ValueError:
            serving = None
        return cls(cfg.get("name", MODEL_NAME), int(params["resolution"]), int(params["noise_dim"]),
                   tuple(json.loads(params["class_names"])), int(cfg.get("max_batch_size", 0)),
                   params.get("checkpoint_sha256", ""), float(reserve) if reserve else None, serving,
                   tuple(json.loads(params["styles"])) if params.get("styles") else (),
                   params.get("runtime") or cfg.get("backend") or cfg.get("platform") or "",
                   int(params.get("image_resolution") or params["resolution"]), params.get("precision", ""),
                   max(1, sum(int(g.get("count", 1)) for g in cfg.get("instance_group", [])) or 1))

    def compute_s(self, images: int) -> float | None:
        """The server's measured time to compute one request of `images` (in chunks of its batch limit), from the
        calibration it publishes; None when it publishes none."""
        plan = self.serving or {}
        try:
            a, b, m = float(plan["per_image_s"]), float(plan["overhead_s"]), int(plan["batch_limit"])
        except (KeyError, TypeError, ValueError):
            return None
        return a * images + b * -(-images // max(1, m)) if a > 0 else None

    @property
    def default_style(self) -> str | None:
        return self.styles[0] if self.styles else None

    def style_index(self, style: str | int | None) -> int:
        """Style name or index -> index, validated; None is the model's default style (index 0)."""
        if style is None:
            return 0
        if not self.styles:
            if isinstance(style, (int, np.integer, str)) and not isinstance(style, bool) and str(style) == "0":
                return 0  # its only style
            raise InvalidInput(f"style {style!r} asked of a model that draws one style (it publishes no styles)")
        return _pick(style, self.styles, STYLE_ARG)

    def wire_class_id(self, cls: str | int, style: str | int | None = None) -> int:
        """The CLASS_ID sent: class + style x classes (docs/architecture.md, "Wire contract"); style 0 (the
        default) sends the plain class id, so callers that know no styles get the default style."""
        return self.class_id(cls) + len(self.class_names) * self.style_index(style)

    def class_id(self, cls: str | int) -> int:
        """Class name or id -> id, validated."""
        return _pick(cls, self.class_names, CLASS_ARG)

    def noise(self, seed: int | None = None, noise: np.ndarray | None = None) -> np.ndarray:
        """The request's NOISE: explicit (validated) or from the seed (a random seed when both are None)."""
        if noise is not None:
            if seed is not None:
                raise InvalidInput("pass either seed or noise, not both")
            arr = np.asarray(noise, dtype=np.float32).reshape(-1)
            if arr.shape != (self.noise_dim,):
                raise InvalidInput(f"noise has {arr.size} values; expected {self.noise_dim}")
            if not np.isfinite(arr).all():
                raise InvalidInput("noise contains NaN or Inf; expected finite values")
            return arr
        return noise_from_seed(np.random.SeedSequence().entropy % 2**63 if seed is None else seed, self.noise_dim)


@dataclass(frozen=True)
class _Argument:
    """How the errors about a class or style argument name it."""

    kind: str  # what the value names: "unknown class 'x'"
    number: str  # what an out-of-range number is called: "class id 9 is out of range"
    bound: str  # the name in the range it must be in: "expected 0 <= id < 8"
    index_word: str  # what a number of it is: "must be a name or an integer id"
    list_names: bool = False  # name the choices after an out-of-range number: "... < 2 (photo, art)"


CLASS_ARG = _Argument("class", "class id", "id", "id")
STYLE_ARG = _Argument("style", "style", "style", "index", list_names=True)


def _pick(value, names: tuple[str, ...], arg: _Argument) -> int:
    """A name of `names` or its index (an int or a string of digits) -> the index, or InvalidInput saying what
    was wrong: the one rule of class and style arguments."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if 0 <= int(value) < len(names):
            return int(value)
        listing = f" ({', '.join(names)})" if arg.list_names else ""
        raise InvalidInput(f"{arg.number} {int(value)} is out of range: expected 0 <= {arg.bound} < {len(names)}"
                           f"{listing}")
    if isinstance(value, str):
        if value in names:
            return names.index(value)
        if value.isdigit():
            return _pick(int(value), names, arg)
        raise InvalidInput(f"unknown {arg.kind} {value!r}; expected one of {list(names)}")
    raise InvalidInput(f"{arg.kind} must be a name or an integer {arg.index_word}, got {type(value).__name__}")


@dataclass(frozen=True)
class Receipt:
    """Which model made an image and how to make it again: the same sketch (by `sketch_sha256`), class, style and
    seed sent to a server of the same checkpoint, runtime and precision answer the same bytes."""

    model: str
    model_version: str  # the version of the model that answered (Triton's model_version)
    checkpoint_sha256: str
    runtime: str
    class_name: str
    style: str | None  # None: a one-style model
    seed: int
    sketch_sha256: str  # SHA-256 of the sketch as the model saw it (`sketch_digest`)
    # P(the image shows `class_name`) by the server's scorer (model sketchygan_score); None: the server has none
    class_confidence: float | None = None
    precision: str = ""  # what the image was computed in (ModelInfo.precision)

    def headers(self) -> dict[str, str]:
        """The receipt as HTTP headers (what the gateway answers with each image); the class is URL-quoted."""
        out = {"x-model": self.model, "x-model-version": self.model_version,
               "x-checkpoint-sha256": self.checkpoint_sha256, "x-runtime": self.runtime,
               "x-class": quote(self.class_name), "x-seed": str(self.seed), "x-sketch-sha256": self.sketch_sha256,
               "x-precision": self.precision}
        if self.style is not None:
            out["x-style"] = self.style
        if self.class_confidence is not None:
            out["x-class-confidence"] = f"{self.class_confidence:.4f}"
        return out

    def as_dict(self) -> dict:
        return asdict(self)


def sketch_digest(sketch: np.ndarray) -> str:
    """SHA-256 of a prepared sketch (uint8 [S, S], row-major bytes; `images.to_sketch` makes one from any image):
    the receipt's name for the drawing the model saw."""
    arr = np.ascontiguousarray(sketch, dtype=np.uint8)
    return hashlib.sha256(arr.tobytes()).hexdigest()


def noise_from_seed(seed: int, dim: int) -> np.ndarray:
    """The documented seed -> noise rule: numpy PCG64 `default_rng(seed).standard_normal(dim, float32)`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInput(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(int(seed)).standard_normal(dim, dtype=np.float32)
