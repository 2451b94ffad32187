"""The gateway's own Prometheus metrics: requests by route and status, and latency, counted by an ASGI wrapper."""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from sketchygan_client import ClientMetrics
from sketchygan_client.metrics import LATENCY_BUCKETS

CONFIDENCE_BUCKETS = tuple(i / 10 for i in range(1, 11))
ROUTES = ("/", "/v1/classes", "/v1/generate", "/v1/variations", "/v1/sketch", "/v1/grid", "/healthz", "/metrics")


def route_label(path: str) -> str:
    """A bounded label: the known routes, 'static' for page assets, 'other' for everything else (no cardinality
    blow-up from scanners probing random paths)."""
    if path in ROUTES:
        return path
    return "static" if path.startswith("/static/") else "other"


class GatewayMetrics:
    """`sketchygan_gateway_requests_total{route,status}`, `sketchygan_gateway_request_seconds{route}`, and the
    client library's `sketchygan_client_*` series for the calls the gateway makes to tritonserver."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("sketchygan_gateway_requests", "HTTP requests by route and status code",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("sketchygan_gateway_request_seconds", "HTTP request latency (to the last byte)",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.client = ClientMetrics(self.registry)
        # per model version, so that a canary can be compared with the stable version before it is promoted
        self.images = Counter("sketchygan_gateway_images", "Images answered, by the model version that computed them",
                              ["version"], registry=self.registry)
        self.generate_latency = Histogram("sketchygan_gateway_generate_seconds", "Generate and variations calls, "
                                          "by the model version that answered", ["version"], buckets=LATENCY_BUCKETS,
                                          registry=self.registry)
        self.confidence = Histogram("sketchygan_gateway_class_confidence", "The scorer's confidence that an image "
                                    "shows its class, by the model version that computed it", ["version"],
                                    buckets=CONFIDENCE_BUCKETS, registry=self.registry)

    def answered(self, receipts, seconds: float) -> None:
        """Count one generate/variations call's images, its latency and their class confidence per version."""
        for r in receipts:
            self.images.labels(r.model_version).inc()
            if r.class_confidence is not None:
                self.confidence.labels(r.model_version).observe(r.class_confidence)
        if receipts:
            self.generate_latency.labels(receipts[0].model_version).observe(seconds)

    def middleware(self, app):
        """Wrap an ASGI app so that every HTTP request is counted with the status it was answered with."""

        async def wrapped(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            route, t0, status = route_label(scope["path"]), time.perf_counter(), [500]

            async def send_and_note(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_and_note)
            finally:
                self.requests.labels(route, str(status[0])).inc()
                self.latency.labels(route).observe(time.perf_counter() - t0)

        return wrapped
