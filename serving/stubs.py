"""The python-backend model processes ("stubs") under a tritonserver, found by their command lines, and whether
each can still serve: what the supervisor watches to restart a server whose model process died or froze."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

STUB_NAME = "triton_python_backend_stub"


@dataclass(frozen=True)
class Stub:
    """One python-backend model process: its pid, the model instance it runs (e.g. 'sketchygan_0_1') and the model
    version (its folder)."""

    pid: int
    model: str
    instance: str
    version: str = ""


def stubs_of(pid: int) -> list[Stub]:
    """The python-backend stubs under process `pid`, read from their command lines (model.py path, instance)."""
    found = []
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for p in children:
        try:
            if p.name() != STUB_NAME:
                continue
            argv = p.cmdline()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        if len(argv) > 8:  # stub, <repo>/<model>/<version>/model.py, shm region, sizes, parent pid, ..., instance
            found.append(Stub(p.pid, Path(argv[1]).parent.parent.name, argv[8], Path(argv[1]).parent.name))
    return found


def stub_problem(pid: int) -> str | None:
    """Why the model process `pid` cannot serve ('exited', 'stopped (SIGSTOP)'), or None while it is healthy."""
    try:
        status = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return "exited"
    if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        return "exited"
    if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
        return "stopped (SIGSTOP)"
    return None
