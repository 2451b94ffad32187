"""CPU seconds used by a process tree, read from /proc (Linux): shows where a shared machine's cores went
during a load run (the server's frontend, its backend stubs, the load generator)."""
from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after "(comm)", so index 0 is field 3 (state); None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def tree_cpu_seconds(root: int) -> dict[str, float]:
    """user + system CPU seconds of `root` and its live descendants, summed per command name
    (e.g. {"tritonserver": 12.1, "triton_python_b": 80.3}; the kernel truncates names to 15 characters)."""
    stats: dict[int, list[str]] = {}
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st:
                stats[int(entry.name)] = st
                children.setdefault(int(st[1]), []).append(int(entry.name))
    out: dict[str, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        st = stats.get(pid)
        if st:
            name = _comm(pid)
            out[name] = out.get(name, 0.0) + (int(st[11]) + int(st[12])) / _TICK  # utime, stime
        todo.extend(children.get(pid, []))
    return out
