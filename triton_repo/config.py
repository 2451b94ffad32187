"""config.pbtxt and Triton model folders from one source of truth (`Contract` + `ServingConfig`, whose serving
`Limits` are also what calibration writes), never hand-edited, and read back (`parse_config`, `contract_from_config`,
`read_limits`).

Targets:
- `cpu`: `backend: "python"` + onnxruntime or OpenVINO (`model.py` from triton_repo/served_model.py), KIND_CPU; what
  `make serve` serves from `model_repository/`, with the supervisor's drain barrier `sketchygan_drain/` beside it;
- `tensorrt`: `platform: "tensorrt_plan"`, KIND_GPU; the plan is built on the target GPU by the folder's
  `build_engine.sh` (the trtexec script export/tensorrt_build.py generates, passed in as an extra file);
- `onnxruntime-trt`: `platform: "onnxruntime_onnx"` with the TensorRT execution accelerator in FP16 and an
  engine cache, KIND_GPU;
- `openvino`: `backend: "openvino"`, Triton's native OpenVINO backend reading model.onnx (no python stub), KIND_CPU:
  for CPU production deployments in NVIDIA's container, which ships that backend.
Production targets go to their own repository folders: Triton loads every folder of a repository, and a GPU model
next to the CPU one would stop a CPU server from starting.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_repo.contract import MODEL_NAME, NOISE_ABS_MAX, SCORER_NAME, Contract, ScorerContract
from triton_repo.runtimes import CPU_RUNTIMES

TARGETS = ("cpu", "tensorrt", "onnxruntime-trt", "openvino")
GPU_TARGETS = ("tensorrt", "onnxruntime-trt")  # their instances are KIND_GPU
_TYPES = {"uint8": mc.TYPE_UINT8, "int32": mc.TYPE_INT32, "float32": mc.TYPE_FP32}


@dataclass(frozen=True)
class Limits:
    """The serving limits, one type for both of their sources: export writes these defaults (chosen by `make
    bench-serve` on 2 CPU cores, docs/benchmarks.md) and the start-up calibration writes measured ones (its `Plan` is
    these plus the evidence). `write_limits` is the one place they enter a config.pbtxt.

    - runtime: what the CPU model folder runs model.onnx with (OpenVINO: 1.7-2x faster in process here);
    - instances x threads: two single-threaded instances (they keep serving when one model process dies);
    - batch_limit: the largest batch an instance computes (None: max_batch_size, and the config's own preferred
      sizes and queue delay stay);
    - the overload bounds (Triton's default_queue_policy): a bounded queue (full: refused at once, UNAVAILABLE), and
      a default queue timeout long enough for a full queue of the largest requests, so that a request whose caller
      names no timeout is never refused for waiting behind work the queue admitted (a closed loop of batches is slow,
      not overloaded). A caller may send a *shorter* timeout of its own and is judged by it (the project's client
      sends what is left of its deadline less the compute reserve; docs/reliability.md says what a plain caller
      should send). The fixed default: 64 requests of 32 images at ~220 images/s (`make bench-serve`'s rate on 2
      cores) are ~9 s of work, hence 10 s. 0 disables either bound (a timeout of 0 also ignores callers'
      timeouts: Triton applies a caller's timeout only when it is shorter than the default)."""

    runtime: str = "openvino"
    instances: int = 2
    threads: int = 1
    batch_limit: int | None = None
    queue_timeout_us: int = 10_000_000
    max_queue_size: int = 64

    def __post_init__(self) -> None:
        if self.runtime not in CPU_RUNTIMES:
            raise ValueError(f"Limits.runtime must be one of {list(CPU_RUNTIMES)}, got {self.runtime!r}")
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


def write_limits(cfg: mc.ModelConfig, limits: Limits) -> None:
    """Set `cfg` to `limits`, the one place they are written: CPU instances (and the python backend's runtime and
    threads, or the OpenVINO backend's streams), the dynamic batch limit (a preferred size with no queue delay makes
    Triton cut batches there, keeping the rest queued; max_batch_size, the largest request a client may send,
    stays) and the overload policy (a bounded queue; requests rejected, UNAVAILABLE, after the default timeout or a
    shorter one their caller sent). GPU instance groups are left as they are."""
    on_cpu = cfg.backend in ("python", "openvino")
    if on_cpu:
        del cfg.instance_group[:]
        cfg.instance_group.add(count=limits.instances, kind=mc.ModelInstanceGroup.KIND_CPU)
    params: dict[str, str] = {}
    if cfg.backend == "python":
        params |= {"runtime": limits.runtime, "intra_op_threads": str(limits.threads)}
    elif cfg.backend == "openvino":
        # the backend compiles the model once and gives each instance an infer request: one stream per instance,
        # each with the configured threads. It reads only its own keys (the contract's parameters are ignored).
        params |= {"NUM_STREAMS": str(limits.instances),
                   "INFERENCE_NUM_THREADS": str(limits.instances * limits.threads)}
    if cfg.HasField("dynamic_batching"):
        db = cfg.dynamic_batching
        if limits.batch_limit is not None:  # replaces how eagerly the config batched (preferred sizes, delay)
            limit = min(limits.batch_limit, cfg.max_batch_size)
            del db.preferred_batch_size[:]
            if limit < cfg.max_batch_size:
                db.preferred_batch_size.append(limit)
            db.max_queue_delay_microseconds = 0
            for w in cfg.model_warmup:
                w.batch_size = min(w.batch_size, limit)
            if cfg.backend == "python":
                params["batch_limit"] = str(limit)
        policy = db.default_queue_policy
        policy.timeout_action = mc.ModelQueuePolicy.REJECT
        policy.default_timeout_microseconds = limits.queue_timeout_us
        policy.allow_timeout_override = True
        policy.max_queue_size = limits.max_queue_size
    for k, v in params.items():
        cfg.parameters[k].string_value = v


def read_limits(cfg: mc.ModelConfig) -> Limits:
    """The limits a config serves with (the inverse of `write_limits` for the CPU target)."""
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    preferred = list(cfg.dynamic_batching.preferred_batch_size)
    limit = preferred[0] if len(preferred) == 1 and preferred[0] < cfg.max_batch_size else cfg.max_batch_size
    policy = cfg.dynamic_batching.default_queue_policy
    return Limits(params.get("runtime", "onnxruntime"), sum(g.count for g in cfg.instance_group) or 1,
                  int(params.get("intra_op_threads", "1")), limit, policy.default_timeout_microseconds,
                  policy.max_queue_size)


def _add_tensors(cfg: mc.ModelConfig, contract: Contract | ScorerContract) -> None:
    """The contract's inputs and outputs (dims without the batch dimension) into `cfg`."""
    for t in contract.inputs:
        cfg.input.add(name=t.name, data_type=_TYPES[t.dtype], dims=list(t.dims))
    for t in contract.outputs:
        cfg.output.add(name=t.name, data_type=_TYPES[t.dtype], dims=list(t.dims))


def _add_zero_warmup(cfg: mc.ModelConfig, contract: Contract | ScorerContract, name: str, batch_size: int) -> None:
    """A warm-up request of all-zero inputs (valid for both models), run once as the model loads."""
    warm = cfg.model_warmup.add(name=name, batch_size=batch_size, count=1)
    for t in contract.inputs:
        warm.inputs[t.name].data_type = _TYPES[t.dtype]
        warm.inputs[t.name].dims.extend(t.dims)
        warm.inputs[t.name].zero_data = True


def _set_runtime(cfg: mc.ModelConfig, target: str, gpu_platform: str) -> None:
    """What runs the model of `target`: the python backend (cpu), Triton's OpenVINO backend reading model.onnx
    (openvino), or `gpu_platform` (the GPU targets)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {list(TARGETS)}")
    if target == "cpu":
        cfg.backend = "python"
    elif target == "openvino":
        cfg.backend = "openvino"
        cfg.default_model_filename = "model.onnx"  # the backend reads ONNX directly (default: model.xml)
    else:
        cfg.platform = gpu_platform


def model_config(contract: Contract, serving: ServingConfig, target: str) -> mc.ModelConfig:
    """The config.pbtxt message of one target."""
    cfg = mc.ModelConfig(name=MODEL_NAME, max_batch_size=serving.max_batch_size)
    _set_runtime(cfg, target, "tensorrt_plan" if target == "tensorrt" else "onnxruntime_onnx")
    _add_tensors(cfg, contract)
    if serving.dynamic_batching:
        cfg.dynamic_batching.SetInParent()  # present even when every field keeps its default (no delay, no sizes)
        cfg.dynamic_batching.preferred_batch_size.extend(serving.preferred_batch_sizes)
        cfg.dynamic_batching.max_queue_delay_microseconds = serving.max_queue_delay_us
    cfg.response_cache.enable = serving.response_cache
    if target in GPU_TARGETS:
        cfg.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_GPU)
    cfg.version_policy.specific.versions.append(serving.version)
    # all-black sketch, class 0, zero noise: valid and deterministic
    _add_zero_warmup(cfg, contract, "blank_sketch_batch", min(serving.max_batch_size, 8))
    params = {
        "resolution": str(contract.resolution),
        "noise_dim": str(contract.noise_dim),
        "class_names": json.dumps(list(contract.class_names)),
        "checkpoint_sha256": contract.checkpoint_sha256,
        "noise_abs_max": f"{NOISE_ABS_MAX:g}",
    }
    if contract.styles:  # CLASS_ID = class + style x classes; style 0 is the default
        params["styles"] = json.dumps(list(contract.styles))
    if contract.upscale > 1:  # IMAGE is larger than SKETCH: a learned upsampler runs inside the graph
        params |= {"image_resolution": str(contract.image_resolution), "upsampler_sha256": contract.upsampler_sha256}
    if target == "cpu":
        params |= {"onnx_file": "model.onnx", "cpu_pinning": str(serving.cpu_pinning).lower()}
    for k, v in params.items():
        cfg.parameters[k].string_value = v
    write_limits(cfg, serving.limits)
    if target == "onnxruntime-trt":
        acc = cfg.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        acc.parameters["precision_mode"] = "FP16"
        acc.parameters["max_workspace_size_bytes"] = str(1 << 30)
        acc.parameters["trt_engine_cache_enable"] = "1"
        acc.parameters["trt_engine_cache_path"] = "/tmp/sketchygan_trt_cache"
    return cfg


def apply_plan(cfg: mc.ModelConfig, plan, openvino_cache: str | None = None) -> mc.ModelConfig:
    """A copy of the CPU target's `cfg` set to a start-up calibration's choices (`serving.plan.Plan`: the `Limits`
    it chose, see `write_limits`), with the measured cost as parameters for model.py and the clients.
    `openvino_cache`: a folder where model.py keeps OpenVINO's compiled model, so that a restart loads it in a
    fraction of the compile time."""
    out = mc.ModelConfig()
    out.CopyFrom(cfg)
    if out.backend != "python":
        raise ValueError(f"calibration applies to the CPU target (backend python), not {out.backend or out.platform}")
    write_limits(out, plan)
    params = {"cost_per_image_s": f"{plan.per_image_s:.6g}", "cost_overhead_s": f"{plan.overhead_s:.6g}",
              "compute_reserve_s": f"{plan.compute_reserve_s:.6g}", "calibration": plan.to_json()}
    if openvino_cache:
        params["openvino_cache_dir"] = str(openvino_cache)
    for k, v in params.items():
        out.parameters[k].string_value = v
    return out


def config_text(cfg: mc.ModelConfig) -> str:
    return text_format.MessageToString(cfg)


def parse_config(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


DRAIN_MODEL = MODEL_NAME + "_drain"


def drain_model_config() -> mc.ModelConfig:
    """config.pbtxt of the drain-barrier model (triton_repo/drain_model.py): one instance, batches of one, one TOKEN."""
    cfg = mc.ModelConfig(name=DRAIN_MODEL, backend="python", max_batch_size=1)
    cfg.input.add(name="TOKEN", data_type=mc.TYPE_STRING, dims=[1])
    cfg.output.add(name="UNUSED", data_type=mc.TYPE_BOOL, dims=[1])
    # Triton counts as in flight only requests in a dynamic batcher's queue: the queued barriers need one
    cfg.dynamic_batching.SetInParent()
    cfg.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_CPU)
    return cfg


def write_drain_folder(repo: Path) -> Path:
    """Write `<repo>/sketchygan_drain/` beside the CPU model: what lets the supervisor drain without NOT_FOUND."""
    folder = Path(repo) / DRAIN_MODEL
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(config_text(drain_model_config()))
    shutil.copyfile(Path(__file__).with_name("drain_model.py"), folder / "1" / "model.py")
    return folder


def contract_from_config(cfg: mc.ModelConfig) -> Contract:
    """The contract a generated config publishes in its `parameters` (inverse of model_config)."""
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    side = int(params["resolution"])
    return Contract(side, int(params["noise_dim"]), tuple(json.loads(params["class_names"])),
                    params["checkpoint_sha256"], tuple(json.loads(params["styles"])) if "styles" in params else (),
                    int(params.get("image_resolution", side)) // side, params.get("upsampler_sha256", ""))


def _swap_in(repo: Path, name: str, fill) -> Path:
    """`<repo>/<name>/` written atomically: `fill(folder)` builds it in a temp folder, which then replaces the old."""
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    if not os.access(repo, os.W_OK):
        raise PermissionError(f"output folder {repo} is not writable")
    final = repo / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=repo))
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        if final.exists():
            old = repo / f".{name}-old-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_model_folder(repo: Path, target: str, contract: Contract, serving: ServingConfig, onnx_path: Path,
                       extra_files: dict[str, str] | None = None) -> Path:
    """Write `<repo>/sketchygan/` for `target` atomically: built in a temp folder, then swapped into place."""

    def fill(tmp: Path) -> None:
        vdir = tmp / str(serving.version)
        vdir.mkdir()
        (tmp / "config.pbtxt").write_text(config_text(model_config(contract, serving, target)))
        if target == "cpu":
            shutil.copyfile(onnx_path, vdir / "model.onnx")
            shutil.copyfile(Path(__file__).with_name("served_model.py"), vdir / "model.py")
        elif target in ("onnxruntime-trt", "openvino"):
            shutil.copyfile(onnx_path, vdir / "model.onnx")
        else:  # tensorrt: the plan is built on the target GPU from model.onnx by the caller's build_engine.sh
            if "build_engine.sh" not in (extra_files or {}):
                raise ValueError("the tensorrt target needs its build_engine.sh (export/tensorrt_build.py) in "
                                 "extra_files")
            shutil.copyfile(onnx_path, tmp / "model.onnx")  # input of build_engine.sh, outside the version folder
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
            if name.endswith(".sh"):
                (tmp / name).chmod(0o755)

    final = _swap_in(repo, MODEL_NAME, fill)
    if target == "cpu":
        write_drain_folder(repo)
    return final


def scorer_model_config(contract: ScorerContract, max_batch_size: int, version: int = 1,
                        target: str = "cpu") -> mc.ModelConfig:
    """config.pbtxt of the class-confidence scorer: dynamic batching, the response cache on (a pure function), its
    contract in `parameters`. `cpu`: triton_repo/score_model.py, one single-threaded CPU instance (a few ms per batch
    of 32 here: the generator keeps the cores). The container targets run the same ONNX on a native backend, no
    python stub: onnxruntime on the GPU beside a `tensorrt` or `onnxruntime-trt` generator (the scorer is too small
    to repay an engine build), OpenVINO on CPU beside an `openvino` one; there the graph clamps an out-of-range
    CLASS_ID instead of refusing it."""
    cfg = mc.ModelConfig(name=SCORER_NAME, max_batch_size=max_batch_size)
    _set_runtime(cfg, target, "onnxruntime_onnx")
    _add_tensors(cfg, contract)
    cfg.dynamic_batching.SetInParent()
    kind = mc.ModelInstanceGroup.KIND_GPU if target in GPU_TARGETS else mc.ModelInstanceGroup.KIND_CPU
    cfg.instance_group.add(count=1, kind=kind)
    cfg.response_cache.enable = True
    cfg.version_policy.specific.versions.append(version)
    _add_zero_warmup(cfg, contract, "black_image", 1)
    params = {"resolution": str(contract.resolution), "class_names": json.dumps(list(contract.class_names)),
              "scorer_sha256": contract.scorer_sha256}
    if target == "cpu":
        params |= {"onnx_file": "model.onnx", "intra_op_threads": "1"}
    elif target == "openvino":  # one stream on one thread: the generator keeps the cores (as on the CPU target)
        params |= {"NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "1"}
    for k, v in params.items():
        cfg.parameters[k].string_value = v
    return cfg


def remove_scorer_folder(repo: Path) -> bool:
    """Remove `<repo>/sketchygan_score/` left by an earlier export (a repository exported without a scorer must not
    serve a stale one, perhaps of other classes); True if there was one."""
    folder = Path(repo) / SCORER_NAME
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


def write_scorer_folder(repo: Path, contract: ScorerContract, onnx_path: Path, max_batch_size: int,
                        extra_files: dict[str, str] | None = None, target: str = "cpu") -> Path:
    """Write `<repo>/sketchygan_score/` (config, score.onnx as model.onnx, and on `cpu` model.py) atomically."""

    def fill(tmp: Path) -> None:
        vdir = tmp / "1"
        vdir.mkdir()
        (tmp / "config.pbtxt").write_text(config_text(scorer_model_config(contract, max_batch_size, target=target)))
        shutil.copyfile(onnx_path, vdir / "model.onnx")
        if target == "cpu":
            shutil.copyfile(Path(__file__).with_name("score_model.py"), vdir / "model.py")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)

    return _swap_in(repo, SCORER_NAME, fill)
