"""The wire contract (docs/architecture.md, "Wire contract") as data: the one source that the ONNX graph, every
config.pbtxt and the trtexec script are generated from."""
from __future__ import annotations

from dataclasses import dataclass

MODEL_NAME = "sketchygan"
SKETCH, CLASS_ID, NOISE, IMAGE = "SKETCH", "CLASS_ID", "NOISE", "IMAGE"
# the CPU model's second output: per image, the SHA-256 of the checkpoint of the version that computed it
CHECKPOINT_OUTPUT = "CHECKPOINT"
CHECKPOINT_FILE = "checkpoint_sha256"  # in each version folder: what CHECKPOINT answers
# the class-confidence scorer beside the generator: (IMAGE, CLASS_ID = the plain class 0..C-1) -> CONFIDENCE, PROBS
SCORER_NAME = MODEL_NAME + "_score"
CONFIDENCE, PROBS = "CONFIDENCE", "PROBS"
NOISE_LIMIT = 8.0  # the graph clamps noise to +-8 (a standard normal never gets there in practice)
# The CPU backend rejects a request whose NOISE has |z| above this (published as the `noise_abs_max` parameter);
# P(|z| > 16) for a standard normal is ~1e-57, so only a wrong or hostile caller ever sends it.
NOISE_ABS_MAX = 16.0


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    dims: tuple[int, ...]  # without the batch dimension


@dataclass(frozen=True)
class Contract:
    resolution: int
    noise_dim: int
    class_names: tuple[str, ...]
    checkpoint_sha256: str
    styles: tuple[str, ...] = ()  # output styles, the default first; () for a one-style model
    upscale: int = 1  # IMAGE is upscale x the sketch's side (2: a learned 2x upsampler runs inside the graph)
    upsampler_sha256: str = ""  # the upsampler's weights, when upscale > 1

    def __post_init__(self) -> None:
        if self.upscale < 1:
            raise ValueError(f"Contract.upscale must be at least 1, got {self.upscale}")

    @property
    def image_resolution(self) -> int:
        """The side of the IMAGE a request gets back (the sketch's side is `resolution`)."""
        return self.resolution * self.upscale

    @property
    def num_labels(self) -> int:
        """Valid CLASS_ID values: class + style x classes (style 0, the default, is the plain class id)."""
        return len(self.class_names) * max(1, len(self.styles))

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        s = self.resolution
        return (TensorSpec(SKETCH, "uint8", (s, s)), TensorSpec(CLASS_ID, "int32", (1,)),
                TensorSpec(NOISE, "float32", (self.noise_dim,)))

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        s = self.image_resolution
        return (TensorSpec(IMAGE, "uint8", (s, s, 3)),)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class ScorerContract:
    """The scorer's tensors: an image as the generator answers it and the class asked for (the plain class id, no
    style) in; P(that class) and the probability of every class out. `resolution` is the side of the IMAGE it takes
    (the generator's image side); a scorer trained at a smaller side averages the image down to it in the graph."""

    resolution: int
    class_names: tuple[str, ...]
    scorer_sha256: str

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        s = self.resolution
        return (TensorSpec(IMAGE, "uint8", (s, s, 3)), TensorSpec(CLASS_ID, "int32", (1,)))

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec(CONFIDENCE, "float32", (1,)), TensorSpec(PROBS, "float32", (len(self.class_names),)))
