"""Triton python-backend model `sketchygan_drain`: the barrier that makes a graceful stop answer only UNAVAILABLE.

Why: on SIGTERM, Triton 2.51 refuses new requests with UNAVAILABLE only while some request is still in flight;
once none is, it unloads the models and answers NOT_FOUND until it exits. The supervisor (serving/supervisor.py)
sends one request here just before SIGTERM; this model holds it inside `execute` (its own instance, so the
generator's instances are untouched), Triton keeps refusing with UNAVAILABLE, and the supervisor ends the server
as soon as the generator has nothing queued or executing. A request without the server's secret drain token
(an environment variable the supervisor sets) is refused at once, so no caller can pin this instance.
Self-contained (triton_python_backend_utils only), copied as `<repo>/sketchygan_drain/1/model.py`.
"""
import os
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.token = os.environ.get("SKETCHYGAN_DRAIN_TOKEN", "").encode()
        held = pb_utils.MetricFamily("sketchygan_drain_barriers_held",
                                     "Drain barrier requests held by sketchygan_drain (1 while a stop drains)",
                                     pb_utils.MetricFamily.GAUGE)
        self.held = held.Metric(labels={"model": args["model_name"]})
        self._family = held

    def execute(self, requests):
        responses = []
        for req in requests:
            token = pb_utils.get_input_tensor_by_name(req, "TOKEN").as_numpy().reshape(-1)
            if self.token and token.size == 1 and bytes(token[0]) == self.token:
                self.held.set(1)
                while True:  # held until the supervisor ends the server
                    time.sleep(3600)
            responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(
                "sketchygan_drain is internal to the serving supervisor; it takes no requests")))
        return responses

    def finalize(self):
        self.held = None
        self._family = None
