"""Child-process plumbing shared by every server this project starts: free and busy ports, CPU lists, the launcher
that ties a child to its parent and cores, stopping a child, describing how one ended."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

LAUNCHER = Path(__file__).with_name("launcher.py")


class ServerError(RuntimeError):
    """A server could not be started or did not become ready; carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(args: list[str], cpus: tuple[int, ...] | None) -> list[str]:
    """`args` run through serving/launcher.py: dies with the calling thread's process, on `cpus` when given."""
    return [sys.executable, str(LAUNCHER), str(os.getpid()), ",".join(map(str, cpus or ())), *args]


def end_process(proc: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM a child that stops cleanly on it (HAProxy, Prometheus); SIGKILL it after `timeout_s`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def port_holder(address: str, port: int) -> str | None:
    """None when `port` can be listened on at `address`; else who holds it ('pid 123 tritonserver', or 'another
    process' when it cannot be told)."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener's TIME_WAIT leftovers do not count
        try:
            s.bind((address, port))
            return None
        except OSError:
            pass
    import psutil
    try:
        for c in psutil.net_connections("tcp"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                try:
                    return f"pid {c.pid} {psutil.Process(c.pid).name()}"
                except psutil.Error:
                    return f"pid {c.pid}"
    except psutil.Error:
        pass
    return "another process"


def check_ports_free(address: str, ports: dict[str, int]) -> None:
    """Refuse to start on a port something else listens on (its answers would pass for ours)."""
    busy = {what: (port, holder) for what, port in ports.items() if (holder := port_holder(address, port))}
    if busy:
        raise ServerError("cannot start: " + "; ".join(f"{what} port {address}:{port} is in use by {holder}"
                                                         for what, (port, holder) in busy.items())
                          + ". Stop that process or choose other ports.")


def parse_cpus(text: str | None) -> tuple[int, ...] | None:
    """'0', '0,1' or '0-3' -> (0, 1, ...); None or '' -> None."""
    if not text:
        return None
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            cpus |= set(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError(f"CPU list {text!r} is not like '0', '0,1' or '0-3'") from None
    return tuple(sorted(cpus))


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
