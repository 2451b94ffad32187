"""Every config type's check names the one field that is wrong, its value and what is expected — a message that
lists a whole group of fields leaves the reader to find which one it meant."""
import pytest

from export.torch_bench import TorchBenchConfig
from loadtest.chaos import ChaosConfig
from loadtest.restart import RestartConfig
from loadtest.rollout_bench import RolloutBenchConfig
from loadtest.scale import ScaleConfig
from serving.proxy import ProxyConfig, Replica
from serving.supervisor import SupervisorConfig
from training.config import ModelConfig
from training.scorer import ScorerConfig
from training.upsampler import UpsamplerConfig
from training.upsampler_train import UpsamplerTrainConfig
from triton_repo.serving_config import Limits
from web.app import GatewayConfig

REPLICAS = (Replica("127.0.0.1", 8001, 8003),)

CASES = [
    (SupervisorConfig, {}, "budget_s", 0, "> 0"),
    (SupervisorConfig, {}, "drain_timeout_s", -1.0, "> 0"),
    (SupervisorConfig, {}, "drain_grace_s", -0.5, ">= 0"),
    (GatewayConfig, {}, "timeout_s", 0, "> 0"),
    (GatewayConfig, {}, "retries", -1, ">= 0"),
    (GatewayConfig, {}, "max_body_bytes", 0, "> 0"),
    (GatewayConfig, {}, "retry_after_s", -2, ">= 0"),
    (GatewayConfig, {}, "canary_percent", 101.0, "0..100"),
    (ChaosConfig, {}, "overload_clients", 1, ">= 2"),
    (ChaosConfig, {}, "soak_s", -1.0, ">= 0"),
    (ChaosConfig, {}, "capacity_s", 0.0, "> 0"),
    (ScaleConfig, {}, "replicas", 1, ">= 2"),
    (ScaleConfig, {}, "phase_s", 5.0, ">= 6"),
    (RestartConfig, {}, "settle_s", 0.0, "> 0"),
    (RestartConfig, {}, "rounds", 0, ">= 1"),
    (ProxyConfig, {"replicas": REPLICAS}, "connect_timeout_ms", 5, ">= 10"),
    (ProxyConfig, {"replicas": REPLICAS}, "retries", -1, ">= 0"),
    (ModelConfig, {}, "noise_dim", 0, ">= 1"),
    (ModelConfig, {}, "resolution", 48, "a power of two >= 32"),
    (UpsamplerConfig, {}, "depth", 0, "at least 1"),
    (Limits, {}, "instances", 0, ">= 1"),
    (Limits, {}, "threads", 0, ">= 1"),
    (Limits, {}, "queue_timeout_us", -1, ">= 0"),
    (ScorerConfig, {}, "width", 0, ">= 1"),
    (TorchBenchConfig, {"device": "cpu"}, "warmup", -1, ">= 0"),
    (UpsamplerTrainConfig, {}, "batch_size", 0, "at least 1"),
    (RolloutBenchConfig, {}, "callers", 0, ">= 1"),
    (RolloutBenchConfig, {}, "quiet_s", 1.0, ">= 2"),
]


@pytest.mark.parametrize("cls, base, field, value, want", CASES,
                         ids=[f"{c[0].__name__}.{c[2]}" for c in CASES])
def test_one_bad_field_gives_a_message_naming_it_its_value_and_what_is_expected(cls, base, field, value, want):
    with pytest.raises(ValueError) as err:
        cls(**base, **{field: value})
    message = str(err.value)
    assert f"{cls.__name__}.{field} must be {want}" in message and f"got {value!r}" in message, message
    others = [f for f in cls.__dataclass_fields__ if f != field and f"{f}=" in message]
    assert not others, f"the message names other fields too: {others}"
