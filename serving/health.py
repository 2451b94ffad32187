"""The supervisor's health endpoint: what load balancers, Kubernetes probes and Prometheus read."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


def serve_health(sup, address: str, port: int) -> ThreadingHTTPServer:
    """The supervisor's `/metrics` (its registry), `/ready` (200 with the health JSON while serving, else 503) and
    `/live` (503 once failed or stopped) on `address:port`, answered from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 — http.server's naming
            if self.path == "/metrics":
                body, ctype, code = generate_latest(sup.registry), CONTENT_TYPE_LATEST, 200
            elif self.path == "/ready":
                body, ctype = (json.dumps(sup.health(), indent=2) + "\n").encode(), "application/json"
                code = 200 if sup.ready else 503
            elif self.path == "/live":
                ok = sup.state not in ("failed", "stopped")
                body, ctype, code = f"{sup.state}\n".encode(), "text/plain", 200 if ok else 503
            else:
                body, ctype, code = b"not found: try /metrics, /ready, /live\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # probes every few seconds: keep them out of the log
            pass

    http = ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=http.serve_forever, args=(0.05,), name="supervisor-health", daemon=True).start()
    return http


def close_health(http: ThreadingHTTPServer | None) -> None:
    """Stop answering and release the port (None: nothing to close)."""
    if http is not None:
        http.shutdown()
        http.server_close()
