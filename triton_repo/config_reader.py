"""config.pbtxt read back: its text form, the contract a generated config publishes in its `parameters`, and the
serving limits it serves with (the inverses of config.py's writers)."""
from __future__ import annotations

import json

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_repo.contract import Contract
from triton_repo.precision import DEFAULT_PRECISION
from triton_repo.serving_config import Limits


def config_text(cfg: mc.ModelConfig) -> str:
    return text_format.MessageToString(cfg)


def parse_config(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def contract_from_config(cfg: mc.ModelConfig) -> Contract:
    """The contract a generated config publishes in its `parameters` (inverse of model_config)."""
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    side = int(params["resolution"])
    return Contract(side, int(params["noise_dim"]), tuple(json.loads(params["class_names"])),
                    params["checkpoint_sha256"], tuple(json.loads(params["styles"])) if "styles" in params else (),
                    int(params.get("image_resolution", side)) // side, params.get("upsampler_sha256", ""))


def read_limits(cfg: mc.ModelConfig) -> Limits:
    """The limits a config serves with (the inverse of `write_limits` for the CPU target)."""
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    preferred = list(cfg.dynamic_batching.preferred_batch_size)
    limit = preferred[0] if len(preferred) == 1 and preferred[0] < cfg.max_batch_size else cfg.max_batch_size
    policy = cfg.dynamic_batching.default_queue_policy
    return Limits(params.get("runtime", "onnxruntime"), sum(g.count for g in cfg.instance_group) or 1,
                  int(params.get("intra_op_threads", "1")), limit, policy.default_timeout_microseconds,
                  policy.max_queue_size, params.get("precision", DEFAULT_PRECISION))
