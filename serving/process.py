"""Child-process plumbing shared by every server this project starts: `Child` (start with the output in a log file,
wait until ready, log tail, stop), free and busy ports, CPU lists, the launcher that ties a child to its parent and
cores, describing how one ended. Standard library only (psutil when asked who holds a port), so that the gateway,
which imports nothing else of serving/, can start `python -m serving` with it too."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

LAUNCHER = Path(__file__).with_name("launcher.py")
# the names of this machine's loopback interface, as a HOST in HOST:PORT or a listen address may spell them
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


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


def _end_group(proc: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM the process group `proc` leads, wait up to `timeout_s` for `proc`, then SIGKILL what is left of the
    group (a server's helpers that outlived it)."""
    def signal_group(sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        signal_group(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
    signal_group(signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(5)


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


def file_tail(path: Path, n: int = 20) -> str:
    """The last `n` lines of a log file, or "(no log)" when it cannot be read."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


class Child:
    """One program run as a child process with its output appended to `log_path` (a file, never a pipe: a full pipe
    would block the child's logging; None: the caller's terminal). `start`, `wait_until(ready)`, `log_tail`, `stop`
    (SIGTERM, SIGKILL after a timeout); `new_session` puts it in a process group of its own, so a Ctrl-C meant for
    the caller skips it;
    `stop_group` (with `new_session`) signals that whole group on stop, the children it started included."""

    def __init__(self, name: str, cmd: list[str], log_path: Path | None, new_session: bool = False,
                 cwd: Path | None = None, env: dict[str, str] | None = None, stop_group: bool = False) -> None:
        if stop_group and not new_session:
            raise ValueError("stop_group needs new_session (the child must lead a process group of its own)")
        self.name, self.cmd, self.new_session, self.cwd, self.env = name, list(cmd), new_session, cwd, env
        self.stop_group = stop_group
        self.log_path = None if log_path is None else Path(log_path)
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._read_to = 0  # how far `fatal_line` has read the log: it starts where this start's output begins

    def start(self) -> "Child":
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")
            self._read_to = self.log_path.stat().st_size
        self.proc = subprocess.Popen(self.cmd, stdout=self._log,
                                     stderr=None if self._log is None else subprocess.STDOUT,
                                     start_new_session=self.new_session, cwd=self.cwd, env=self.env)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout_s: float, what: str = "ready",
                   poll_s: float = 0.05, fatal: tuple[str, ...] = ()) -> "Child":
        """Poll `ready()` until it is true; ServerError with the log's tail if the child exits first, if its log
        shows a line containing one of `fatal` (a failure it would not recover from, nor exit on), or `timeout_s`
        passes (the child is then stopped in the last two cases)."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            if not self.running:
                code = None if self.proc is None else self.proc.returncode
                raise ServerError(f"{self.name} exited ({describe_exit(code)}) before it was {what}:\n"
                                  f"{self.log_tail()}")
            line = self.fatal_line(fatal)
            if line is not None:
                self.stop(5)
                raise ServerError(f"{self.name} cannot become {what}: {line.strip()}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop(5)
                raise ServerError(f"{self.name} was not {what} within {timeout_s:g} s:\n{self.log_tail()}")
            time.sleep(poll_s)
        return self

    def fatal_line(self, fatal: tuple[str, ...]) -> str | None:
        """The first line this start wrote to the log that contains one of `fatal`, reading on from the last call."""
        if not fatal or self.log_path is None:
            return None
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._read_to)
                text = f.read()
        except OSError:
            return None
        end = text.rfind(b"\n") + 1  # a line still being written is read whole next time
        self._read_to += end
        return next((line for line in text[:end].decode(errors="replace").splitlines()
                     if any(m in line for m in fatal)), None)

    def log_tail(self, n: int = 20) -> str:
        return "(its output is above)" if self.log_path is None else file_tail(self.log_path, n)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (every child here stops cleanly on it: tritonserver drains, uvicorn and HAProxy finish), SIGKILL
        after `timeout_s`; returns the exit status (None if it was never started)."""
        if self.proc is None:
            return None
        if self.stop_group:
            _end_group(self.proc, timeout_s)
        else:
            end_process(self.proc, timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def __enter__(self) -> "Child":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
