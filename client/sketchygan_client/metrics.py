"""Optional client-side Prometheus metrics, registered on a registry the caller owns."""
from __future__ import annotations

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ClientMetrics:
    """`sketchygan_client_request_seconds` (histogram), `sketchygan_client_requests_total{outcome,code}`,
    `sketchygan_client_retries_total`. Needs `prometheus-client` (pip install sketchygan-client[metrics])."""

    def __init__(self, registry, namespace: str = "sketchygan_client") -> None:
        from prometheus_client import Counter, Histogram
        self.latency = Histogram(f"{namespace}_request_seconds", "End-to-end generate() latency per request",
                                 ["method"], buckets=LATENCY_BUCKETS, registry=registry)
        self.requests = Counter(f"{namespace}_requests", "Requests by outcome and gRPC status code",
                                ["method", "outcome", "code"], registry=registry)
        self.retries = Counter(f"{namespace}_retries", "Retries after UNAVAILABLE", ["method"], registry=registry)

    def observe(self, method: str, seconds: float, error: Exception | None) -> None:
        self.latency.labels(method).observe(seconds)
        code = "OK" if error is None else (getattr(error, "code", None) or type(error).__name__)
        self.requests.labels(method, "success" if error is None else "error", code).inc()
