"""Run the project's locustfile headless in a subprocess and read Locust's aggregated CSV row: the one reader."""
from __future__ import annotations

import csv
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


class LocustError(RuntimeError):
    """Locust did not run to the end (bad arguments, crash): carries the tail of its output."""


def cell(value: str) -> float:
    """A Locust CSV number; "N/A" or empty (no requests in that column) becomes NaN."""
    return float("nan") if value in ("", "N/A") else float(value)


@dataclass(frozen=True)
class LocustSummary:
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @classmethod
    def from_row(cls, row: dict[str, str]) -> "LocustSummary":
        return cls(int(row["Request Count"]), int(row["Failure Count"]), cell(row["Requests/s"]), cell(row["50%"]),
                   cell(row["95%"]), cell(row["99%"]))

    def as_dict(self) -> dict:
        return asdict(self)


def run_locust(url: str, users: int, spawn_rate: float, run_time: str, prefix: Path, deadline: float = 10.0,
               html: bool = True, timeout_s: float = 3600) -> tuple[LocustSummary, subprocess.CompletedProcess]:
    """Writes `<prefix>_stats.csv` (+ `<prefix>.html`); returns (the aggregated row, the finished process).
    Locust exits 1 when some requests failed (that is a result, judged by the caller); any other failure raises."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r",
           str(spawn_rate), "-t", run_time, "--host", url, "--csv", str(prefix), "--only-summary",
           "--stop-timeout", "10", "--deadline", str(deadline)]
    if html:
        cmd += ["--html", f"{prefix}.html"]
    proc = subprocess.run(cmd, text=True, capture_output=True, timeout=timeout_s)
    stats = Path(f"{prefix}_stats.csv")
    if proc.returncode not in (0, 1) or not stats.is_file():
        raise LocustError(f"locust failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
    with open(stats, newline="") as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    row = rows.get("Aggregated") or rows.get("generate")
    if row is None:
        raise LocustError(f"{stats} has no aggregated row (no requests were made?)")
    return LocustSummary.from_row(row), proc
