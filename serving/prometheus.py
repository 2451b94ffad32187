"""A real Prometheus server (Debian's `prometheus` package) on loopback, scraping Triton and client metrics.

`python -m serving prometheus --triton 127.0.0.1:8002 --client 127.0.0.1:9100` writes a scrape config and runs
Prometheus in the foreground; tests use `PrometheusServer` as a context manager and `query()` its HTTP API.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from serving.process import Child

RULES = Path(__file__).resolve().parents[1] / "docs" / "observability" / "alerts.yml"


def scrape_config(triton: list[str], clients: list[str], interval_s: float = 5.0, rules: Path | None = RULES,
                  supervisors: list[str] | None = None) -> str:
    """prometheus.yml text (JSON is valid YAML): a job for Triton, one for client/load-generator exporters, and one
    for the serving supervisors' /metrics (restarts, readiness) when given."""
    cfg = {
        "global": {"scrape_interval": f"{round(interval_s * 1000)}ms",
                   "evaluation_interval": f"{round(interval_s * 1000)}ms"},
        "scrape_configs": [
            {"job_name": "triton", "static_configs": [{"targets": triton}]},
            {"job_name": "sketchygan-client", "static_configs": [{"targets": clients}]},
        ],
    }
    if supervisors:
        cfg["scrape_configs"].append({"job_name": "sketchygan-supervisor",
                                      "static_configs": [{"targets": supervisors}]})
    if rules and Path(rules).exists():
        cfg["rule_files"] = [str(Path(rules).resolve())]
    return json.dumps(cfg, indent=2)


def binary() -> str:
    path = shutil.which("prometheus")
    if not path:
        raise FileNotFoundError("prometheus is not installed: `make prometheus-install` (apt-get install prometheus)")
    return path


class PrometheusServer:
    def __init__(self, triton: list[str], clients: list[str], port: int, interval_s: float = 5.0,
                 workdir: Path | None = None, supervisors: list[str] | None = None) -> None:
        self.port = port
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="prometheus-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "prometheus.yml").write_text(scrape_config(triton, clients, interval_s,
                                                                        supervisors=supervisors))
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> "PrometheusServer":
        self.child = Child("prometheus", [binary(), f"--config.file={self.dir / 'prometheus.yml'}",
                                          f"--storage.tsdb.path={self.dir / 'data'}",
                                          f"--web.listen-address=127.0.0.1:{self.port}"],
                           self.dir / "prometheus.log", new_session=True).start()
        self.child.wait_until(self._ready, timeout_s, poll_s=0.25)
        return self

    def _ready(self) -> bool:
        try:
            return urllib.request.urlopen(self.url + "/-/ready", timeout=2).status == 200
        except OSError:
            return False

    def query(self, promql: str) -> list[dict]:
        """Instant query through the HTTP API; returns the result vector."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        return body["data"]["result"]

    def targets_up(self) -> dict[str, bool]:
        body = json.loads(urllib.request.urlopen(self.url + "/api/v1/targets", timeout=10).read())
        return {t["labels"]["job"]: t["health"] == "up" for t in body["data"]["activeTargets"]}

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(20)
        self.child = None

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of `python -m serving prometheus`."""
    ap.add_argument("--triton", default="127.0.0.1:8002", help="Triton metrics address(es), comma-separated")
    ap.add_argument("--client", default="127.0.0.1:9100", help="client/load-generator exporter address(es)")
    ap.add_argument("--supervisor", default="127.0.0.1:8003",
                    help="serving supervisor /metrics address(es), comma-separated ('' = none)")
    ap.add_argument("--port", type=int, default=9090)
    ap.add_argument("--interval", type=float, default=5.0, help="scrape interval in seconds")
    ap.add_argument("--workdir", default=".cache/prometheus")


def run(args: argparse.Namespace) -> int:
    try:
        srv = PrometheusServer(args.triton.split(","), args.client.split(","), args.port, args.interval,
                               Path(args.workdir), [a for a in args.supervisor.split(",") if a]).start()
    except (FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"prometheus on {srv.url} (config {srv.dir / 'prometheus.yml'}); Ctrl-C stops", flush=True)
    try:
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while srv.child is not None and srv.child.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0

