"""Run the project's locustfile headless in a subprocess and read Locust's aggregated CSV row."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def run_locust(url: str, users: int, spawn_rate: float, run_time: str, prefix: Path, deadline: float = 10.0,
               html: bool = True, timeout_s: float = 3600) -> tuple[dict, subprocess.CompletedProcess]:
    """Writes `<prefix>_stats.csv` (+ `<prefix>.html`); returns (the 'Aggregated' row, the finished process)."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r",
           str(spawn_rate), "-t", run_time, "--host", url, "--csv", str(prefix), "--only-summary",
           "--stop-timeout", "10", "--deadline", str(deadline)]
    if html:
        cmd += ["--html", f"{prefix}.html"]
    proc = subprocess.run(cmd, text=True, capture_output=True, timeout=timeout_s)
    rows = {row["Name"]: row for row in csv.DictReader(open(f"{prefix}_stats.csv"))}
    return rows.get("Aggregated") or rows.get("generate"), proc
