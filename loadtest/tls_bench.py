"""Mutual TLS against plain gRPC, side by side (`python -m loadtest tls`, `make bench-tls`).

Two tritonservers on the same exported repository and fixed config, both up at once: one plain, one requiring a
client certificate of a CA made for the run (loadtest/certs.py). The project's client at N clients drives each in
interleaved rounds (the machine drifts by ±10 % over minutes); throughput and p50/p99 pooled over the rounds, and
the ratios TLS / plain.
"""
from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path

from loadtest.loadgen import LoadResult, run_load
from loadtest.report import write_report
from serving.machine import cpu_facts
from triton_repo.folders import exported_onnx


def run_tls_bench(repository: Path, concurrency: int = 16, seconds: float = 8.0, rounds: int = 3) -> dict:
    from loadtest.certs import Authority
    from serving.process import free_port
    from serving.server import ServerConfig, TritonServer
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        ca = Authority(Path(tmp) / "pki")
        server, client = ca.leaf("server"), ca.leaf("client")
        configs = {"plain": {},
                   "mutual TLS": {"tls_cert": server.cert, "tls_key": server.key, "tls_client_ca": ca.pem.cert}}
        tls = {"plain": None, "mutual TLS": {"root_certificates": str(ca.pem.cert),
                                            "certificate_chain": str(client.cert), "private_key": str(client.key)}}
        servers = {}
        for name, kw in configs.items():
            cfg = ServerConfig(repository=repository, grpc_port=free_port(), metrics_port=free_port(), **kw)
            servers[name] = stack.enter_context(TritonServer(cfg, log_path=Path(tmp) / f"{len(servers)}.log"))
        runs: dict[str, list[LoadResult]] = {name: [] for name in servers}
        for r in range(rounds):
            for name, srv in servers.items():
                print(f"  round {r + 1}/{rounds}: {name}", flush=True)
                runs[name].append(run_load(srv.grpc_url, srv.metrics_url, concurrency, seconds,
                                           server_pid=srv.proc.pid, tls=tls[name]))
    pooled = {name: LoadResult.pooled(rs).summary() for name, rs in runs.items()}
    plain, mtls = pooled["plain"], pooled["mutual TLS"]
    return {"machine": cpu_facts(flags=False), "date": time.strftime("%Y-%m-%d"), "concurrency": concurrency,
            "seconds": seconds, "rounds": rounds, "pooled": pooled,
            "ratios": {"throughput": round(mtls["throughput_rps"] / plain["throughput_rps"], 3),
                       "p50": round(mtls["p50_ms"] / plain["p50_ms"], 3),
                       "p99": round(mtls["p99_ms"] / plain["p99_ms"], 3)}}


def markdown(report: dict) -> str:
    m = report["machine"]
    rows = [f"{m['model']} ({m['isa']}, {m['cores']} cores), {report['date']}, {report['concurrency']} clients, "
            f"{report['rounds']} interleaved rounds of {report['seconds']:g} s:", "",
            "| gRPC | req/s | p50 ms | p99 ms |", "|---|---|---|---|"]
    rows += [f"| {k} | {p['throughput_rps']} | {p['p50_ms']} | {p['p99_ms']} |" for k, p in report["pooled"].items()]
    r = report["ratios"]
    rows += ["", f"mutual TLS / plain: throughput {r['throughput']}×, p50 {r['p50']}×, p99 {r['p99']}×"]
    return "\n".join(rows)


def add_arguments(p) -> None:
    """`python -m loadtest tls`'s options."""
    p.add_argument("--repository", default="model_repository")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="docs/benchmarks", help="tls.json and tls.md go here")


def run(args) -> int:
    """Measure, write tls.json / tls.md, print the table."""
    for name, ok, want in (("--concurrency", args.concurrency >= 1, ">= 1"), ("--seconds", args.seconds >= 2, ">= 2"),
                           ("--rounds", args.rounds >= 1, ">= 1")):
        if not ok:
            print(f"error: {name} must be {want}, got {getattr(args, name[2:])}", file=sys.stderr)
            return 2
    try:
        exported_onnx(args.repository)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_report(run_tls_bench(Path(args.repository), args.concurrency, args.seconds, args.rounds), args.out, "tls",
                 markdown)
    return 0
