"""Metrics through a real Prometheus, alert rules through promtool, and a real headless Locust run."""
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from loadtest.triton_metrics import average_batch, delta, scrape
from serving.process import free_port
from serving.prometheus import RULES, PrometheusServer
from sketchygan_client import ClientMetrics, SketchClient

ROOT = Path(__file__).resolve().parents[2]


def test_alert_rules_pass_promtool():
    r = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 10 rules found" in r.stdout


def test_grafana_dashboard_queries_known_metrics():
    dash = json.loads((ROOT / "docs" / "observability" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 6 and all("sketchygan" in e for e in exprs)


@pytest.mark.slow
def test_prometheus_scrapes_triton_and_client_metrics(server, tmp_path):
    registry = CollectorRegistry()
    metrics = ClientMetrics(registry)
    client_port = free_port()
    httpd, thread = start_http_server(client_port, addr="127.0.0.1", registry=registry)
    triton_target = server.metrics_url.split("//")[1].split("/")[0]
    before = scrape(server.metrics_url)
    try:
        with PrometheusServer([triton_target], [f"127.0.0.1:{client_port}"], free_port(), interval_s=1.0,
                              workdir=tmp_path / "prom") as prom, \
                SketchClient(server.grpc_url, timeout_s=30, metrics=metrics) as client:
            n = 20
            for i in range(n):
                client.generate_array(np.full((32, 32), 255, np.uint8), i % 4, seed=i)
            expected = before.get("nv_inference_request_success", 0) + n
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = prom.query('sum(nv_inference_request_success{model="sketchygan"})')
                cl = prom.query('sum(sketchygan_client_request_seconds_count{method="generate"})')
                if got and cl and float(got[0]["value"][1]) >= expected and float(cl[0]["value"][1]) >= n:
                    break
                time.sleep(0.5)
            assert prom.targets_up() == {"triton": True, "sketchygan-client": True}
            assert float(prom.query('sum(nv_inference_request_success{model="sketchygan"})')[0]["value"][1]) == expected
            for name in ("nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us"):
                assert float(prom.query(f'sum({name}{{model="sketchygan"}})')[0]["value"][1]) > 0, name
            assert float(prom.query('sum(sketchygan_client_request_seconds_count)')[0]["value"][1]) == n
            ok = prom.query('sum(sketchygan_client_requests_total{outcome="success"})')
            assert float(ok[0]["value"][1]) == n
            assert prom.query('sketchygan_client_request_seconds_bucket{le="+Inf"}')
    finally:
        httpd.shutdown()


@pytest.mark.slow
def test_headless_locust_run_has_concurrent_users_and_no_failures(server, tmp_path):
    before = scrape(server.metrics_url)
    r = subprocess.run([sys.executable, "-m", "loadtest", "locust", "--host", server.grpc_url, "--metrics-url",
                        server.metrics_url, "--users", "6", "--spawn-rate", "6", "--run-time", "6s",
                        "--reports", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = {row["Name"]: row for row in csv.DictReader(open(tmp_path / "locust_stats.csv"))}
    assert int(rows["Aggregated"]["Request Count"]) > 0
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert (tmp_path / "locust.html").stat().st_size > 1000
    server_side = delta(before, scrape(server.metrics_url))
    assert average_batch(server_side) > 1.0, server_side  # users really ran concurrently
