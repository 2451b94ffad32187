"""CPU seconds used by a process tree (psutil): shows where a shared machine's cores went during a load run (the
server's frontend, its backend stubs, the load generator); and the CPU conditions of overload runs (a server on a
core of its own, or on one shared with busy loops)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Iterator

import psutil

from serving.process import launch_command


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


# ---------------------------------------------------------------------------------------------- conditions
# How fast the server's cores are is part of an overload experiment: the conditions below put the server on a core
# of its own (callers on another core cannot starve it, as callers on other machines would not), or on a core shared
# with busy loops started before it (so its start-up calibration sees the slow machine): two in shared-core (the chaos
# report's harshest), one in slowed-core (the condition of CI's second test pass).

CONDITIONS = ("unpinned", "own-core", "shared-core", "slowed-core")
CHAOS_CONDITIONS = CONDITIONS[:3]


@dataclass(frozen=True)
class Condition:
    """Where the server and the load generator run: `server_cpus`/`load_cpus` None = anywhere; `busy_loops` on
    the server's cores."""

    name: str
    server_cpus: tuple[int, ...] | None = None
    load_cpus: tuple[int, ...] | None = None
    busy_loops: int = 0


def condition(name: str) -> Condition:
    """The named condition on this machine's cores: the server gets the first core, the load generator the rest."""
    cores = sorted(os.sched_getaffinity(0))
    if name == "unpinned":
        return Condition(name)
    if name not in CONDITIONS:
        raise ValueError(f"unknown condition {name!r}; expected one of {list(CONDITIONS)}")
    if len(cores) < 2:
        raise ValueError(f"condition {name!r} needs 2 cores (server on one, load on the other); this process may "
                         f"use {cores}")
    loops = {"shared-core": 2, "slowed-core": 1}.get(name, 0)
    return Condition(name, (cores[0],), tuple(cores[1:]), loops)


def _threads_affinity(cpus: set[int]) -> dict[int, set[int]]:
    """Set every thread of this process to `cpus`; returns each thread's previous affinity."""
    before = {}
    for tid in map(int, os.listdir("/proc/self/task")):
        try:
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cpus)
        except OSError:  # the thread ended meanwhile
            continue
    return before


@contextlib.contextmanager
def pinned_process(cpus: tuple[int, ...] | None) -> Iterator[None]:
    """Run this process (every thread, and the threads they start) on `cpus` inside the block; None: unchanged."""
    if cpus is None:
        yield
        return
    before = _threads_affinity(set(cpus))
    try:
        yield
    finally:
        for tid in map(int, os.listdir("/proc/self/task")):
            try:
                os.sched_setaffinity(tid, before.get(tid, before[os.getpid()]))
            except OSError:
                continue


@contextlib.contextmanager
def busy_loops(n: int, cpus: tuple[int, ...] | None) -> Iterator[list[int]]:
    """`n` processes spinning on `cpus` for the block (a slower machine, made on purpose); yields their pids."""
    procs = []
    try:
        for _ in range(n):  # on `cpus`, and ended with this process even if it is killed (serving's launcher)
            cmd = launch_command([sys.executable, "-c", "while True: pass"], cpus)
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_cpu_s(p.pid) < 0.05 for p in procs):
            time.sleep(0.02)  # spinning before anything is measured
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(10)


def _cpu_s(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0
