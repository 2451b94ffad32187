"""`AsyncSketchClient`: the asyncio client over tritonclient's gRPC API (what it shares with the blocking one:
core.py)."""
from __future__ import annotations

import asyncio
import dataclasses
import time

import numpy as np
from PIL import Image

from sketchygan_client.contract import DEFAULT_URL, SCORER_NAME, ModelInfo, Receipt
from sketchygan_client.core import BATCH_RESTARTS, ClientCore
from sketchygan_client.errors import VersionNotServed
from sketchygan_client.images import to_image


class AsyncSketchClient(ClientCore):
    """asyncio client (tritonclient.grpc.aio); same methods as coroutines. Create it inside the running loop."""

    def __init__(self, url: str = DEFAULT_URL, **kw) -> None:
        super().__init__(url, **kw)
        import tritonclient.grpc as grpcclient
        import tritonclient.grpc.aio as aioclient
        self._g = grpcclient
        self._aio = aioclient
        self._client = aioclient.InferenceServerClient(url, **self._kw)

    async def _refresh(self) -> None:
        if self._due_for_resolution():
            self._resolved_at = time.monotonic()  # one lookup at a time
            if await asyncio.to_thread(self._new_addresses) is not None:
                for stale in self._retired:
                    await stale.close()
                old, self._client = self._client, self._aio.InferenceServerClient(self.url, **self._kw)
                self._retired = [old]

    async def _call(self, method: str, fn, timeout_s: float | None = None):
        await self._refresh()
        att = self._attempts(timeout_s)
        while True:
            try:
                return await fn(att.remaining(), att)
            except Exception as e:  # noqa: BLE001 — translated to the typed error
                await asyncio.sleep(self._failed(method, att, e))

    async def info(self) -> ModelInfo:
        if self._info is None:
            cfg = await self._call("config", self._get_config)
            self._info = ModelInfo.from_config(cfg)
        return self._info

    async def served_versions(self) -> list[str]:
        """The model versions the server serves now, oldest first (two during a canary)."""
        return self._versions(await self._call("metadata", self._get_metadata))

    async def classes(self) -> tuple[str, ...]:
        return (await self.info()).class_names

    async def resolution(self) -> int:
        return (await self.info()).resolution

    async def ready(self) -> bool:
        try:
            return bool(await self._is_ready())
        except Exception:  # noqa: BLE001
            return False

    async def replicas(self) -> list[dict]:
        """Every address the target resolves to now, each asked on its own: live, model ready."""
        return await asyncio.to_thread(self._replica_rows)

    async def generate_batch_array(self, sketches, classes, seeds=None, noises=None, timeout_s=None,
                                   style=None, version=None) -> np.ndarray:
        with self._recorded("generate"):
            answers = await self._answers(self._requests(await self.info(), sketches, classes, seeds, noises, style),
                                          timeout_s, version)
            return np.concatenate([res.as_numpy("IMAGE") for res in answers])

    async def _answers(self, requests: list[list], timeout_s: float | None, version=None) -> list:
        """The generator's response to each request, in order, all from one model version (see
        SketchClient._answers)."""
        fixed = self._fixed(version)
        for attempt in range(BATCH_RESTARTS + 1):
            first = await self._call("generate", self._infer(requests[0], version=fixed), timeout_s)
            pin = fixed or first.get_response().model_version
            try:
                return [first] + [await self._call("generate", self._infer(ins, version=pin), timeout_s)
                                  for ins in requests[1:]]
            except VersionNotServed:
                if fixed or attempt == BATCH_RESTARTS:
                    raise

    async def generate_array(self, sketch, cls, seed=None, noise=None, timeout_s=None, style=None) -> np.ndarray:
        return (await self.generate_batch_array([sketch], [cls], None if seed is None else [seed],
                                                None if noise is None else [noise], timeout_s, style))[0]

    async def generate(self, sketch, cls, seed=None, noise=None, timeout_s=None, style=None) -> Image.Image:
        return to_image(await self.generate_array(sketch, cls, seed, noise, timeout_s, style))

    async def generate_batch(self, sketches, classes, seeds=None, **kw) -> list[Image.Image]:
        return [to_image(a) for a in await self.generate_batch_array(sketches, classes, seeds, **kw)]

    async def generate_batch_explained(self, sketches, classes, seeds, style=None, timeout_s=None,
                                       version=None) -> tuple[np.ndarray, list[Receipt]]:
        """Many images, each with its `Receipt` (see SketchClient.generate_batch_explained)."""
        requests, receipts = self._batch_explained(await self.info(), sketches, classes, seeds, style)
        with self._recorded("generate"):
            answers = await self._answers(requests, timeout_s, version)
        return self._batch_answered(answers, receipts)

    async def generate_explained(self, sketch, cls, seed=None, style=None, timeout_s=None,
                                 score=True, version=None) -> tuple[np.ndarray, Receipt]:
        """One image with its `Receipt` (see SketchClient.generate_explained)."""
        with self._recorded("generate"):
            inputs, receipt = self._explained(await self.info(), sketch, cls, seed, style)
            arr, receipt = self._answered(
                await self._call("generate", self._infer(inputs, version=self._fixed(version)), timeout_s), receipt)
        if score and await self.has_scorer():
            conf = await self.score(arr[None], [receipt.class_name], timeout_s)
            receipt = dataclasses.replace(receipt, class_confidence=float(conf[0]))
        return arr, receipt

    async def has_scorer(self) -> bool:
        """Whether the server serves the class-confidence scorer for this model (asked once)."""
        if self._scorer is None:
            info = await self.info()
            try:
                config = await self._scorer_config()
            except Exception as e:  # noqa: BLE001 — NOT_FOUND means no scorer; anything else is raised typed
                config = self._absent(e)
            self._scorer = self._scorer_found(info, config)
        return self._scorer

    async def score(self, images, classes, timeout_s=None) -> np.ndarray:
        """P(image shows its class) for each image (see SketchClient.score)."""
        with self._recorded("score"):
            parts = []
            for ins in self._score_requests(await self.info(), images, classes):
                res = await self._call("score", self._infer(ins, SCORER_NAME), timeout_s)
                parts.append(res.as_numpy("CONFIDENCE")[:, 0])
            return np.concatenate(parts)

    async def close(self) -> None:
        for c in [*self._retired, self._client]:
            await c.close()

    async def __aenter__(self) -> "AsyncSketchClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
