"""Locust user driving the project's gRPC client.

`grpc.experimental.gevent.init_gevent()` must run before any gRPC object exists: without it the gRPC C core
blocks gevent's hub, users run one at a time and the server never sees a batch (silent; see docs/architecture.md,
"Facts the code relies on").
Each user is a caller with the client's default behaviour: retries of "not executed" answers until its deadline.
Options: --deadline (per-call seconds), --sketch-size (must match the model's resolution).
"""
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import time  # noqa: E402

from locust import User, between, events, task  # noqa: E402

from loadtest.sketches import sketch_set  # noqa: E402
from sketchygan_client import SketchClient, SketchClientError  # noqa: E402
from sketchygan_client.contract import DEFAULT_URL  # noqa: E402


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument("--deadline", type=float, default=10.0, help="per-request deadline in seconds")


class SketchUser(User):
    """One simulated caller: a sketch from a small set, a class and a seed per request; no think time."""

    wait_time = between(0, 0)
    host = DEFAULT_URL

    def on_start(self):
        self.client = SketchClient(self.host, timeout_s=self.environment.parsed_options.deadline)
        info = self.client.info
        self.sketches = sketch_set(16, info.resolution, seed=hash(id(self)) % 1000)
        self.n_classes = len(info.class_names)
        self.i = 0

    def on_stop(self):
        self.client.close()

    @task
    def generate(self):
        self.i += 1
        t0 = time.perf_counter()
        exc, size = None, 0
        try:
            size = self.client.generate_array(self.sketches[self.i % 16], self.i % self.n_classes, seed=self.i).nbytes
        except SketchClientError as e:
            exc = e
        self.environment.events.request.fire(request_type="grpc", name="generate", response_time=(time.perf_counter()
                                             - t0) * 1000, response_length=size, exception=exc, context={})
