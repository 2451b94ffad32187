"""`python -m serving`: run tritonserver in the foreground with safe defaults until Ctrl-C / SIGTERM."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from serving.server import ServerConfig, ServerError, TritonServer, leftover_shm


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    ap.add_argument("--repository", default="model_repository", help="Triton model repository")
    ap.add_argument("--grpc-port", type=int, default=8001)
    ap.add_argument("--metrics-port", type=int, default=8002)
    ap.add_argument("--http", action="store_true", help="also open HTTP (off by default)")
    ap.add_argument("--http-port", type=int, default=8000)
    ap.add_argument("--address", default="127.0.0.1",
                    help="listen address for gRPC, metrics (and HTTP); default loopback only")
    ap.add_argument("--tls-cert", help="PEM certificate: serve gRPC over TLS")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--tritonserver", help="use this tritonserver binary (system or container install)")
    ap.add_argument("--restricted-key", default="admin-key",
                    help="header name guarding the admin gRPC APIs (sent as triton-grpc-protocol-<key>)")
    ap.add_argument("--restricted-value", help="secret for the admin APIs (default: random per start)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the model to be ready")
    args = ap.parse_args(argv)
    for name in ("grpc_port", "metrics_port", "http_port"):
        v = getattr(args, name)
        if not 0 < v < 65536:
            print(f"error: --{name.replace('_', '-')} must be a TCP port 1..65535, got {v}", file=sys.stderr)
            return 2
    cfg = ServerConfig(repository=Path(args.repository), grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                       http_port=args.http_port if args.http else None, address=args.address,
                       tritonserver=Path(args.tritonserver) if args.tritonserver else None,
                       restricted_key=args.restricted_key, restricted_value=args.restricted_value,
                       tls_cert=Path(args.tls_cert) if args.tls_cert else None,
                       tls_key=Path(args.tls_key) if args.tls_key else None)
    server = TritonServer(cfg, log_path=Path(".cache") / "tritonserver.log")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print(f"starting tritonserver on {args.address} (log: {server.log_path}) ...", flush=True)
        server.start(timeout_s=args.timeout)
    except (ServerError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"ready: gRPC {server.grpc_url}  metrics {server.metrics_url}"
          + (f"  HTTP {args.address}:{args.http_port}" if args.http else "  (HTTP off)"), flush=True)
    print(f"try:   sketchygan-client --url {server.grpc_url} generate sketch.png --class 0 --seed 7 -o photo.png",
          flush=True)
    print("Ctrl-C to stop", flush=True)
    while not stop.is_set():
        if server.proc is not None and server.proc.poll() is not None:
            print(f"tritonserver exited ({server.proc.returncode}):\n{server.log_tail()}", file=sys.stderr)
            server.stop()
            return 1
        stop.wait(0.5)
    print("stopping ...", flush=True)
    rc = server.stop()
    left = leftover_shm()
    print(f"stopped (exit {rc}){'; shared memory left: ' + ', '.join(left) if left else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
