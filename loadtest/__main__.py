"""`python -m loadtest {locust,sweep,compare,precision,runtimes,chaos,closed-loop,gateway,cache,batch,scale,restart,
rollout,tls}`:
headless Locust runs, concurrency sweeps, repositories side by side, f32 and bf16 deployments side by side
(loadtest/precision_bench.py), the in-process runtime table, fault injection,
closed loops of batch callers (loadtest/closed_loop.py), the HTTP gateway's cost against a real server, the response
cache, the client's batch job against one call per image, scale-out over replicas (loadtest/scale.py) and timed
graceful restarts (loadtest/restart.py), a rollout and rollback under load (loadtest/rollout_bench.py) and mutual TLS
against plain gRPC (loadtest/tls_bench.py).

Without --host, a tritonserver is started on free loopback ports with the repository given by --repository
(default model_repository) and stopped afterwards.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loadtest import compare, gateway, precision_bench, rollout_bench, tls_bench
from loadtest.chaos import FAULTS, OVERLOAD_KINDS, ChaosConfig
from loadtest.cpu import CHAOS_CONDITIONS, CONDITIONS, condition
from loadtest.locust_runner import LocustError, run_locust
from loadtest.replicas import target
from loadtest.report import precision_stem, write_report
from loadtest.restart import RestartConfig
from loadtest.scale import ScaleConfig
from loadtest.sweep import SweepConfig
from loadtest.triton_metrics import average_batch, delta, scrape
from triton_repo.folders import exported_onnx
from triton_repo.precision import PRECISIONS


def cmd_locust(args: argparse.Namespace) -> int:
    out = Path(args.reports)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "locust"
    with target(args.host, args.metrics_url, args.repository) as (url, murl):
        before = scrape(murl) if murl else {}
        try:
            agg, r = run_locust(url, args.users, args.spawn_rate, args.run_time, prefix, args.deadline)
        except LocustError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        after = scrape(murl) if murl else {}
    (out / "locust.log").write_text(r.stdout + r.stderr)
    reqs, fails = agg.requests, agg.failures
    server = delta(before, after)
    summary = {**agg.as_dict(), "server_avg_batch": round(average_batch(server), 2), "reports": str(out)}
    (out / "locust_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    ratio = fails / max(1, reqs)
    if reqs == 0 or ratio > args.max_failure_ratio:
        print(f"error: {fails} of {reqs} requests failed (allowed ratio {args.max_failure_ratio})", file=sys.stderr)
        return 1
    return 0


def sweep_config(args: argparse.Namespace):
    """SweepConfig from the CLI, or ValueError saying which argument is wrong and what is expected."""
    try:
        conc = tuple(int(c) for c in args.concurrency.split(","))
    except ValueError:
        conc = ()
    if not conc or min(conc) < 1:
        raise ValueError(f"--concurrency {args.concurrency!r}: expected comma-separated positive integers, e.g. 1,4,16")
    if args.seconds < 2:
        raise ValueError(f"--seconds {args.seconds}: expected >= 2 (shorter windows hold too few requests)")
    if args.rounds < 1:
        raise ValueError(f"--rounds {args.rounds}: expected >= 1")
    exported_onnx(args.repository)
    if args.precision == "bf16":
        from serving.machine import cpu_model_and_flags
        from triton_repo.precision import refusal
        if why := refusal("bf16", *cpu_model_and_flags()):
            raise ValueError(f"--precision bf16: {why}")
    return SweepConfig(concurrency=conc, seconds=args.seconds, rounds=args.rounds,
                       repository=Path(args.repository), out=Path(args.out), precision=args.precision)


def cmd_sweep(args: argparse.Namespace) -> int:
    from loadtest.sweep import run_sweep
    try:
        cfg = sweep_config(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = run_sweep(cfg)
    print(f"wrote {cfg.out / cfg.report_name}; served / ceiling (median of paired rounds): "
          f"{report['served_over_ceiling']}")
    return 0


def cmd_runtimes(args: argparse.Namespace) -> int:
    from loadtest.ceiling import runtime_markdown, runtime_table
    from triton_repo.config_reader import contract_from_config, parse_config
    try:
        onnx = exported_onnx(args.repository)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.seconds < 1 or args.rounds < 1:
        print(f"error: expected --seconds >= 1 and --rounds >= 1, got {args.seconds} and {args.rounds}",
              file=sys.stderr)
        return 2
    contract = contract_from_config(parse_config((onnx.parents[1] / "config.pbtxt").read_text()))
    table = runtime_table(onnx, contract, args.seconds, args.rounds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "runtimes.json").write_text(json.dumps(table, indent=2) + "\n")
    print(runtime_markdown(table))
    print(f"wrote {out / 'runtimes.json'}")
    return 0


def cmd_chaos(args: argparse.Namespace) -> int:
    from loadtest.chaos import run_chaos
    from loadtest.chaos_report import markdown
    try:
        conditions = tuple(c for c in args.conditions.split(",") if c)
        if not conditions:
            raise ValueError(f"--conditions names none; expected some of {', '.join(CONDITIONS)}")
        for c in conditions:
            condition(c)  # unknown names, or too few cores for a pinned condition, fail here with the reason
        cfg = ChaosConfig(repository=Path(args.repository), faults=tuple(f for f in args.faults.split(",") if f),
                          clients=args.clients, settle_s=args.settle_s, overload_clients=args.overload_clients,
                          overload_deadline_s=args.overload_deadline_s, overload_s=args.overload_s,
                          soak_s=args.soak_s, log_dir=Path(args.out),
                          overload_kinds=tuple(k for k in args.overload_kinds.split(",") if k), flood=True)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = run_chaos(cfg, Path(args.out), conditions)
    print(markdown(report))
    print(f"wrote {Path(args.out) / 'chaos.json'} and chaos.md")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from loadtest.cache_bench import measure_cache
    if args.calls < 10:
        print(f"error: --calls must be >= 10, got {args.calls}", file=sys.stderr)
        return 2
    report = measure_cache(Path(args.repository), args.calls)
    write_report(report, args.out, "cache")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from loadtest.batch_bench import measure_batch
    if args.sketches < 1 or args.seeds < 1 or args.rounds < 1:
        print(f"error: --sketches, --seeds and --rounds must be >= 1, got {args.sketches}, {args.seeds}, "
              f"{args.rounds}", file=sys.stderr)
        return 2
    report = measure_batch(Path(args.repository), args.sketches, args.seeds, args.rounds)
    write_report(report, args.out, "batch")
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    from loadtest.scale import markdown, run_scale
    try:
        cfg = ScaleConfig(repository=Path(args.repository), replicas=args.replicas, callers=args.callers,
                          phase_s=args.phase_s, precision=args.precision)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = run_scale(cfg, log=lambda m: print(m, flush=True))
    write_report(report, args.out, precision_stem("scale", cfg.precision), markdown)
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    from loadtest.restart import markdown, run_restarts
    try:
        cfg = RestartConfig(repository=Path(args.repository), rounds=args.rounds, callers=args.callers,
                            conditions=tuple(args.conditions.split(",")))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = run_restarts(cfg, log=lambda m: print(m, flush=True))
    write_report(report, args.out, "restart", markdown)
    return 0 if all(r["failures"] == 0 for r in report["conditions"].values()) else 1


def cmd_closed_loop(args: argparse.Namespace) -> int:
    from loadtest.closed_loop import ClosedLoopConfig, markdown, run_closed_loops
    try:
        cfgs = [ClosedLoopConfig(repository=Path(args.repository), seconds=args.seconds, condition=c,
                                 compare_before=not args.no_before) for c in args.conditions.split(",")]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = 0
    for cfg in cfgs:
        report = run_closed_loops(cfg, log=lambda m: print(m, flush=True))
        write_report(report, args.out, f"closed_loop_{report['condition']['name']}", markdown)
        failed += sum(r["failed"] for r in report["rows"] if r["policy"] == "after")
    return 0 if failed == 0 else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("locust", help="headless Locust run; CSV + HTML reports")
    p.add_argument("--host", help="gRPC address of a running server (default: start one)")
    p.add_argument("--metrics-url", help="its metrics endpoint, to report the server-side batch size")
    p.add_argument("--repository", default="model_repository")
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--spawn-rate", type=float, default=8)
    p.add_argument("--run-time", default="20s")
    p.add_argument("--deadline", type=float, default=10.0)
    p.add_argument("--max-failure-ratio", type=float, default=0.0)
    p.add_argument("--reports", default="reports")
    p.set_defaults(fn=cmd_locust)
    p = sub.add_parser("sweep", help="concurrency sweep: batching on/off vs the in-process ceiling")
    p.add_argument("--concurrency", default=",".join(map(str, SweepConfig.concurrency)))
    p.add_argument("--seconds", type=float, default=SweepConfig.seconds, help="measuring window per point and round")
    p.add_argument("--rounds", type=int, default=SweepConfig.rounds,
                   help="paired ceiling/served rounds for served / ceiling")
    p.add_argument("--repository", default="model_repository",
                   help="exported CPU model repository whose ONNX every compared config serves")
    p.add_argument("--precision", choices=PRECISIONS, default=SweepConfig.precision,
                   help="what OpenVINO computes in, configs and ceilings alike (bf16 needs a CPU with native "
                        "bfloat16; writes sweep_bf16.json beside sweep.json)")
    p.add_argument("--out", default="docs/benchmarks")
    p.set_defaults(fn=cmd_sweep)
    p = sub.add_parser("compare", help="served images/s and latency of model repositories side by side, "
                                       "interleaved rounds, relative to the first")
    compare.add_arguments(p)
    p.set_defaults(fn=compare.run)
    p = sub.add_parser("precision", help="f32 and bf16 deployments of one repository, each calibrated in its "
                                         "precision, served side by side and against in process (native bf16 only)")
    precision_bench.add_arguments(p)
    p.set_defaults(fn=precision_bench.run)
    p = sub.add_parser("runtimes", help="in-process images/s of the served ONNX: onnxruntime and OpenVINO x "
                                        "layouts x batch sizes, interleaved rounds (no server)")
    p.add_argument("--repository", default="model_repository", help="exported CPU repository whose ONNX to run")
    p.add_argument("--seconds", type=float, default=3.0, help="measuring window per layout and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the median window is the figure")
    p.add_argument("--out", default="docs/benchmarks", help="runtimes.json goes here")
    p.set_defaults(fn=cmd_runtimes)
    p = sub.add_parser("chaos", help="faults under load against a supervised server it starts: failures seen by "
                                     "callers, recovery time, goodput; optional soak with RSS per process")
    p.add_argument("--repository", default="model_repository")
    p.add_argument("--faults", default=",".join(FAULTS), help=f"comma list of {', '.join(FAULTS)}")
    p.add_argument("--clients", type=int, default=ChaosConfig.clients, help="steady callers during the process faults")
    p.add_argument("--settle-s", type=float, default=ChaosConfig.settle_s,
                   help="load before each fault and after its recovery")
    p.add_argument("--overload-clients", type=int, default=ChaosConfig.overload_clients)
    p.add_argument("--overload-deadline-s", type=float, default=ChaosConfig.overload_deadline_s)
    p.add_argument("--overload-s", type=float, default=ChaosConfig.overload_s)
    p.add_argument("--overload-kinds", default=",".join(OVERLOAD_KINDS),
                   help=f"comma list of {', '.join(OVERLOAD_KINDS)} (the last is measured, not a target)")
    p.add_argument("--soak-s", type=float, default=ChaosConfig.soak_s,
                   help="then a steady soak this long, RSS sampled (0 = none)")
    p.add_argument("--conditions", default=",".join(CHAOS_CONDITIONS),
                   help="CPU conditions, each with its own server: unpinned (all cores shared), own-core (server on "
                        "one core, callers on the rest), shared-core (as own-core, with two busy loops on the server's "
                        "core, started before it), slowed-core (one busy loop: CI's slowed pass)")
    p.add_argument("--out", default="reports", help="chaos.json, chaos.md and the server log go here")
    p.set_defaults(fn=cmd_chaos)
    p = sub.add_parser("cache", help="response cache: hit vs miss latency, interleaved, against a server it starts")
    p.add_argument("--repository", default="model_repository")
    p.add_argument("--calls", type=int, default=200, help="hits and misses each")
    p.add_argument("--out", default="docs/benchmarks", help="cache.json goes here")
    p.set_defaults(fn=cmd_cache)
    p = sub.add_parser("batch", help="sketchygan-client batch vs one generate call per image, same images, "
                                     "interleaved rounds, against a server it starts")
    p.add_argument("--repository", default="model_repository")
    p.add_argument("--sketches", type=int, default=48)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="docs/benchmarks")
    p.set_defaults(fn=cmd_batch)
    p = sub.add_parser("scale", help="N replicas on loopback, load through one client target and through the "
                                     "proxy, one replica killed and restarted: per-replica share, throughput, p50/p95")
    p.add_argument("--repository", default="model_repository")
    p.add_argument("--replicas", type=int, default=ScaleConfig.replicas)
    p.add_argument("--callers", type=int, default=ScaleConfig.callers)
    p.add_argument("--phase-s", type=float, default=ScaleConfig.phase_s, help="seconds of each phase")
    p.add_argument("--precision", choices=PRECISIONS, default=ScaleConfig.precision,
                   help="every replica's precision (bf16 writes scale_bf16.json / .md beside scale.json / .md)")
    p.add_argument("--out", default="docs/benchmarks", help="scale.json and scale.md go here")
    p.set_defaults(fn=cmd_scale)
    p = sub.add_parser("closed-loop", help="closed loops of callers sending requests of random sizes (8 x 1..32 "
                                           "and the rows of docs/reliability.md): failures, refusals, p99, against "
                                           "the old per-image queue wait on the same server")
    p.add_argument("--repository", default="model_repository")
    p.add_argument("--seconds", type=float, default=15.0, help="per row")
    p.add_argument("--conditions", default="unpinned",
                   help="comma list of unpinned, own-core, shared-core, slowed-core")
    p.add_argument("--no-before", action="store_true", help="skip the comparison rows with the old queue wait")
    p.add_argument("--out", default="docs/reliability", help="closed_loop_<condition>.json and .md go here")
    p.set_defaults(fn=cmd_closed_loop)
    p = sub.add_parser("restart", help="graceful restarts of `python -m serving` under load (8 default clients): "
                                       "SIGTERM -> ready seconds and failures per CPU condition")
    p.add_argument("--repository", default="model_repository")
    p.add_argument("--rounds", type=int, default=RestartConfig.rounds, help="restarts per condition")
    p.add_argument("--callers", type=int, default=RestartConfig.callers)
    p.add_argument("--conditions", default=",".join(RestartConfig.conditions),
                   help="comma list of unpinned, own-core, shared-core, slowed-core")
    p.add_argument("--out", default="docs/benchmarks", help="restart.json and restart.md go here")
    p.set_defaults(fn=cmd_restart)
    p = sub.add_parser("rollout", help="a rollout and a rollback of `python -m serving` under load: command and "
                                       "switch seconds, p50/p99 and failures before, during and after")
    rollout_bench.add_arguments(p)
    p.set_defaults(fn=rollout_bench.run)
    p = sub.add_parser("tls", help="mutual TLS vs plain gRPC, two servers side by side, interleaved rounds")
    tls_bench.add_arguments(p)
    p.set_defaults(fn=tls_bench.run)
    p = sub.add_parser("gateway", help="the HTTP gateway's latency next to the gRPC client's, and the page's "
                                       "4-parallel-request batching")
    gateway.add_arguments(p)
    p.set_defaults(fn=gateway.run)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
