"""The numerics a CPU deployment computes in: float32 (the default: the same pixels on every CPU) or bfloat16 (an
operator's explicit choice, ~1.5x the images/s where the CPU computes it natively). One name everywhere: the export's
and the server's `--precision`, config.pbtxt's `precision`, the client's `ModelInfo.precision` and receipt, the
`X-Precision` header and the `precision` label of `sketchygan_deployment_info`.

bfloat16 is only served on a CPU that computes it natively (AVX-512-BF16 or AMX): elsewhere OpenVINO emulates it,
slower than float32, or computes float32 after all. A bf16 deployment refuses to start there, with the CPU's name and
what it lacks, instead of serving float32 with a warning: every replica of a deployment must answer with the same
pixels and at the rate its capacity was planned for, and a warning in one replica's log on a mixed pool would hide
both (docs/benchmarks.md, "Precision")."""
from __future__ import annotations

PRECISIONS = ("f32", "bf16")
DEFAULT_PRECISION = "f32"
# /proc/cpuinfo flags of the x86 extensions that compute bfloat16 natively (OpenVINO's CPU plugin uses either)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
GATE_KEY = "precision_gate"  # where an export report (the model folder's export_report.json) keeps the gate's result


def native_bf16(flags: str) -> bool:
    """True when a CPU with these /proc/cpuinfo `flags` computes bfloat16 natively."""
    have = set(flags.split())
    return any(f in have for f in NATIVE_BF16_FLAGS)


def check_precision(precision: str, runtime: str) -> None:
    """ValueError unless `precision` is known and `runtime` can compute in it (bfloat16: OpenVINO only)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision != DEFAULT_PRECISION and runtime != "openvino":
        raise ValueError(f"precision {precision} is computed by OpenVINO only, but the runtime is {runtime!r}: serve "
                         f"with runtime openvino (--runtime openvino) or in {DEFAULT_PRECISION}")


def refusal(precision: str, cpu_model: str, flags: str) -> str | None:
    """Why a deployment in `precision` must not start on this CPU, or None when it may."""
    if precision != "bf16" or native_bf16(flags):
        return None
    return (f"precision bf16 refused: this CPU ({cpu_model}) has no native bfloat16 (neither of the CPU flags "
            f"{' / '.join(NATIVE_BF16_FLAGS)}), where OpenVINO would emulate it slower than float32; serve this "
            f"deployment in f32 (--precision f32), or run its bf16 replicas on CPUs with AVX-512-BF16 or AMX")


def gate_passed(report: dict | None, precision: str) -> bool:
    """Whether an export report says the model passed the export's gate in `precision` (export/precision_gate.py;
    f32, the reference, needs none)."""
    return precision == DEFAULT_PRECISION or bool(((report or {}).get(GATE_KEY) or {}).get(precision, {}).get("passed"))
