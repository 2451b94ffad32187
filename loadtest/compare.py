"""Served cost of model repositories side by side (`python -m loadtest compare`): one tritonserver per repository,
all up at once, the same closed-loop load sent to each in turn for several interleaved rounds (the machine's drift
hits every repository alike), and each one's throughput and latency as a ratio to the first's."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from loadtest.sweep import interleaved, start_servers
from serving.machine import cpu_facts


def compare_repositories(repos: dict[str, Path], concurrency: int = 16, seconds: float = 8.0,
                         rounds: int = 3) -> dict:
    """{name: summary at `concurrency`} plus each repository's images/s and p50 relative to the first one's."""
    missing = [str(r) for r in repos.values() if not (r / "sketchygan" / "config.pbtxt").is_file()]
    if missing:
        raise ValueError(f"no exported sketchygan model in {missing} (write one with `python -m export --out DIR`)")
    with contextlib.ExitStack() as stack:
        points = interleaved(start_servers(stack, repos), (concurrency,), seconds, rounds)
    rows = {name: p[0] for name, p in points.items()}
    first = rows[next(iter(rows))]
    return {"machine": cpu_facts(flags=False), "concurrency": concurrency, "seconds": seconds, "rounds": rounds,
            "repositories": {k: str(v) for k, v in repos.items()}, "rows": rows,
            "relative_to_first": {name: {"throughput": round(r["throughput_rps"] / first["throughput_rps"], 3),
                                         "p50": round(r["p50_ms"] / first["p50_ms"], 3)} for name, r in rows.items()}}


def write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`python -m loadtest compare`'s options."""
    p.add_argument("--repository", action="append", required=True, metavar="NAME=DIR",
                   help="a repository to serve (repeat; the first is the reference)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=8.0, help="measuring window per repository and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="docs/benchmarks/compare.json")


def run(args: argparse.Namespace) -> int:
    """Parse NAME=DIR pairs, measure, write the report, print the ratios."""
    repos = {}
    for item in args.repository:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            print(f"error: --repository expects NAME=DIR, got {item!r}", file=sys.stderr)
            return 2
        repos[name] = Path(path)
    try:
        report = compare_repositories(repos, args.concurrency, args.seconds, args.rounds)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write(report, Path(args.out))
    print(json.dumps(report["relative_to_first"], indent=2))
    return 0
