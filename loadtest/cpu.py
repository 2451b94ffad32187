"""CPU seconds used by a process tree (psutil): shows where a shared machine's cores went during a load run (the
server's frontend, its backend stubs, the load generator)."""
from __future__ import annotations

import psutil


def tree_cpu_seconds(root: int) -> dict[str, float]:
    """user + system CPU seconds of `root` and its live descendants, summed per process name
    (e.g. {"tritonserver": 12.1, "triton_python_backend_stub": 80.3}; psutil gives full names)."""
    out: dict[str, float] = {}
    try:
        top = psutil.Process(root)
        procs = [top] + top.children(recursive=True)
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            with p.oneshot():
                t = p.cpu_times()
                name = p.name()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        out[name] = out.get(name, 0.0) + t.user + t.system
    return out
