"""`SketchClient` (blocking) and `AsyncSketchClient` (asyncio) over tritonclient's gRPC API."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from sketchygan_client import targets
from sketchygan_client.contract import DEFAULT_URL, MODEL_NAME, SCORER_NAME, ModelInfo, Receipt, sketch_digest
from sketchygan_client.errors import DeadlineExceeded, InvalidInput, ModelNotReady, SketchClientError, from_grpc
from sketchygan_client.images import SketchInput, to_image, to_sketch
from sketchygan_client.retry import Attempts, RetryPolicy

log = logging.getLogger("sketchygan_client")

MAX_MESSAGE_BYTES = 64 << 20
# a dns: target is looked up again at most this often, and the channel replaced when the addresses changed: gRPC
# re-resolves only when a connection is lost, so replicas added behind a headless Service would otherwise get no
# calls from clients whose connections are all healthy
RERESOLVE_S = 10.0


class _Base:
    """Shared state and request building; subclasses only differ in how they wait for the network."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout_s: float = 10.0, retries: int | None = None,
                 model: str = MODEL_NAME, ssl: bool = False, root_certificates: str | None = None,
                 metrics=None, max_queue_wait_s: float | None = None) -> None:
        """`timeout_s`: each call's deadline. `retries`: at most this many retries (None: until the deadline).
        `max_queue_wait_s`: a request still queued after this long is refused by the server and retried (None: it may
        queue for what its deadline leaves beyond the server's compute reserve)."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if retries is not None and retries < 0:
            raise ValueError(f"retries must be >= 0 or None (until the deadline), got {retries}")
        if max_queue_wait_s is not None and max_queue_wait_s <= 0:
            raise ValueError(f"max_queue_wait_s must be positive or None (what the deadline leaves), got "
                             f"{max_queue_wait_s}")
        self.url, self.timeout_s, self.model = url, timeout_s, model
        self.policy = RetryPolicy(retries=retries, max_queue_wait_s=max_queue_wait_s)
        self.metrics = metrics
        self._target = targets.parse(url)  # a clear error for a malformed target, before gRPC's own
        self.reresolve_s = RERESOLVE_S
        self._addresses: list[str] | None = None
        self._resolved_at = time.monotonic()
        self._retired: list = []  # channels replaced by a re-resolution, closed with the client
        self._kw = {"ssl": ssl or bool(root_certificates), "root_certificates": root_certificates,
                    "channel_args": [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                     ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                     *targets.channel_options()]}
        self._info: ModelInfo | None = None
        self._scorer: bool | None = None  # whether the server has the class-confidence scorer (None: not asked yet)

    # ------------------------------------------------------------ request building

    def _batch(self, info: ModelInfo, sketches: Sequence[SketchInput], classes: Sequence[str | int],
               seeds: Sequence[int | None] | None, noises: Sequence[np.ndarray] | None,
               style: str | int | None = None):
        n = len(sketches)
        if n == 0:
            raise InvalidInput("no sketches given")
        if len(classes) != n:
            raise InvalidInput(f"{n} sketches but {len(classes)} classes")
        if seeds is not None and len(seeds) != n:
            raise InvalidInput(f"{n} sketches but {len(seeds)} seeds")
        if noises is not None and len(noises) != n:
            raise InvalidInput(f"{n} sketches but {len(noises)} noise vectors")
        sk = np.stack([to_sketch(s, info.resolution) for s in sketches])
        cid = np.array([[info.wire_class_id(c, style)] for c in classes], np.int32)
        z = np.stack([info.noise(seeds[i] if seeds is not None else None, noises[i] if noises is not None else None)
                      for i in range(n)])
        return sk, cid, z

    def _explained(self, info: ModelInfo, sketch: SketchInput, cls: str | int, seed: int | None,
                   style: str | int | None) -> tuple[list, Receipt]:
        """One image's request and its receipt (the answering version is filled in from the response). A request
        without a seed gets a random one, so that the receipt can make the image again."""
        sk = to_sketch(sketch, info.resolution)
        seed = secrets.randbelow(2**31) if seed is None else seed
        (inputs,) = self._requests(info, [sk], [cls], [seed], None, style)
        return inputs, self._receipt(info, sk, cls, seed, style)

    @staticmethod
    def _receipt(info: ModelInfo, sk: np.ndarray, cls: str | int, seed: int, style: str | int | None) -> Receipt:
        """The receipt of one prepared sketch's image (the answering version is filled in from the response)."""
        return Receipt(info.name, "", info.checkpoint_sha256, info.runtime, info.class_names[info.class_id(cls)],
                       info.styles[info.style_index(style)] if info.styles else None, int(seed), sketch_digest(sk))

    @staticmethod
    def _answered(res, receipt: Receipt) -> tuple[np.ndarray, Receipt]:
        version = res.get_response().model_version
        return res.as_numpy("IMAGE")[0], dataclasses.replace(receipt, model_version=version)

    def _chunked(self, info: ModelInfo, tensors: dict[str, np.ndarray]) -> list[list]:
        """Named batch arrays -> one list of InferInputs per request of at most max_batch_size rows."""
        from tritonclient.utils import np_to_triton_dtype
        n = len(next(iter(tensors.values())))
        step = info.max_batch_size or 1
        out = []
        for a in range(0, n, step):
            ins = []
            for name, arr in tensors.items():
                part = np.ascontiguousarray(arr[a:a + step])
                ins.append(self._g.InferInput(name, list(part.shape), np_to_triton_dtype(part.dtype)))
                ins[-1].set_data_from_numpy(part)
            out.append(ins)
        return out

    def _requests(self, info: ModelInfo, sketches, classes, seeds, noises, style=None) -> list[list]:
        """Validated inputs, one list per request of at most max_batch_size images."""
        sk, cid, z = self._batch(info, sketches, classes, seeds, noises, style)
        return self._chunked(info, {"SKETCH": sk, "CLASS_ID": cid, "NOISE": z})

    def _score_requests(self, info: ModelInfo, images, classes: Sequence[str | int]) -> list[list]:
        """Inputs of the scorer, one list per request of at most max_batch_size images: IMAGE [N, S, S, 3] uint8 and
        the plain class ids (the scorer asks about the class, whatever the style)."""
        imgs = np.asarray(images)
        s = info.image_resolution
        if imgs.ndim != 4 or imgs.shape[1:] != (s, s, 3) or imgs.dtype != np.uint8:
            raise InvalidInput(f"images to score must be uint8 [N, {s}, {s}, 3] (as the model answers them), got "
                               f"{imgs.dtype} {list(imgs.shape)}")
        if len(classes) != len(imgs):
            raise InvalidInput(f"{len(imgs)} images but {len(classes)} classes")
        cid = np.array([[info.class_id(c)] for c in classes], np.int32)
        return self._chunked(info, {"IMAGE": imgs, "CLASS_ID": cid})

    def _scorer_found(self, info: ModelInfo, config: dict | None) -> bool:
        """Whether the scorer `config` (None: the server has no scorer) can score this model's images."""
        if config is None:
            return False
        cfg = config.get("config", config)
        params = {k: v.get("string_value", "") for k, v in cfg.get("parameters", {}).items()}
        names = tuple(json.loads(params.get("class_names", "[]")))
        if names != info.class_names:
            raise SketchClientError(f"the server's {SCORER_NAME} scores classes {list(names)}, not the generator's "
                                    f"{list(info.class_names)}: re-export the repository with a scorer trained on the "
                                    "generator's data")
        return True

    def _scorer_config(self):
        return self._client.get_model_config(SCORER_NAME, as_json=True, client_timeout=min(self.timeout_s, 5.0))

    @staticmethod
    def _absent(e: Exception):
        """None when `e` says the server has no scorer model; else raises the typed error."""
        err = _translate(e)
        if isinstance(err, ModelNotReady):
            return None
        raise err from None

    @contextlib.contextmanager
    def _recorded(self, method: str) -> Iterator[None]:
        """Time the block for the metrics and turn any failure into this library's typed errors."""
        t0 = time.perf_counter()
        err = None
        try:
            yield
        except Exception as e:  # noqa: BLE001 — translated to the typed error
            err = _translate(e)
            raise err from None
        finally:
            if self.metrics is not None:
                self.metrics.observe(method, time.perf_counter() - t0, err)

    # ------------------------------------------------------------ one attempt and what follows a failed one
    # The sync and asyncio clients share these: tritonclient's blocking and aio clients have the same methods,
    # so each builder below returns either the answer or an awaitable of it.

    def _attempts(self, timeout_s: float | None) -> Attempts:
        reserve = self._info.compute_reserve_s if self._info is not None else None
        return Attempts(timeout_s or self.timeout_s, self.policy, reserve)

    def _failed(self, method: str, att: Attempts, e: Exception) -> float:
        """Seconds to wait before the next attempt; raises the typed error when the failure is final."""
        error = _translate(e)
        pause = att.backoff(error)
        log.debug("%s: attempt %d failed (%s: %s); retrying in %.2f s", method, att.attempt, type(error).__name__,
                  error, pause)
        if self.metrics is not None:
            self.metrics.retries.labels(method).inc()
        return pause

    def _get_config(self, seconds_left: float, _att: Attempts):
        return self._client.get_model_config(self.model, as_json=True, client_timeout=seconds_left)

    def _infer(self, inputs: list, model: str | None = None):
        """One attempt at `inputs` (to the generator, or to `model`), sending what is left of the deadline (less the
        server's compute reserve) as the request's queue timeout, and the deadline itself so that the server can
        refuse what it cannot finish."""
        def attempt(seconds_left: float, att: Attempts):
            if model is None:
                self._fits(inputs[0].shape()[0], seconds_left)
            return self._client.infer(
                model or self.model, inputs, client_timeout=seconds_left, timeout=att.queue_timeout_us(seconds_left),
                parameters={"deadline_unix_us": att.deadline_unix_us(seconds_left)})
        return attempt

    def _fits(self, images: int, seconds_left: float) -> None:
        """Refuse at once a request whose own compute, at the server's published cost, is longer than what is left
        of the call's deadline: it could never be answered in time (the server would refuse it too)."""
        own = self._info.compute_s(images) if self._info is not None else None
        if own is None or own <= seconds_left:
            return
        fits = max((n for n in range(images) if (self._info.compute_s(n) or 0) <= seconds_left), default=0)
        raise DeadlineExceeded(
            f"{images} images take ~{1e3 * own:.0f} ms to compute on this server (its published cost), longer than "
            f"the {1e3 * seconds_left:.0f} ms left of this call's deadline: "
            + (f"send at most {fits} images per call or " if fits else "") + "give the call a longer deadline")

    def _due_for_resolution(self) -> bool:
        return (self._target.scheme == "dns" and not targets.is_literal(self._target)
                and time.monotonic() - self._resolved_at >= self.reresolve_s)

    def _new_addresses(self) -> list[str] | None:
        """The target's addresses when they differ from the last lookup (None: unchanged or lookup failed)."""
        self._resolved_at = time.monotonic()
        try:
            found = targets.resolve(self.url)
        except InvalidInput:
            return None  # DNS hiccup: keep the channel we have
        if self._addresses is None:
            self._addresses = found
            return None
        if found == self._addresses:
            return None
        self._addresses = found
        return found

    def _is_ready(self):
        return self._client.is_model_ready(self.model, client_timeout=min(self.timeout_s, 5.0))

    def _replica_rows(self) -> list[dict]:
        """Every address the target resolves to now, each asked on its own (blocking): live, model ready."""
        import tritonclient.grpc as grpcclient
        out = []
        for addr in targets.resolve(self.url):
            row = {"address": addr, "live": False, "ready": False}
            try:
                with grpcclient.InferenceServerClient(addr, **self._kw) as c:
                    t = min(self.timeout_s, 3.0)
                    row["live"] = bool(c.is_server_live(client_timeout=t))
                    row["ready"] = bool(c.is_model_ready(self.model, client_timeout=t))
            except Exception as e:  # noqa: BLE001 — reported per replica, never raised
                row["error"] = str(_translate(e))
            out.append(row)
        return out


def _translate(e: Exception) -> SketchClientError:
    from tritonclient.utils import InferenceServerException
    if isinstance(e, SketchClientError):
        return e
    if isinstance(e, InferenceServerException):
        return from_grpc(e.status(), e.message() or str(e))
    return SketchClientError(str(e))


class SketchClient(_Base):
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
                             timeout_s: float | None = None, style: str | int | None = None) -> np.ndarray:
        """Many images [N, S, S, 3], all in one style; sent in requests of at most max_batch_size."""
        with self._recorded("generate"):
            answers = self._answers(self._requests(self.info, sketches, classes, seeds, noises, style), timeout_s)
            return np.concatenate([res.as_numpy("IMAGE") for res in answers])

    def _answers(self, requests: list[list], timeout_s: float | None) -> list:
        """The generator's response to each request, in order (the caller records the call)."""
        return [self._call("generate", self._infer(ins), timeout_s) for ins in requests]

    def generate_batch(self, sketches: Sequence[SketchInput], classes: Sequence[str | int],
                       seeds: Sequence[int | None] | None = None, **kw) -> list[Image.Image]:
        return [to_image(a) for a in self.generate_batch_array(sketches, classes, seeds, **kw)]

    def generate_batch_explained(self, sketches: Sequence[SketchInput], classes: Sequence[str | int],
                                 seeds: Sequence[int], style: str | int | None = None,
                                 timeout_s: float | None = None) -> tuple[np.ndarray, list[Receipt]]:
        """Many images [N, S, S, 3] in one style, each with its `Receipt` (the version that answered its request;
        no score — `score` asks for it). Seeds are required, so that every receipt makes its image again."""
        info = self.info
        sk = [to_sketch(s, info.resolution) for s in sketches]
        receipts = [self._receipt(info, k, c, seed, style) for k, c, seed in zip(sk, classes, seeds)]
        with self._recorded("generate"):
            answers = self._answers(self._requests(info, sk, classes, seeds, None, style), timeout_s)
        images = [res.as_numpy("IMAGE") for res in answers]
        versions = [res.get_response().model_version for res, part in zip(answers, images) for _ in part]
        return np.concatenate(images), [dataclasses.replace(r, model_version=v) for r, v in zip(receipts, versions)]

    def generate_explained(self, sketch: SketchInput, cls: str | int, seed: int | None = None,
                           style: str | int | None = None, timeout_s: float | None = None,
                           score: bool = True) -> tuple[np.ndarray, Receipt]:
        """One image [I, I, 3] with its `Receipt`: which model made it (name, answering version, checkpoint,
        runtime), how to make it again (class, style, seed, the sketch's SHA-256) and, when the server has a
        scorer and `score` is true, how sure it is that the image shows the class (`class_confidence`, 0-1; one
        more round trip)."""
        with self._recorded("generate"):
            inputs, receipt = self._explained(self.info, sketch, cls, seed, style)
            arr, receipt = self._answered(self._call("generate", self._infer(inputs), timeout_s), receipt)
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


class AsyncSketchClient(_Base):
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
                                   style=None) -> np.ndarray:
        with self._recorded("generate"):
            parts = []
            for ins in self._requests(await self.info(), sketches, classes, seeds, noises, style):
                res = await self._call("generate", self._infer(ins), timeout_s)
                parts.append(res.as_numpy("IMAGE"))
            return np.concatenate(parts)

    async def generate_array(self, sketch, cls, seed=None, noise=None, timeout_s=None, style=None) -> np.ndarray:
        return (await self.generate_batch_array([sketch], [cls], None if seed is None else [seed],
                                                None if noise is None else [noise], timeout_s, style))[0]

    async def generate(self, sketch, cls, seed=None, noise=None, timeout_s=None, style=None) -> Image.Image:
        return to_image(await self.generate_array(sketch, cls, seed, noise, timeout_s, style))

    async def generate_batch(self, sketches, classes, seeds=None, **kw) -> list[Image.Image]:
        return [to_image(a) for a in await self.generate_batch_array(sketches, classes, seeds, **kw)]

    async def generate_explained(self, sketch, cls, seed=None, style=None, timeout_s=None,
                                 score=True) -> tuple[np.ndarray, Receipt]:
        """One image with its `Receipt` (see SketchClient.generate_explained)."""
        with self._recorded("generate"):
            inputs, receipt = self._explained(await self.info(), sketch, cls, seed, style)
            arr, receipt = self._answered(await self._call("generate", self._infer(inputs), timeout_s), receipt)
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
