"""`python -m web`: the HTTP gateway and playground page on 127.0.0.1:8080, in front of a running tritonserver.

With `--serve-repository REPO` it first starts a supervised tritonserver on REPO (`python -m serving`, what
`make serve` runs) and stops it again when the gateway stops (Ctrl-C / SIGTERM): that is `make web`.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from serving.process import LOOPBACK_HOSTS, Child
from web.app import GatewayConfig, create_app
from web.auth import KEY_ENV, read_key


def _port(value: str) -> int:
    v = int(value)
    if not 0 < v < 65536:
        raise argparse.ArgumentTypeError(f"must be a TCP port 1..65535, got {v}")
    return v


def _target(value: str) -> str:
    """A gRPC target as the client accepts it (host:port, dns:///name:port, ipv4:a:p,b:p)."""
    from sketchygan_client.errors import InvalidInput
    from sketchygan_client.targets import parse
    try:
        parse(value)
    except InvalidInput as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _exit_on_sigterm(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def start_triton(repository: str, grpc_port: int, timeout_s: float) -> Child:
    """`python -m serving` on loopback as a child process (its output on this terminal); returns once the model is
    ready (or raises ServerError)."""
    from sketchygan_client import SketchClient
    child = Child("tritonserver", [sys.executable, "-m", "serving", "--repository", repository, "--grpc-port",
                                   str(grpc_port), "--timeout", str(timeout_s)], None).start()
    with SketchClient(f"127.0.0.1:{grpc_port}", timeout_s=2.0, retries=0) as probe:
        child.wait_until(probe.ready, timeout_s + 10, "ready to serve the model", poll_s=0.5)
    return child


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m web", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--triton", type=_target, default=GatewayConfig.triton,
                    help="tritonserver gRPC target: host:port, or every replica as dns:///name:port (a headless "
                         "Service) or ipv4:a:p,b:p; calls are balanced over them (default %(default)s)")
    ap.add_argument("--host", default="127.0.0.1", help="listen address (default loopback only)")
    ap.add_argument("--port", type=_port, default=8080)
    ap.add_argument("--timeout", type=float, default=GatewayConfig.timeout_s,
                    help="deadline of each call to tritonserver in seconds (504 after it)")
    ap.add_argument("--retries", type=int, default=GatewayConfig.retries,
                    help="retries while tritonserver is restarting, before answering 503")
    ap.add_argument("--max-body-mib", type=float, default=GatewayConfig.max_body_bytes / (1 << 20),
                    help="largest accepted sketch upload in MiB (413 above)")
    ap.add_argument("--serve-repository", metavar="REPO",
                    help="also start tritonserver on this model repository (gRPC port from --triton) and stop it "
                         "on exit")
    ap.add_argument("--serve-timeout", type=float, default=180.0, help="seconds to wait for that server's model")
    ap.add_argument("--tls-cert", help="PEM certificate: serve HTTPS (with --tls-key)")
    ap.add_argument("--tls-key", help="PEM private key of --tls-cert")
    ap.add_argument("--api-key-file", help="file whose first line is the API key every API call must send as "
                                           f"'Authorization: Bearer <key>' (or set {KEY_ENV}); the page and /healthz "
                                           "stay open")
    ap.add_argument("--canary-percent", type=float, default=GatewayConfig.canary_percent,
                    help="while the server serves two model versions (`python -m serving rollout --canary`), send "
                         "this share of the calls that name no version to the newer one and the rest to the older, "
                         "each pinned (default 0: every call to the newest)")
    ap.add_argument("--insecure", action="store_true",
                    help="allow a non-loopback --host with neither TLS nor an API key (anyone who reaches the port "
                         "can use the model, and what they send crosses the network in the clear)")
    ap.add_argument("--triton-tls-ca", help="PEM CA that signed tritonserver's certificate: call it over TLS")
    ap.add_argument("--triton-tls-cert", help="PEM certificate this gateway presents to tritonserver (mutual TLS)")
    ap.add_argument("--triton-tls-key", help="PEM private key of --triton-tls-cert")
    return ap


def exposed_without_protection(host: str, tls: bool, key: bool) -> str | None:
    """Why the gateway must not start as asked (a non-loopback address with neither TLS nor a key), or None."""
    if host in LOOPBACK_HOSTS or tls or key:
        return None
    return (f"--host {host} listens beyond this machine with neither TLS (--tls-cert/--tls-key) nor an API key "
            f"(--api-key-file or {KEY_ENV}): anyone who reaches the port could use the model, in the clear. Give "
            "one of them, or pass --insecure to accept that")


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    try:
        if bool(args.tls_cert) != bool(args.tls_key):
            raise ValueError("HTTPS needs both --tls-cert and --tls-key")
        for flag in ("tls_cert", "tls_key", "triton_tls_ca", "triton_tls_cert", "triton_tls_key"):
            path = getattr(args, flag)
            if path and not Path(path).is_file():
                raise ValueError(f"--{flag.replace('_', '-')} {path}: no such file (a PEM file is expected)")
        key = read_key(args.api_key_file)
        why = exposed_without_protection(args.host, bool(args.tls_cert), bool(key))
        if why and not args.insecure:
            raise ValueError(why)
        cfg = GatewayConfig(triton=args.triton, timeout_s=args.timeout, retries=args.retries,
                            max_body_bytes=int(args.max_body_mib * (1 << 20)), api_key=key,
                            canary_percent=args.canary_percent,
                            triton_tls_ca=args.triton_tls_ca, triton_tls_cert=args.triton_tls_cert,
                            triton_tls_key=args.triton_tls_key)
    except ValueError as e:
        ap.error(str(e))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    triton = None
    if args.serve_repository:
        host, _, port = args.triton.rpartition(":")
        if host not in LOOPBACK_HOSTS[:2]:  # tritonserver listens on 127.0.0.1 (IPv4) only
            ap.error(f"--serve-repository starts tritonserver on this machine: --triton must be 127.0.0.1:PORT, "
                     f"got {args.triton}")
        print(f"starting tritonserver on 127.0.0.1:{port} with {args.serve_repository} ...", flush=True)
        try:
            triton = start_triton(args.serve_repository, int(port), args.serve_timeout)
        except (RuntimeError, KeyboardInterrupt) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    import uvicorn
    # uvicorn restores the handlers it found and raises the signal that stopped it again: with SIGTERM's default
    # handler that ends the process on the spot, before `finally` stops the tritonserver started above (an orphaned
    # supervisor, which then restarts a killed tritonserver). As an exception, SIGTERM unwinds like Ctrl-C does.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    scheme = "https" if args.tls_cert else "http"
    print(f"playground: {scheme}://{args.host}:{args.port}/  (tritonserver {args.triton}"
          f"{'; API key required' if key else ''}; Ctrl-C stops)", flush=True)
    try:
        uvicorn.run(create_app(cfg), host=args.host, port=args.port, log_level="info", server_header=False,
                    timeout_graceful_shutdown=5, ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
    finally:
        if triton is not None:
            print("stopping tritonserver ...", flush=True)
            triton.stop(60)  # SIGTERM drains: accepted requests finish
    return 0


if __name__ == "__main__":
    sys.exit(main())
