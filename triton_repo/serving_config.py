"""What a model folder is written for, beside the contract: the targets, the serving `Limits` (one type for export's
defaults and the start-up calibration's measured values) and `ServingConfig` (request size cap, batching, limits, GPU
start point). config.py writes them into config.pbtxt, config_reader.py reads them back."""
from __future__ import annotations

from dataclasses import dataclass

from triton_repo.precision import DEFAULT_PRECISION, check_precision
from triton_repo.runtimes import CPU_RUNTIMES

TARGETS = ("cpu", "tensorrt", "onnxruntime-trt", "openvino")
GPU_TARGETS = ("tensorrt", "onnxruntime-trt")  # their instances are KIND_GPU


@dataclass(frozen=True)
class Limits:
    """The serving limits, one type for both of their sources: export writes these defaults (chosen by `make
    bench-serve` on 2 CPU cores, docs/benchmarks.md) and the start-up calibration writes measured ones (its `Plan` is
    these plus the evidence). `write_limits` is the one place they enter a config.pbtxt.

    - runtime: what the CPU model folder runs model.onnx with (in float32 OpenVINO is level with onnxruntime and its
      batches pay a little; the earlier "1.7-2x" was bfloat16 chosen by the plugin: docs/benchmarks.md);
    - instances x threads: two single-threaded instances (they keep serving when one model process dies);
    - batch_limit: the largest batch an instance computes (None: max_batch_size, and the config's own preferred
      sizes and queue delay stay);
    - the overload bounds (Triton's default_queue_policy): a bounded queue (full: refused at once, UNAVAILABLE), and
      a default queue timeout long enough for a full queue of the largest requests, so that a request whose caller
      names no timeout is never refused for waiting behind work the queue admitted (a closed loop of batches is slow,
      not overloaded). A caller may send a *shorter* timeout of its own and is judged by it (the project's client
      sends what is left of its deadline less the compute reserve; docs/reliability.md says what a plain caller
      should send). The fixed default: 64 requests of 32 images at ~140 images/s (`make bench-serve`'s float32 rate at
      16 clients on 2 cores, the 128 px model, 2026-12-07; it was 220 when OpenVINO computed bf16 unasked) are
      ~14.6 s of work, hence 15 s. 0 disables either bound (a timeout of 0 also ignores callers'
      timeouts: Triton applies a caller's timeout only when it is shorter than the default);
    - precision: what the model computes in (triton_repo/precision.py): f32, the same pixels on every CPU, or bf16
      (OpenVINO only, on CPUs that compute it natively)."""

    runtime: str = "openvino"
    instances: int = 2
    threads: int = 1
    batch_limit: int | None = None
    queue_timeout_us: int = 15_000_000
    max_queue_size: int = 64
    precision: str = DEFAULT_PRECISION

    def __post_init__(self) -> None:
        if self.runtime not in CPU_RUNTIMES:
            raise ValueError(f"Limits.runtime must be one of {list(CPU_RUNTIMES)}, got {self.runtime!r}")
        try:
            check_precision(self.precision, self.runtime)
        except ValueError as e:
            raise ValueError(f"Limits.precision: {e}") from None
        for name, ok, want in (("instances", self.instances >= 1, ">= 1"), ("threads", self.threads >= 1, ">= 1"),
                               ("batch_limit", self.batch_limit is None or self.batch_limit >= 1,
                                ">= 1 (or None: max_batch_size)"),
                               ("max_queue_size", self.max_queue_size >= 0, ">= 0 (0 = unbounded)"),
                               ("queue_timeout_us", self.queue_timeout_us >= 0, ">= 0 (0 = unbounded)")):
            if not ok:
                raise ValueError(f"Limits.{name} must be {want}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class ServingConfig:
    """What export writes into a model folder beside the contract: the request size cap, how eagerly to batch, the
    serving limits (`Limits`: runtime, instances x threads, batch limit, queue bounds) and the GPU targets' start
    point. Defaults: batches of whatever is queued when an instance frees up (no preferred sizes, no queue delay),
    chosen by `make bench-serve`: the most throughput at 16 clients among configs whose p50 at 1 client is no worse
    than onnxruntime's. On CPU these are what `python -m serving --calibrate off` serves; by default the start-up
    calibration (serving/calibrate.py) replaces the limits with values derived from the machine's measured speed."""

    max_batch_size: int = 32  # the largest request a client may send
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    limits: Limits = Limits()
    gpu_opt_batch_size: int = 8
    version: int = 1
    dynamic_batching: bool = True  # off only for the batching on/off benchmark
    cpu_pinning: bool = False  # openvino only: bind inference threads to cores (pinned instances share core 0)
    # (sketch, class, noise) -> image is a pure function: Triton's response cache answers a repeated request (the
    # playground's "more like this", a retried call) without computing it. Used only when the server is started
    # with a cache (`python -m serving --response-cache-mb`, tritonserver `--cache-config local,size=...`)
    response_cache: bool = True

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1 (dynamic batching needs batching), got "
                             f"{self.max_batch_size}")
        bad = [b for b in self.preferred_batch_sizes if not 1 <= b <= self.max_batch_size]
        if bad:
            raise ValueError(f"preferred batch sizes {bad} are outside 1..max_batch_size={self.max_batch_size}")
        if self.max_queue_delay_us < 0:
            raise ValueError(f"max_queue_delay_us must be >= 0, got {self.max_queue_delay_us!r}")
