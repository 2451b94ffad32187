"""Triton python-backend model for the CPU target: runs model.onnx with onnxruntime.

Self-contained (numpy + onnxruntime + triton_python_backend_utils only): copied as `<repo>/sketchygan/1/model.py`
and deployed on servers without this project installed. Validates what the graph cannot reject: an out-of-range
CLASS_ID or non-finite NOISE fails *that request only* with INVALID_ARGUMENT; the rest of the dynamic batch runs.
"""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        cfg = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        self.num_classes = len(json.loads(params["class_names"]))
        self.noise_dim = int(params["noise_dim"])
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(params.get("intra_op_threads", "0"))
        so.inter_op_num_threads = 1
        path = os.path.join(args["model_repository"], args["model_version"], params.get("onnx_file", "model.onnx"))
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def _problem(self, class_id, noise):
        """Why a request is invalid, or None."""
        bad = (class_id < 0) | (class_id >= self.num_classes)
        if bad.any():
            return (f"CLASS_ID {int(class_id[bad][0])} is out of range: expected 0 <= CLASS_ID < "
                    f"{self.num_classes}")
        if not np.isfinite(noise).all():
            return "NOISE contains NaN or Inf: expected finite FP32 values (standard normal)"
        return None

    def execute(self, requests):
        responses = [None] * len(requests)
        good, sketches, classes, noises, sizes = [], [], [], [], []
        for i, req in enumerate(requests):
            sketch = pb_utils.get_input_tensor_by_name(req, "SKETCH").as_numpy()
            class_id = pb_utils.get_input_tensor_by_name(req, "CLASS_ID").as_numpy()
            noise = pb_utils.get_input_tensor_by_name(req, "NOISE").as_numpy()
            problem = self._problem(class_id, noise)
            if problem is not None:
                responses[i] = pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(problem, pb_utils.TritonError.INVALID_ARG))
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
            images = self.session.run(["IMAGE"], feed)[0]
            start = 0
            for i, n in zip(good, sizes):
                responses[i] = pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("IMAGE", images[start:start + n])])
                start += n
        return responses

    def finalize(self):
        self.session = None
