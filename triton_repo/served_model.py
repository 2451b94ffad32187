"""Triton python-backend model for the CPU target: runs model.onnx with onnxruntime, or with OpenVINO when the
config's `runtime` parameter says so.

Self-contained (numpy + onnxruntime [+ openvino] + triton_python_backend_utils, and cpu_sessions.py beside it in the
version folder): copied as `<repo>/sketchygan/1/model.py` and deployed on servers without this project installed.
Validates what the graph cannot reject: an out-of-range CLASS_ID, non-finite NOISE or NOISE beyond the published bound
fails *that request only* with INVALID_ARGUMENT; the rest of the dynamic batch runs. Requests whose caller has gone
(gRPC cancellation) are skipped, not computed. Counts computed images and skipped/rejected requests in Triton's own
metrics endpoint (custom metrics).

Deadline-aware: a start-up calibration (serving/calibrate.py) publishes the measured cost of a batch
(`cost_per_image_s`·n + `cost_overhead_s`) and the largest batch that fits the latency budget (`batch_limit`). A
dynamic batch is computed in chunks of at most that many images; before each chunk, a request whose caller sent its
absolute deadline (request parameter `deadline_unix_us`, microseconds since the Unix epoch on the caller's clock)
and which the predicted finish would miss is refused with UNAVAILABLE (the caller retries elsewhere or gives up),
and a cancelled one is skipped. The prediction follows the machine: it scales the calibrated cost by what recent
chunks actually took. A request that sent no deadline but a `timeout`, whose own compute alone is longer than the
timeout allows (the timeout plus the published compute reserve, which a caller keeps out of its timeout: together
its deadline), can never be answered in time, whatever the queue: it is refused with INVALID_ARGUMENT, saying how
many images would fit.
"""
import json
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils

CLOCK_SANITY_S = 3600.0  # a deadline further than this from the server's clock says the caller's clock is wrong


def _precision_refusal(precision, runtime):
    """Why this model must not load in `precision` here, or None (the project's triton_repo/precision.py, restated:
    this file is deployed without the project): bfloat16 needs OpenVINO and a CPU that computes it natively."""
    if precision not in ("f32", "bf16"):
        return f"unknown precision {precision!r} in config.pbtxt; expected f32 or bf16"
    if precision == "f32":
        return None
    if runtime != "openvino":
        return f"precision {precision} is computed by OpenVINO only, but the runtime is {runtime!r}"
    model, flags = "unknown", ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = value
    except OSError:
        pass
    if {"avx512_bf16", "amx_bf16"} & set(flags.split()):
        return None
    return (f"precision bf16 refused: this CPU ({model}) has no native bfloat16 (neither of the CPU flags "
            "avx512_bf16 / amx_bf16), where OpenVINO would emulate it slower than float32; serve this deployment in "
            "f32, or run its bf16 replicas on CPUs with AVX-512-BF16 or AMX")


def _error(message, code_name):
    """A per-request error with Triton's code `code_name` (INTERNAL where this Triton lacks the code)."""
    code = getattr(pb_utils.TritonError, code_name, pb_utils.TritonError.INTERNAL)
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))


def _load_sessions(version_dir):
    """cpu_sessions.py from this version's folder (a copy of the project's triton_repo/cpu_sessions.py, written
    beside this file): how model.onnx is run, one source for the project and the deployed model."""
    import importlib.util
    path = os.path.join(version_dir, "cpu_sessions.py")
    if not os.path.isfile(path):
        raise pb_utils.TritonModelException(f"{path} is missing: a CPU version folder holds model.py, cpu_sessions.py "
                                            "and model.onnx (re-export the model)")
    spec = importlib.util.spec_from_file_location("sketchygan_cpu_sessions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Pending:
    """A valid request on its way through the chunks: its inputs, the image rows computed so far, its deadline."""

    __slots__ = ("index", "inputs", "parts", "deadline")

    def __init__(self, index, inputs, deadline):
        self.index, self.inputs, self.parts, self.deadline = index, inputs, [], deadline

    @property
    def rows(self):
        return self.inputs[0].shape[0]

    @property
    def done(self):
        return sum(len(p) for p in self.parts)


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        # CLASS_ID = class + style x classes (style 0, the default, is the plain class id): num_labels valid ids
        self.class_names = json.loads(params["class_names"])
        self.styles = json.loads(params.get("styles", "[]"))
        self.num_labels = len(self.class_names) * max(1, len(self.styles))
        self.noise_dim = int(params["noise_dim"])
        self.noise_abs_max = float(params.get("noise_abs_max", "16"))
        self.max_batch_size = int(cfg.get("max_batch_size", 0))
        self.batch_limit = max(1, int(params.get("batch_limit", self.max_batch_size or 1)))
        self.cost_a = float(params.get("cost_per_image_s", "0"))
        self.cost_b = float(params.get("cost_overhead_s", "0"))
        self.reserve_s = float(params.get("compute_reserve_s", "0") or 0)
        self.cost_scale = 1.0  # observed / calibrated chunk time, smoothed: the machine as it is now
        threads = int(params.get("intra_op_threads", "0"))
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        path = os.path.join(version_dir, params.get("onnx_file", "model.onnx"))
        # this version's checkpoint (its folder's checkpoint_sha256 file, written by the export and by a rollout;
        # the config's parameter names the exported version only): answered with every image when the config lists
        # the CHECKPOINT output, so that a receipt names the weights that computed it while two versions serve
        sha_file = os.path.join(version_dir, "checkpoint_sha256")
        if os.path.isfile(sha_file):
            with open(sha_file) as fh:
                self.checkpoint = fh.read().strip()
        else:
            self.checkpoint = params.get("checkpoint_sha256", "")
        self.checkpoint_out = any(o.get("name") == "CHECKPOINT" for o in cfg.get("output", []))
        self.runtime = params.get("runtime", "onnxruntime")
        self.precision = params.get("precision", "f32")
        refused = _precision_refusal(self.precision, self.runtime)
        if refused:  # the model fails to load: the server does not start, and its log says why
            raise pb_utils.TritonModelException(refused)
        sessions = _load_sessions(version_dir)
        if self.runtime == "openvino":  # reads the same ONNX file; batches pay off on CPU
            # unpinned unless asked: pinned instances in separate stub processes all bind to the first core;
            # the deployment's precision, always explicit (the plugin's default is bfloat16 where the CPU has it
            # natively): f32 gives the same pixels on every kind of machine; bf16 is an operator's choice
            self.session = sessions.OpenVinoBatches(path, self.precision, threads,
                                                    params.get("cpu_pinning", "false") == "true",
                                                    params.get("openvino_cache_dir") or None)
            # every static batch size a chunk can need, compiled now: no request waits for a compilation (with the
            # cache dir, a restart imports them instead of compiling: ~3x less CPU)
            self.session.prepare(self.batch_limit)
        else:
            self.session = sessions.ort_session(path, threads)
        labels = {"model": args["model_name"], "version": args["model_version"]}
        images = pb_utils.MetricFamily("sketchygan_images_computed_total",
                                       "Images the generator computed (one per batch row run through the model)",
                                       pb_utils.MetricFamily.COUNTER)
        skipped = pb_utils.MetricFamily("sketchygan_requests_skipped_total",
                                        "Requests answered without computing, by reason (cancelled, invalid, late: "
                                        "its deadline could not be met, over_timeout: its own compute is longer than "
                                        "its timeout allows)",
                                        pb_utils.MetricFamily.COUNTER)
        executing = pb_utils.MetricFamily("sketchygan_executing_requests",
                                          "Requests inside execute() right now, per model instance (a drain "
                                          "waits for 0)", pb_utils.MetricFamily.GAUGE)
        info = pb_utils.MetricFamily("sketchygan_deployment_info",
                                     "1 per model instance, labelled with what computes its images (runtime, "
                                     "precision): every replica of a deployment should show the same",
                                     pb_utils.MetricFamily.GAUGE)
        self.info_metric = info.Metric(labels={**labels, "instance": args["model_instance_name"],
                                               "runtime": self.runtime, "precision": self.precision,
                                               "checkpoint": self.checkpoint[:12]})
        self.info_metric.set(1)
        # per instance: the count of a process that died inside execute() stays where it was, and the
        # supervisor leaves exactly that series out when it drains
        self.executing_metric = executing.Metric(labels={**labels, "instance": args["model_instance_name"]})
        self._families = (images, skipped, executing, info)  # must outlive their Metric objects (see finalize)
        self.images_metric = images.Metric(labels=labels)
        self.skipped_metric = {r: skipped.Metric(labels={**labels, "reason": r})
                               for r in ("cancelled", "invalid", "late", "over_timeout")}

    def _problem(self, sketch, class_id, noise):
        """Why a request is invalid, or None."""
        n = sketch.shape[0]
        if n == 0:
            return (f"empty request: SKETCH has batch size 0; expected 1..{self.max_batch_size} sketches per request")
        if class_id.shape[0] != n or noise.shape[0] != n:
            return (f"inputs disagree on the batch size: SKETCH {n}, CLASS_ID {class_id.shape[0]}, "
                    f"NOISE {noise.shape[0]}; expected one CLASS_ID and one NOISE row per sketch")
        bad = (class_id < 0) | (class_id >= self.num_labels)
        if bad.any():
            styles = (f" (class + style x {len(self.class_names)}; styles {', '.join(self.styles)})"
                      if self.styles else "")
            return (f"CLASS_ID {int(class_id[bad][0])} is out of range: expected 0 <= CLASS_ID < "
                    f"{self.num_labels}{styles}")
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

    def _deadline_s(self, req):
        """The caller's absolute deadline (Unix seconds), or None when it sent none."""
        try:
            value = json.loads(req.parameters() or "{}").get("deadline_unix_us")
        except (ValueError, AttributeError):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if abs(value / 1e6 - time.time()) > CLOCK_SANITY_S:  # not a deadline but a clock set wrong: ignore it
            return None
        return value / 1e6

    def _predict_s(self, images):
        """Seconds to compute `images` in chunks of at most batch_limit, at the machine's current speed."""
        if self.cost_a <= 0:
            return 0.0
        chunks = -(-images // self.batch_limit)
        return self.cost_scale * (self.cost_a * images + self.cost_b * chunks)

    def _execute(self, requests):
        responses = [None] * len(requests)
        todo = []  # _Pending, in arrival order
        for i, req in enumerate(requests):
            if req.is_cancelled():  # the caller gave up (deadline, disconnect): nobody will read the answer
                responses[i] = self._skip("cancelled", "request cancelled by the caller before it was computed",
                                          "CANCELLED")
                continue
            sketch = pb_utils.get_input_tensor_by_name(req, "SKETCH").as_numpy()
            class_id = pb_utils.get_input_tensor_by_name(req, "CLASS_ID").as_numpy()
            noise = pb_utils.get_input_tensor_by_name(req, "NOISE").as_numpy()
            problem = self._problem(sketch, class_id, noise)
            if problem is not None:
                responses[i] = self._skip("invalid", problem, "INVALID_ARG")
                continue
            deadline = self._deadline_s(req)
            too_long = None if deadline is not None else self._too_long(sketch.shape[0], req.timeout())
            if too_long is not None:  # a caller that sent its deadline is judged by it instead (_refuse_late)
                responses[i] = self._skip("over_timeout", too_long, "INVALID_ARG")
                continue
            todo.append(_Pending(i, (sketch, class_id, noise), deadline))
        first = True
        while todo:
            if not first:  # the first check was done above; between chunks callers may have left
                for t in todo:
                    if requests[t.index].is_cancelled():
                        responses[t.index] = self._skip("cancelled", "request cancelled by the caller while its batch "
                                                     "was computed", "CANCELLED")
                todo = [t for t in todo if responses[t.index] is None]
            first = False
            todo = self._refuse_late(todo, responses)
            if not todo:
                break
            chunk, rows = [], 0  # (pending request, first row, end row): at most batch_limit images
            for t in todo:
                done = t.done
                take = min(t.rows - done, self.batch_limit - rows)
                if take <= 0:
                    break
                chunk.append((t, done, done + take))
                rows += take
            whole = len(chunk) == 1 and chunk[0][1] == 0 and chunk[0][2] == chunk[0][0].rows  # no copy needed
            feed = {name: (chunk[0][0].inputs[k] if whole else np.concatenate([t.inputs[k][a:b] for t, a, b in chunk]))
                    for k, name in enumerate(("SKETCH", "CLASS_ID", "NOISE"))}
            t0 = time.monotonic()
            images = self._run(feed)
            self._observe(rows, time.monotonic() - t0)
            self.images_metric.increment(len(images))
            start = 0
            for t, a, b in chunk:
                t.parts.append(images[start:start + b - a])
                start += b - a
                if b == t.rows:
                    out = t.parts[0] if len(t.parts) == 1 else np.concatenate(t.parts)
                    responses[t.index] = pb_utils.InferenceResponse(output_tensors=self._outputs(out))
            todo = [t for t in todo if responses[t.index] is None]
        return responses

    def _outputs(self, images):
        """A response's tensors: IMAGE, and this version's checkpoint per image when the config lists CHECKPOINT."""
        out = [pb_utils.Tensor("IMAGE", images)]
        if self.checkpoint_out:
            out.append(pb_utils.Tensor("CHECKPOINT", np.full((len(images), 1), self.checkpoint.encode(), dtype=object)))
        return out

    def _too_long(self, images, timeout_us):
        """Why a request of `images` with the caller's `timeout_us` can never be answered in time, or None: its own
        compute, at the machine's current speed, is longer than the timeout plus the compute reserve."""
        if self.cost_a <= 0 or not timeout_us:
            return None
        allowed = timeout_us / 1e6 + self.reserve_s
        own = self._predict_s(images)
        if own <= allowed:
            return None
        fits = 0
        while fits < images and self._predict_s(fits + 1) <= allowed:
            fits += 1
        return (f"refused: this request's {images} images take ~{1e3 * own:.0f} ms to compute on this server, longer "
                f"than the {1e3 * allowed:.0f} ms its timeout of {timeout_us / 1e3:.0f} ms gives it (the timeout "
                f"bounds the wait in the queue; the server adds its compute reserve of "
                f"{1e3 * self.reserve_s:.0f} ms); send "
                + (f"at most {fits} images per request or " if fits else "") + "a longer timeout")

    def _refuse_late(self, todo, responses):
        """Refuse (UNAVAILABLE) the requests whose deadline the predicted finish misses, in arrival order; the
        time of a refused request is not counted against the ones behind it."""
        if self.cost_a <= 0 or all(t.deadline is None for t in todo):
            return todo
        now, ahead, kept = time.time(), 0, []
        for t in todo:
            left = t.rows - t.done
            finish = now + self._predict_s(ahead + left)
            if t.deadline is not None and finish > t.deadline:
                responses[t.index] = self._skip(
                    "late", f"refused: this request would finish {1e3 * (finish - t.deadline):.0f} ms after its "
                    f"deadline (predicted {1e3 * (finish - now):.0f} ms of compute, {1e3 * (t.deadline - now):.0f} ms "
                    "left); "
                    "the server is at capacity, retry or use a longer deadline", "UNAVAILABLE")
                continue
            ahead += left
            kept.append(t)
        return kept

    def _observe(self, images, seconds):
        """Follow the machine's speed: smooth observed / calibrated time of the chunk just run."""
        if self.cost_a > 0:
            ratio = seconds / (self.cost_a * images + self.cost_b)
            self.cost_scale = min(20.0, max(0.5, 0.8 * self.cost_scale + 0.2 * ratio))

    def _skip(self, reason, message, code_name):
        self.skipped_metric[reason].increment(1)
        return _error(message, code_name)

    def _run(self, feed):
        if self.runtime == "openvino":
            return self.session(feed)["IMAGE"]
        return self.session.run(["IMAGE"], feed)[0]

    def finalize(self):
        self.session = None
        # metrics before their families, as Triton requires
        self.images_metric = self.skipped_metric = self.executing_metric = self.info_metric = None
        self._families = None
