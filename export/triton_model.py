"""Triton python-backend model for the CPU target: runs model.onnx with onnxruntime, or with OpenVINO when the
config's `runtime` parameter says so.

Self-contained (numpy + onnxruntime [+ openvino] + triton_python_backend_utils only): copied as `<repo>/sketchygan/1/model.py`
and deployed on servers without this project installed. Validates what the graph cannot reject: an out-of-range
CLASS_ID, non-finite NOISE or NOISE beyond the published bound fails *that request only* with INVALID_ARGUMENT;
the rest of the dynamic batch runs. Requests whose caller has gone (gRPC cancellation) are skipped, not computed.
Counts computed images and skipped/rejected requests in Triton's own metrics endpoint (custom metrics).
"""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


def _error(message, code_name):
    """A per-request error with Triton's code `code_name` (INTERNAL where this Triton lacks the code)."""
    code = getattr(pb_utils.TritonError, code_name, pb_utils.TritonError.INTERNAL)
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        self.num_classes = len(json.loads(params["class_names"]))
        self.noise_dim = int(params["noise_dim"])
        self.noise_abs_max = float(params.get("noise_abs_max", "16"))
        self.max_batch_size = int(cfg.get("max_batch_size", 0))
        threads = int(params.get("intra_op_threads", "0"))
        path = os.path.join(args["model_repository"], args["model_version"], params.get("onnx_file", "model.onnx"))
        self.runtime = params.get("runtime", "onnxruntime")
        if self.runtime == "openvino":  # reads the same ONNX file; batches pay off on CPU
            import openvino as ov
            core = ov.Core()
            # unpinned unless asked: pinned instances in separate stub processes all bind to the first core
            pinned = params.get("cpu_pinning", "false") == "true"
            self.session = core.compile_model(core.read_model(path), "CPU",
                                              {"INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": pinned})
            self._image = self.session.output("IMAGE")
        else:
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        labels = {"model": args["model_name"], "version": args["model_version"]}
        images = pb_utils.MetricFamily("sketchygan_images_computed_total",
                                       "Images the generator computed (one per batch row run through the model)",
                                       pb_utils.MetricFamily.COUNTER)
        skipped = pb_utils.MetricFamily("sketchygan_requests_skipped_total",
                                        "Requests answered without computing, by reason (cancelled, invalid)",
                                        pb_utils.MetricFamily.COUNTER)
        executing = pb_utils.MetricFamily("sketchygan_executing_requests",
                                          "Requests inside execute() right now, per model instance (a drain "
                                          "waits for 0)", pb_utils.MetricFamily.GAUGE)
        # per instance: the count of a process that died inside execute() stays where it was, and the
        # supervisor leaves exactly that series out when it drains
        self.executing_metric = executing.Metric(labels={**labels, "instance": args["model_instance_name"]})
        self._families = (images, skipped, executing)  # must outlive their Metric objects (see finalize)
        self.images_metric = images.Metric(labels=labels)
        self.skipped_metric = {r: skipped.Metric(labels={**labels, "reason": r}) for r in ("cancelled", "invalid")}

    def _problem(self, sketch, class_id, noise):
        """Why a request is invalid, or None."""
        n = sketch.shape[0]
        if n == 0:
            return (f"empty request: SKETCH has batch size 0; expected 1..{self.max_batch_size} sketches per request")
        if class_id.shape[0] != n or noise.shape[0] != n:
            return (f"inputs disagree on the batch size: SKETCH {n}, CLASS_ID {class_id.shape[0]}, "
                    f"NOISE {noise.shape[0]}; expected one CLASS_ID and one NOISE row per sketch")
        bad = (class_id < 0) | (class_id >= self.num_classes)
        if bad.any():
            return (f"CLASS_ID {int(class_id[bad][0])} is out of range: expected 0 <= CLASS_ID < "
                    f"{self.num_classes}")
        if not np.isfinite(noise).all():
            return "NOISE contains NaN or Inf: expected finite FP32 values (standard normal)"
        big = np.abs(noise) > self.noise_abs_max
        if big.any():
            return (f"NOISE value {float(noise[big][0]):g} is out of range: expected |NOISE| <= "
                    f"{self.noise_abs_max:g} (standard-normal noise)")
        return None

    def execute(self, requests):
        self.executing_metric.increment(len(requests))
        try:
            return self._execute(requests)
        finally:
            self.executing_metric.increment(-len(requests))

    def _execute(self, requests):
        responses = [None] * len(requests)
        good, sketches, classes, noises, sizes = [], [], [], [], []
        for i, req in enumerate(requests):
            if req.is_cancelled():  # the caller gave up (deadline, disconnect): nobody will read the answer
                responses[i] = _error("request cancelled by the caller before it was computed", "CANCELLED")
                self.skipped_metric["cancelled"].increment(1)
                continue
            sketch = pb_utils.get_input_tensor_by_name(req, "SKETCH").as_numpy()
            class_id = pb_utils.get_input_tensor_by_name(req, "CLASS_ID").as_numpy()
            noise = pb_utils.get_input_tensor_by_name(req, "NOISE").as_numpy()
            problem = self._problem(sketch, class_id, noise)
            if problem is not None:
                responses[i] = _error(problem, "INVALID_ARG")
                self.skipped_metric["invalid"].increment(1)
                continue
            good.append(i)
            sketches.append(sketch)
            classes.append(class_id)
            noises.append(noise)
            sizes.append(sketch.shape[0])
        if good:
            one = len(good) == 1  # avoid a copy for the common single-request case
            feed = {
                "SKETCH": sketches[0] if one else np.concatenate(sketches),
                "CLASS_ID": classes[0] if one else np.concatenate(classes),
                "NOISE": noises[0] if one else np.concatenate(noises),
            }
            images = self._run(feed)
            self.images_metric.increment(len(images))
            start = 0
            for i, n in zip(good, sizes):
                responses[i] = pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("IMAGE", images[start:start + n])])
                start += n
        return responses

    def _run(self, feed):
        if self.runtime == "openvino":
            return self.session(feed)[self._image]
        return self.session.run(["IMAGE"], feed)[0]

    def finalize(self):
        self.session = None
        # metrics before their families, as Triton requires
        self.images_metric = self.skipped_metric = self.executing_metric = None
        self._families = None
