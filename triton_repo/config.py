"""config.pbtxt from one source of truth (`Contract` + `ServingConfig`, whose serving `Limits` are also what calibration
writes), never hand-edited: the generator's config per target and `write_limits`, the one place limits enter a
config. Read back by config_reader.py; written into model folders by folders.py; the types in serving_config.py.

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

from tritonclient.grpc import model_config_pb2 as mc

from triton_repo.contract import CHECKPOINT_OUTPUT, MODEL_NAME, NOISE_ABS_MAX, SCORER_NAME, Contract, ScorerContract
from triton_repo.serving_config import GPU_TARGETS, TARGETS, Limits, ServingConfig

DRAIN_MODEL = MODEL_NAME + "_drain"
_TYPES = {"uint8": mc.TYPE_UINT8, "int32": mc.TYPE_INT32, "float32": mc.TYPE_FP32}


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
        params |= {"runtime": limits.runtime, "intra_op_threads": str(limits.threads), "precision": limits.precision}
    elif cfg.backend == "openvino":
        # the backend compiles the model once and gives each instance an infer request: one stream per instance,
        # each with the configured threads. It reads only its own keys (the contract's parameters are ignored).
        params |= {"NUM_STREAMS": str(limits.instances),
                   "INFERENCE_NUM_THREADS": str(limits.instances * limits.threads)}
        # it can ask for bfloat16 (HINT_BF16) but cannot pin float32: without the hint it computes in the plugin's
        # default, which is bfloat16 on a CPU with it natively; `precision` says so for the clients
        if limits.precision == "bf16":
            params |= {"HINT_BF16": "YES", "precision": "bf16"}
        else:
            params["precision"] = "cpu-default"
            if "HINT_BF16" in cfg.parameters:
                del cfg.parameters["HINT_BF16"]
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
        # model.py answers each image's checkpoint (its version folder's): receipts stay true while two versions serve
        cfg.output.add(name=CHECKPOINT_OUTPUT, data_type=mc.TYPE_STRING, dims=[1])
    elif target in GPU_TARGETS:  # TensorRT in FP16 (the engine keeps the layers that need it in FP32)
        params["precision"] = "fp16"
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


def drain_model_config() -> mc.ModelConfig:
    """config.pbtxt of the drain-barrier model (triton_repo/drain_model.py): one instance, batches of one, one TOKEN."""
    cfg = mc.ModelConfig(name=DRAIN_MODEL, backend="python", max_batch_size=1)
    cfg.input.add(name="TOKEN", data_type=mc.TYPE_STRING, dims=[1])
    cfg.output.add(name="UNUSED", data_type=mc.TYPE_BOOL, dims=[1])
    # Triton counts as in flight only requests in a dynamic batcher's queue: the queued barriers need one
    cfg.dynamic_batching.SetInParent()
    cfg.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_CPU)
    return cfg


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
