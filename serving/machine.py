"""The machine a server runs on, as calibration sees it: the usable cores (affinity capped by a cgroup CPU quota),
the CPU model and its widest vector extension, and the model file's digest — what a stored plan is keyed by."""
from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path


def cgroup_quota_cores(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPU cores allowed by the cgroup's quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def cpu_model_and_flags() -> tuple[str, str]:
    """(CPU model name, its flags) from /proc/cpuinfo (platform's answer / '' where it cannot be read)."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info.get("model name") or platform.processor() or "unknown", info.get("flags") or info.get("Features", "")


@dataclass(frozen=True)
class Machine:
    """What the measurements depend on; a restart reuses a plan only while this is unchanged."""

    cpu_model: str
    isa: str  # the widest vector extension: avx512, avx2, avx, neon, ...
    cpus: tuple[int, ...]  # the cores the server may run on (affinity)
    quota_cores: float | None  # cgroup CPU quota, None when unlimited
    onnx_sha256: str

    @property
    def usable_cores(self) -> float:
        n = float(len(self.cpus))
        return min(n, self.quota_cores) if self.quota_cores else n


def widest_isa(flags: str) -> str:
    have = set(flags.split())
    for isa in ("avx512f", "avx2", "avx", "asimd", "neon"):
        if isa in have:
            return isa.removesuffix("f")
    return "baseline"


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def cpu_facts(flags: bool = True) -> dict:
    """The CPU that figures were measured on, for reports: model, widest vector extension, cores (and its flags
    unless `flags` is False)."""
    name, all_flags = cpu_model_and_flags()
    facts = {"model": name, "isa": widest_isa(all_flags), "cores": len(os.sched_getaffinity(0))}
    return {**facts, "flags": all_flags} if flags else facts


def this_machine(onnx_path: Path, cpus: tuple[int, ...] | None = None) -> Machine:
    name, flags = cpu_model_and_flags()
    cores = tuple(sorted(cpus if cpus is not None else os.sched_getaffinity(0)))
    return Machine(name, widest_isa(flags), cores, cgroup_quota_cores(), file_sha256(onnx_path))
