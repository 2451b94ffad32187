"""`python -m serving`: run a supervised tritonserver in the foreground with safe defaults until Ctrl-C / SIGTERM.
`python -m serving prometheus`: a Prometheus on loopback scraping it (serving/prometheus.py).
`python -m serving calibrate`: measure this machine and print the plan serving would use (serving/calibrate.py).
`python -m serving rollout | promote | rollback | versions`: a new model version on the running server, a canary
(serving/rollout.py).

Dead model processes are replaced and a crashed server is restarted (serving/supervisor.py); SIGTERM drains:
accepted requests finish, new ones get UNAVAILABLE, exit 0.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from serving import rollout
from serving.control import default_socket
from serving.plan import CalibrationError
from serving.process import ServerError, parse_cpus
from serving.proxy import ProxyConfig
from serving.server import ServerConfig
from serving.supervisor import Supervisor, SupervisorConfig

DEFAULT_CACHE_MB = 64.0


def _port(value: str) -> int:
    v = int(value)
    if not 0 < v < 65536:
        raise argparse.ArgumentTypeError(f"must be a TCP port 1..65535, got {v}")
    return v


def _runtime_argument(p: argparse.ArgumentParser) -> None:
    from triton_repo.precision import PRECISIONS
    from triton_repo.runtimes import CPU_RUNTIMES
    p.add_argument("--runtime", choices=CPU_RUNTIMES,
                   help="the deployment's CPU runtime (default: the one the export chose, config.pbtxt's `runtime`); "
                        "it decides the pixels, so every replica of a deployment must use the same")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="what the deployment computes in (default: the export's choice, config.pbtxt's `precision`, "
                        "f32 when it names none): f32, the same pixels on every CPU; bf16, ~1.5x the images/s with "
                        "OpenVINO on a CPU with AVX-512-BF16 or AMX (refused on others). Every replica of a "
                        "deployment must use the same")


def _calibrate(args: argparse.Namespace) -> int:
    from serving.calibrate import calibrate
    try:
        if args.budget_ms <= 0:
            raise ValueError(f"--budget-ms must be > 0, got {args.budget_ms:g}")
        plan = calibrate(Path(args.repository), args.budget_ms / 1e3, parse_cpus(args.cpus), runtime=args.runtime,
                         precision=args.precision)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except CalibrationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(plan.to_json() if args.json else plan.summary())
    return 0


class _Signals:
    """SIGINT/SIGTERM received, as a plain attribute. Not a threading.Event: a handler calling Event.set() takes the
    Event's lock, and when the signal lands while the main thread holds that lock inside Event.wait() the process
    deadlocks and never stops (seen: a SIGTERM that did nothing)."""

    def __init__(self) -> None:
        self.received: int | None = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame) -> None:
        self.received = signum


def _proxy(args: argparse.Namespace) -> int:
    from serving.proxy import Proxy, Replica
    try:
        cfg = ProxyConfig(tuple(Replica.parse(r) for r in args.replica), address=args.address, port=args.port,
                          stats_port=args.stats_port, check_ms=args.check_ms)
        proxy = Proxy(cfg).start()
    except (ValueError, ServerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1
    signals = _Signals()
    print(f"proxy: gRPC {cfg.url} -> {', '.join(r.grpc for r in cfg.replicas)}  stats {cfg.stats_url}  "
          f"(config {proxy.config_path})", flush=True)
    print(f"try:   sketchygan-client --url {cfg.url} health", flush=True)
    while signals.received is None and proxy.child.running:
        time.sleep(0.2)
    code = proxy.child.proc.returncode
    proxy.stop()
    if code is not None:
        print(f"error: haproxy exited with code {code} (log {proxy.log_path})", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m serving", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="{prometheus,calibrate,proxy,rollout,promote,rollback,versions}",
                            help="without a command: serve (the options below)")
    p = sub.add_parser("prometheus", help="Prometheus on 127.0.0.1:9090 scraping Triton, clients and the supervisor")
    from serving import prometheus
    prometheus.add_arguments(p)
    p.set_defaults(fn=prometheus.run)
    p = sub.add_parser("calibrate", help="measure the served model on this machine and print the plan (no server)")
    p.add_argument("--repository", default="model_repository", help="Triton model repository (CPU target)")
    p.add_argument("--budget-ms", type=float, default=1e3 * SupervisorConfig.budget_s)
    p.add_argument("--cpus", help="measure on these cores only, e.g. 0 or 0-1")
    p.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    _runtime_argument(p)
    p.set_defaults(fn=_calibrate)
    p = sub.add_parser("proxy", help="HAProxy in front of replicas: one address for plain gRPC callers, every call "
                                     "balanced, replicas that are not ready skipped")
    p.add_argument("--replica", action="append", required=True, metavar="HOST:GRPC_PORT@HEALTH_PORT",
                   help="a replica's gRPC address and its supervisor's health port (repeat for each replica)")
    p.add_argument("--address", default="127.0.0.1", help="listen address (default loopback only)")
    p.add_argument("--port", type=_port, default=ProxyConfig.port, help="gRPC port callers connect to")
    p.add_argument("--stats-port", type=_port, default=ProxyConfig.stats_port,
                   help="HAProxy's stats (/stats) and Prometheus metrics (/metrics)")
    p.add_argument("--check-ms", type=int, default=ProxyConfig.check_ms, help="health-check interval (ms)")
    p.set_defaults(fn=_proxy)
    rollout.add_arguments(sub)
    ap.add_argument("--repository", default="model_repository", help="Triton model repository")
    ap.add_argument("--grpc-port", type=_port, default=8001)
    ap.add_argument("--metrics-port", type=_port, default=8002)
    ap.add_argument("--health-port", type=int, default=8003,
                    help="supervisor's /ready, /live and /metrics (restarts); 0 = off")
    ap.add_argument("--http", action="store_true", help="also open HTTP (off by default)")
    ap.add_argument("--http-port", type=_port, default=8000)
    ap.add_argument("--address", default="127.0.0.1",
                    help="listen address for gRPC, metrics, health (and HTTP); default loopback only")
    ap.add_argument("--tls-cert", help="PEM certificate: serve gRPC over TLS")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--tls-client-ca",
                    help="PEM CA certificate: mutual TLS, every gRPC caller must present a certificate it signed "
                         "(the supervisor's own calls present --tls-cert, which it must sign too)")
    ap.add_argument("--tritonserver", help="use this tritonserver binary (system or container install)")
    ap.add_argument("--restricted-key", default="admin-key",
                    help="header name guarding the admin gRPC APIs (sent as triton-grpc-protocol-<key>)")
    ap.add_argument("--restricted-value", help="secret for the admin APIs (default: random per start)")
    ap.add_argument("--timeout", type=float, default=SupervisorConfig.start_timeout_s,
                    help="seconds to wait for the model to be ready")
    ap.add_argument("--max-restarts", type=int, default=SupervisorConfig.crash_loop_restarts,
                    help="give up after this many server restarts within a minute")
    ap.add_argument("--drain-timeout", type=float, default=SupervisorConfig.drain_timeout_s,
                    help="on SIGTERM, seconds to let accepted requests finish before stopping anyway")
    ap.add_argument("--drain-grace", type=float, default=SupervisorConfig.drain_grace_s,
                    help="on SIGTERM, seconds to keep serving after /ready turns 503, so proxies and readiness probes "
                         "take this replica out of rotation first (default 0; behind a proxy: 2 health-check "
                         "intervals or more)")
    ap.add_argument("--calibrate", choices=("on", "off"), default="on",
                    help="on (default): measure the model on this machine at start (~10 s; none when an earlier start "
                         "on the same machine facts stored a plan: it is served at once and checked once the server is "
                         "idle) and serve limits derived from it; off: serve the exported config's fixed values "
                         "(reproducible benchmarks)")
    ap.add_argument("--budget-ms", type=float, default=1e3 * SupervisorConfig.budget_s,
                    help="latency budget of a request, queued + computed, that the calibrated limits keep "
                         f"(default {1e3 * SupervisorConfig.budget_s:.0f}: callers with 0.5 s deadlines are served)")
    ap.add_argument("--cpus", help="run tritonserver (and the calibration) on these cores only, e.g. 0 or 0,1 or 0-3 "
                                   "(default: every core this process may use)")
    ap.add_argument("--response-cache-mb", type=float, default=DEFAULT_CACHE_MB,
                    help="MiB of Triton's response cache: a repeated (sketch, class, noise) request is answered from "
                         f"memory, not computed (default {DEFAULT_CACHE_MB:g}, ~{int(DEFAULT_CACHE_MB * 80)} 64 px "
                         "images; 0: off)")
    ap.add_argument("--log", help="tritonserver's log file (default .cache/tritonserver-<grpc port>.log)")
    ap.add_argument("--calibration-cache", help="file where a start keeps its plan; the next start on the same cores, "
                                                "CPU quota, CPU and model serves it at once, checks it when idle and "
                                                "removes it if it no longer holds (default .cache/calibration.json)")
    ap.add_argument("--control-socket",
                    help="Unix socket (mode 0600) where `python -m serving rollout | rollback | versions` reach this "
                         "server (default /tmp/sketchygan-<uid>/control-<gRPC port>.sock); 'none': no rollouts, and "
                         "tritonserver runs without model control")
    _runtime_argument(ap)
    args = ap.parse_args(argv)
    if args.command is not None:
        return args.fn(args)
    if args.runtime and args.calibrate == "off":
        ap.error("--runtime needs calibration: with --calibrate off the exported config is served as it is "
                 "(re-export with `python -m export --cpu-runtime` instead)")
    if args.precision and args.calibrate == "off":
        ap.error("--precision needs calibration: with --calibrate off the exported config is served as it is "
                 "(re-export with `python -m export --precision` instead)")
    if not 0 <= args.health_port < 65536:
        ap.error(f"--health-port must be a TCP port 1..65535 or 0 (off), got {args.health_port}")
    if args.response_cache_mb < 0:
        ap.error(f"--response-cache-mb must be >= 0 (0: no cache), got {args.response_cache_mb:g}")
    if args.budget_ms <= 0:
        ap.error(f"--budget-ms must be > 0 (the latency budget of a request), got {args.budget_ms:g}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sup_cfg = SupervisorConfig(start_timeout_s=args.timeout, crash_loop_restarts=args.max_restarts,
                                   drain_timeout_s=args.drain_timeout, drain_grace_s=args.drain_grace,
                                   health_port=args.health_port or None,
                                   calibrate=args.calibrate == "on", budget_s=args.budget_ms / 1e3,
                                   runtime=args.runtime, precision=args.precision,
                                   control_socket=None if args.control_socket == "none" else
                                   Path(args.control_socket or default_socket(args.grpc_port)),
                                   calibration_cache=Path(args.calibration_cache) if args.calibration_cache else None)
        cfg = ServerConfig(repository=Path(args.repository), grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                           http_port=args.http_port if args.http else None, address=args.address,
                           tritonserver=Path(args.tritonserver) if args.tritonserver else None,
                           restricted_key=args.restricted_key, restricted_value=args.restricted_value,
                           tls_cert=Path(args.tls_cert) if args.tls_cert else None,
                           tls_key=Path(args.tls_key) if args.tls_key else None,
                           tls_client_ca=Path(args.tls_client_ca) if args.tls_client_ca else None,
                           response_cache_bytes=int(args.response_cache_mb * (1 << 20)),
                           **({"cpus": parse_cpus(args.cpus)} if args.cpus else {}))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log_path = Path(args.log) if args.log else Path(".cache") / f"tritonserver-{args.grpc_port}.log"
    sup = Supervisor(cfg, sup_cfg, log_path=log_path)
    signals = _Signals()
    try:
        print(f"starting tritonserver on {args.address} (log: {sup.server.log_path})"
              + (" after measuring this machine ..." if sup_cfg.calibrate else " ..."), flush=True)
        sup.start()
    except (ServerError, CalibrationError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    srv = sup.server
    print(f"ready: gRPC {srv.grpc_url}  metrics {srv.metrics_url}"
          + (f"  health http://{args.address}:{args.health_port}/ready" if args.health_port else "")
          + (f"  HTTP {args.address}:{args.http_port}" if args.http else "  (HTTP off)"), flush=True)
    print(f"try:   sketchygan-client --url {srv.grpc_url} generate sketch.png --class 0 --seed 7 -o photo.png",
          flush=True)
    if sup_cfg.control_socket is not None:
        print(f"update the model: python -m serving rollout --checkpoint NEW.safetensors --url {srv.grpc_url} "
              f"(control socket {sup_cfg.control_socket})", flush=True)
    print("Ctrl-C to stop", flush=True)
    while signals.received is None and not sup.failed:
        time.sleep(0.05)
    if sup.failed:
        print(f"error: {sup.failed}", file=sys.stderr)
        sup.stop()
        return 1
    print("stopping: draining accepted requests ...", flush=True)
    rc = sup.stop()
    left = getattr(sup.server, "left_shm", [])
    print(f"stopped (tritonserver exit {rc}; {len(sup.events)} recoveries)"
          f"{'; shared memory left: ' + ', '.join(left) if left else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
