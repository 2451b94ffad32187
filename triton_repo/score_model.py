"""Triton python-backend model `sketchygan_score`: the class-confidence scorer beside the generator.

IMAGE (uint8 [S, S, 3], an image as the generator answers it) and CLASS_ID (int32 [1], the plain class 0..C-1, no
style) -> CONFIDENCE (fp32 [1], P(the image shows that class)) and PROBS (fp32 [C], every class). Runs model.onnx
(exported by export/scorer_export.py, the scorer of training/scorer.py) with onnxruntime on one thread: a few
milliseconds a batch, so it never competes with the generator for the cores. An out-of-range CLASS_ID or a batch
whose inputs disagree fails that request only, with INVALID_ARGUMENT.
Self-contained (numpy + onnxruntime + triton_python_backend_utils), copied as `<repo>/sketchygan_score/1/model.py`.
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
        self.class_names = json.loads(params["class_names"])
        path = os.path.join(args["model_repository"], args["model_version"], params.get("onnx_file", "model.onnx"))
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(params.get("intra_op_threads", "1"))
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        scored = pb_utils.MetricFamily("sketchygan_images_scored_total", "Images the class-confidence scorer scored",
                                       pb_utils.MetricFamily.COUNTER)
        refused = pb_utils.MetricFamily("sketchygan_score_requests_refused_total",
                                        "Requests the scorer refused as invalid (Triton counts them as successes)",
                                        pb_utils.MetricFamily.COUNTER)
        self._families = (scored, refused)  # must outlive their Metric objects (see finalize)
        labels = {"model": args["model_name"], "version": args["model_version"]}
        self.scored = scored.Metric(labels=labels)
        self.refused = refused.Metric(labels=labels)

    def _problem(self, image, class_id):
        n = image.shape[0]
        if n == 0:
            return "empty request: IMAGE has batch size 0"
        if class_id.shape[0] != n:
            return (f"inputs disagree on the batch size: IMAGE {n}, CLASS_ID {class_id.shape[0]}; expected one "
                    "CLASS_ID per image")
        bad = (class_id < 0) | (class_id >= len(self.class_names))
        if bad.any():
            return (f"CLASS_ID {int(class_id[bad][0])} is out of range: expected the plain class id 0 <= CLASS_ID < "
                    f"{len(self.class_names)} (no style offset)")
        return None

    def execute(self, requests):
        responses = [None] * len(requests)
        todo = []
        for i, req in enumerate(requests):
            image = pb_utils.get_input_tensor_by_name(req, "IMAGE").as_numpy()
            class_id = pb_utils.get_input_tensor_by_name(req, "CLASS_ID").as_numpy()
            problem = self._problem(image, class_id)
            if problem is not None:
                self.refused.increment(1)
                responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(
                    problem, getattr(pb_utils.TritonError, "INVALID_ARG", pb_utils.TritonError.INTERNAL)))
                continue
            todo.append((i, image, class_id))
        if todo:  # the whole dynamic batch in one run
            conf, probs = self.session.run(["CONFIDENCE", "PROBS"],
                                           {"IMAGE": np.concatenate([t[1] for t in todo]),
                                            "CLASS_ID": np.concatenate([t[2] for t in todo])})
            self.scored.increment(len(conf))
            start = 0
            for i, image, _ in todo:
                end = start + len(image)
                responses[i] = pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("CONFIDENCE", conf[start:end]), pb_utils.Tensor("PROBS", probs[start:end])])
                start = end
        return responses

    def finalize(self):
        self.session = None
        self.scored = self.refused = None  # metrics before their families, as Triton requires
        self._families = None
