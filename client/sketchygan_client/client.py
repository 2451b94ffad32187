"""`SketchClient`: the blocking client over tritonclient's gRPC API (what it shares with the asyncio one:
core.py)."""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np
from PIL import Image

from sketchygan_client.contract import DEFAULT_URL, SCORER_NAME, ModelInfo, Receipt
from sketchygan_client.core import BATCH_RESTARTS, ClientCore
from sketchygan_client.errors import VersionNotServed
from sketchygan_client.images import SketchInput, to_image


class SketchClient(ClientCore):
    """Blocking client. Thread-safe for concurrent calls (one gRPC channel). `url` is any gRPC target
    (sketchygan_client/targets.py): with several replicas, each call goes to the next ready one."""

    def __init__(self, url: str = DEFAULT_URL, **kw) -> None:
        super().__init__(url, **kw)
        import tritonclient.grpc as grpcclient
        self._g = grpcclient
        self._client = grpcclient.InferenceServerClient(url, **self._kw)

    def _refresh(self) -> None:
        """A new channel when a dns: target's addresses changed (calls in flight finish on the old one)."""
        if self._due_for_resolution() and self._new_addresses() is not None:
            for stale in self._retired:  # replaced a lookup ago: their calls are long finished
                stale.close()
            old, self._client = self._client, self._g.InferenceServerClient(self.url, **self._kw)
            self._retired = [old]

    def _call(self, method: str, fn, timeout_s: float | None = None):
        """One logical call: deadline, retries of "not executed" answers until the deadline, typed errors.
        `fn(seconds_left, attempts)` makes one attempt."""
        self._refresh()
        att = self._attempts(timeout_s)
        while True:
            try:
                return fn(att.remaining(), att)
            except Exception as e:  # noqa: BLE001 — translated to the typed error
                time.sleep(self._failed(method, att, e))

    @property
    def info(self) -> ModelInfo:
        """The contract read from the model config (once)."""
        if self._info is None:
            cfg = self._call("config", self._get_config)
            self._info = ModelInfo.from_config(cfg)
        return self._info

    def served_versions(self) -> list[str]:
        """The model versions the server serves now, oldest first (two during a canary)."""
        return self._versions(self._call("metadata", self._get_metadata))

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def resolution(self) -> int:
        return self.info.resolution

    def ready(self) -> bool:
        """True when the server is live and the model ready (never raises for an unreachable server)."""
        try:
            return bool(self._is_ready())
        except Exception:  # noqa: BLE001
            return False

    def replicas(self) -> list[dict]:
        """Every address the target resolves to now, each asked on its own: live, model ready."""
        return self._replica_rows()

    def generate_array(self, sketch: SketchInput, cls: str | int, seed: int | None = None,
                       noise: np.ndarray | None = None, timeout_s: float | None = None,
                       style: str | int | None = None) -> np.ndarray:
        """One image as a uint8 array [S, S, 3]."""
        return self.generate_batch_array([sketch], [cls], None if seed is None else [seed],
                                         None if noise is None else [noise], timeout_s, style=style)[0]

    def generate(self, sketch: SketchInput, cls: str | int, seed: int | None = None,
                 noise: np.ndarray | None = None, timeout_s: float | None = None,
                 style: str | int | None = None) -> Image.Image:
        """One image as an RGB PIL image, in `style` (a name of `info.styles`; None: the model's default, a
        photograph). (sketch, class, seed, style) always gives the same image."""
        return to_image(self.generate_array(sketch, cls, seed, noise, timeout_s, style))

    def generate_batch_array(self, sketches: Sequence[SketchInput], classes: Sequence[str | int],
                             seeds: Sequence[int | None] | None = None, noises: Sequence[np.ndarray] | None = None,
                             timeout_s: float | None = None, style: str | int | None = None,
                             version: str | int | None = None) -> np.ndarray:
        """Many images [N, S, S, 3], all in one style and from one model version (`version`, else the client's, else
        whichever answers first); sent in requests of at most max_batch_size."""
        with self._recorded("generate"):
            answers = self._answers(self._requests(self.info, sketches, classes, seeds, noises, style), timeout_s,
                                    version)
            return np.concatenate([res.as_numpy("IMAGE") for res in answers])

    def _answers(self, requests: list[list], timeout_s: float | None, version: str | int | None = None) -> list:
        """The generator's response to each request, in order, all from one model version (`version`, else the
        client's, else the one that answered the first request); when that version stops being served midway (a
        rollout finished), the batch starts again (the caller records the call)."""
        fixed = self._fixed(version)
        for attempt in range(BATCH_RESTARTS + 1):
            first = self._call("generate", self._infer(requests[0], version=fixed), timeout_s)
            pin = fixed or first.get_response().model_version
            try:
                return [first] + [self._call("generate", self._infer(ins, version=pin), timeout_s)
                                  for ins in requests[1:]]
            except VersionNotServed:
                if fixed or attempt == BATCH_RESTARTS:
                    raise

    def generate_batch(self, sketches: Sequence[SketchInput], classes: Sequence[str | int],
                       seeds: Sequence[int | None] | None = None, **kw) -> list[Image.Image]:
        return [to_image(a) for a in self.generate_batch_array(sketches, classes, seeds, **kw)]

    def generate_batch_explained(self, sketches: Sequence[SketchInput], classes: Sequence[str | int],
                                 seeds: Sequence[int], style: str | int | None = None,
                                 timeout_s: float | None = None,
                                 version: str | int | None = None) -> tuple[np.ndarray, list[Receipt]]:
        """Many images [N, S, S, 3] in one style, each with its `Receipt` (the version that answered, one for the
        whole batch; no score — `score` asks for it). Seeds are required, so that every receipt makes its image
        again."""
        requests, receipts = self._batch_explained(self.info, sketches, classes, seeds, style)
        with self._recorded("generate"):
            answers = self._answers(requests, timeout_s, version)
        return self._batch_answered(answers, receipts)

    def generate_explained(self, sketch: SketchInput, cls: str | int, seed: int | None = None,
                           style: str | int | None = None, timeout_s: float | None = None,
                           score: bool = True, version: str | int | None = None) -> tuple[np.ndarray, Receipt]:
        """One image [I, I, 3] with its `Receipt`: which model made it (name, answering version, checkpoint,
        runtime), how to make it again (class, style, seed, the sketch's SHA-256) and, when the server has a
        scorer and `score` is true, how sure it is that the image shows the class (`class_confidence`, 0-1; one
        more round trip)."""
        with self._recorded("generate"):
            inputs, receipt = self._explained(self.info, sketch, cls, seed, style)
            arr, receipt = self._answered(self._call("generate", self._infer(inputs, version=self._fixed(version)),
                                                     timeout_s), receipt)
        if score and self.has_scorer():
            conf = self.score(arr[None], [receipt.class_name], timeout_s)
            receipt = dataclasses.replace(receipt, class_confidence=float(conf[0]))
        return arr, receipt

    def has_scorer(self) -> bool:
        """Whether the server serves the class-confidence scorer for this model (asked once)."""
        if self._scorer is None:
            try:
                config = self._scorer_config()
            except Exception as e:  # noqa: BLE001 — NOT_FOUND means no scorer; anything else is raised typed
                config = self._absent(e)
            self._scorer = self._scorer_found(self.info, config)
        return self._scorer

    def score(self, images, classes: Sequence[str | int], timeout_s: float | None = None) -> np.ndarray:
        """P(image shows its class) for images as the model answers them (uint8 [N, S, S, 3]), by the server's
        scorer: float32 [N] in 0-1. ModelNotReady when the server has no scorer."""
        with self._recorded("score"):
            parts = []
            for ins in self._score_requests(self.info, images, classes):
                res = self._call("score", self._infer(ins, SCORER_NAME), timeout_s)
                parts.append(res.as_numpy("CONFIDENCE")[:, 0])
            return np.concatenate(parts)

    def close(self) -> None:
        for c in [*self._retired, self._client]:
            c.close()

    def __enter__(self) -> "SketchClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
