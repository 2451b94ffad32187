"""The supervisor's control socket: how `python -m serving rollout | rollback | versions` reach a running server.

A Unix socket, not a TCP port: only the account that runs the server can connect (the socket is mode 0600 in a
0700 folder), nothing on the network can, and Triton's model-control API stays behind the random restricted key that
only the supervisor holds. One request per connection, a JSON line; the answer is JSON lines of progress
(`{"progress": "..."}`) and a last line `{"ok": true, ...}` or `{"ok": false, "error": "..."}`.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from pathlib import Path
from typing import Callable

log = logging.getLogger("sketchygan.control")

OPS = ("rollout", "promote", "rollback", "versions")


def default_socket(grpc_port: int) -> Path:
    """Where the supervisor serving gRPC on `grpc_port` listens for control (short: a Unix socket path must fit in
    108 bytes, which a path under a test's temp folder may not)."""
    folder = os.environ.get("SKETCHYGAN_CONTROL_DIR", f"/tmp/sketchygan-{os.getuid()}")
    return Path(folder) / f"control-{grpc_port}.sock"


def _private_dir(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"control folder {folder} belongs to another user (uid {st.st_uid}); pass another "
                              "--control-socket")
    os.chmod(folder, 0o700)


class ControlServer:
    """Serves `handle(op, request, progress)` on a Unix socket until `close()`; one request at a time (a second
    rollout waits for the first)."""

    def __init__(self, path: Path, handle: Callable[[str, dict, Callable[[str], None]], dict]) -> None:
        self.path = Path(path)
        _private_dir(self.path.parent)
        if self.path.exists():
            if _answers(self.path):
                raise OSError(f"another server's control socket answers at {self.path}")
            self.path.unlink()  # left by a killed supervisor
        lock = threading.Lock()

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                def send(obj: dict) -> None:
                    self.wfile.write((json.dumps(obj) + "\n").encode())
                    self.wfile.flush()
                try:
                    req = json.loads(self.rfile.readline(1 << 16) or b"{}")
                    op = req.get("op")
                    if op not in OPS:
                        send({"ok": False, "error": f"unknown op {op!r}; expected one of {list(OPS)}"})
                        return
                    with lock:
                        send({"ok": True, **handle(op, req, lambda m: send({"progress": m}))})
                except (BrokenPipeError, ConnectionResetError):
                    log.warning("control client went away")
                except Exception as e:  # noqa: BLE001 — the answer says what failed; the server goes on
                    try:
                        send({"ok": False, "error": str(e)})
                    except OSError:
                        pass

        old = os.umask(0o177)
        try:
            self._server = socketserver.ThreadingUnixStreamServer(str(self.path), Handler)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._thread = threading.Thread(target=self._server.serve_forever, name="control", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(str(path))
            return True
    except OSError:
        return False


def request(path: Path, req: dict, on_progress: Callable[[str], None] = print, timeout_s: float = 600.0) -> dict:
    """Send one request to the control socket at `path`; progress lines go to `on_progress`; the last answer is
    returned. OSError with what to do when nothing listens there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise OSError(f"no supervisor listens at {path} ({e.strerror}): is `python -m serving` running on this "
                          "machine with that gRPC port, as this user? (or pass its --control-socket)") from None
        s.sendall((json.dumps(req) + "\n").encode())
        with s.makefile("rb") as f:
            for line in f:
                msg = json.loads(line)
                if "progress" in msg:
                    on_progress(msg["progress"])
                else:
                    return msg
    return {"ok": False, "error": "the supervisor closed the connection without an answer"}
