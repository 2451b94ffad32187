"""What the blocking and the asyncio client share (`ClientCore`): the channel settings, request building (sketches,
class ids, noise, the receipt, chunks of at most max_batch_size), the scorer's requests, one attempt and what follows a
failed one (retries, deadlines, re-resolving a dns: target). The two clients (client.py, async_client.py) differ only
in how they wait for the network."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import time
from typing import Iterator, Sequence

import numpy as np

from sketchygan_client import targets
from sketchygan_client.contract import (
    CHECKPOINT_OUTPUT,
    DEFAULT_URL,
    MODEL_NAME,
    SCORER_NAME,
    ModelInfo,
    Receipt,
    sketch_digest,
)
from sketchygan_client.errors import DeadlineExceeded, InvalidInput, ModelNotReady, SketchClientError, from_grpc
from sketchygan_client.images import SketchInput, to_sketch
from sketchygan_client.retry import Attempts, RetryPolicy

log = logging.getLogger("sketchygan_client")

MAX_MESSAGE_BYTES = 64 << 20
# a dns: target is looked up again at most this often, and the channel replaced when the addresses changed: gRPC
# re-resolves only when a connection is lost, so replicas added behind a headless Service would otherwise get no
# calls from clients whose connections are all healthy
RERESOLVE_S = 10.0
# a batch whose pinned version stopped being served starts again at most this often (one rollout and a rollback)
BATCH_RESTARTS = 2


def _version_number(version: str | int) -> str:
    """`version` as Triton names it ('2'), or '' when it is not a model version number."""
    return str(int(version)) if str(version).isdigit() else ""


def _not_a_version(version) -> str:
    return f"version must be a model version number such as 2, got {version!r}"


class ClientCore:
    """Shared state and request building; subclasses only differ in how they wait for the network."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout_s: float = 10.0, retries: int | None = None,
                 model: str = MODEL_NAME, ssl: bool = False, root_certificates: str | None = None,
                 certificate_chain: str | None = None, private_key: str | None = None,
                 metrics=None, max_queue_wait_s: float | None = None, version: str | int | None = None) -> None:
        """`timeout_s`: each call's deadline. `retries`: at most this many retries (None: until the deadline).
        `max_queue_wait_s`: a request still queued after this long is refused by the server and retried (None: it may
        queue for what its deadline leaves beyond the server's compute reserve). `version`: every generator call
        goes to this model version (None: the newest the server serves; a batch's requests all go to the version
        that answered its first). TLS: `root_certificates` (PEM file) verifies the server; `certificate_chain` and
        `private_key` (PEM files) are this client's identity for a server that requires one (mutual TLS)."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if retries is not None and retries < 0:
            raise ValueError(f"retries must be >= 0 or None (until the deadline), got {retries}")
        if max_queue_wait_s is not None and max_queue_wait_s <= 0:
            raise ValueError(f"max_queue_wait_s must be positive or None (what the deadline leaves), got "
                             f"{max_queue_wait_s}")
        number = "" if version is None else _version_number(version)
        if version is not None and not number:
            raise ValueError(_not_a_version(version))
        self.url, self.timeout_s, self.model = url, timeout_s, model
        self.version = number
        self.policy = RetryPolicy(retries=retries, max_queue_wait_s=max_queue_wait_s)
        self.metrics = metrics
        self._target = targets.parse(url)  # a clear error for a malformed target, before gRPC's own
        self.reresolve_s = RERESOLVE_S
        self._addresses: list[str] | None = None
        self._resolved_at = time.monotonic()
        self._retired: list = []  # channels replaced by a re-resolution, closed with the client
        if bool(certificate_chain) != bool(private_key):
            raise ValueError("a client certificate needs both certificate_chain and private_key (PEM files)")
        for what, path in (("root_certificates", root_certificates), ("certificate_chain", certificate_chain),
                           ("private_key", private_key)):
            if path is not None and not os.path.isfile(path):
                raise ValueError(f"{what}: no file {path!r} (a PEM file is expected)")
        self._kw = {"ssl": ssl or bool(root_certificates or certificate_chain), "root_certificates": root_certificates,
                    "certificate_chain": certificate_chain, "private_key": private_key,
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

    def _batch_explained(self, info: ModelInfo, sketches, classes, seeds, style) -> tuple[list[list], list[Receipt]]:
        """Many images' requests (at most max_batch_size each) and their receipts (versions filled in from the
        answers: `_batch_answered`)."""
        sk = [to_sketch(s, info.resolution) for s in sketches]
        receipts = [self._receipt(info, k, c, seed, style) for k, c, seed in zip(sk, classes, seeds)]
        return self._requests(info, sk, classes, seeds, None, style), receipts

    @staticmethod
    def _answering(res) -> dict[str, str]:
        """What a response says of the version that computed it: its number and, where the server answers it (the
        CPU model's CHECKPOINT output), its checkpoint's SHA-256 (else the receipt keeps the config's)."""
        out = {"model_version": res.get_response().model_version}
        checkpoint = res.as_numpy(CHECKPOINT_OUTPUT)
        if checkpoint is not None and checkpoint.size:
            value = checkpoint.reshape(-1)[0]
            out["checkpoint_sha256"] = value.decode() if isinstance(value, bytes) else str(value)
        return out

    @classmethod
    def _batch_answered(cls, answers: list, receipts: list[Receipt]) -> tuple[np.ndarray, list[Receipt]]:
        """The images of `_batch_explained`'s answers, in order, and each receipt with the version that answered."""
        images = [res.as_numpy("IMAGE") for res in answers]
        who = [w for res, part in zip(answers, images) for w in [cls._answering(res)] * len(part)]
        return np.concatenate(images), [dataclasses.replace(r, **w) for r, w in zip(receipts, who)]

    @staticmethod
    def _receipt(info: ModelInfo, sk: np.ndarray, cls: str | int, seed: int, style: str | int | None) -> Receipt:
        """The receipt of one prepared sketch's image (the answering version is filled in from the response)."""
        return Receipt(info.name, "", info.checkpoint_sha256, info.runtime, info.class_names[info.class_id(cls)],
                       info.styles[info.style_index(style)] if info.styles else None, int(seed), sketch_digest(sk),
                       precision=info.precision)

    @classmethod
    def _answered(cls, res, receipt: Receipt) -> tuple[np.ndarray, Receipt]:
        return res.as_numpy("IMAGE")[0], dataclasses.replace(receipt, **cls._answering(res))

    def _fixed(self, version: str | int | None) -> str:
        """The version a call is pinned to: `version`, else the client's ('' : the newest the server serves)."""
        if version is None:
            return self.version
        if not (number := _version_number(version)):
            raise InvalidInput(_not_a_version(version))
        return number

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
        err = translate_error(e)
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
            err = translate_error(e)
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
        error = translate_error(e)
        pause = att.backoff(error)
        log.debug("%s: attempt %d failed (%s: %s); retrying in %.2f s", method, att.attempt, type(error).__name__,
                  error, pause)
        if self.metrics is not None:
            self.metrics.retries.labels(method).inc()
        return pause

    def _get_config(self, seconds_left: float, _att: Attempts):
        return self._client.get_model_config(self.model, as_json=True, client_timeout=seconds_left)

    def _infer(self, inputs: list, model: str | None = None, version: str | None = None):
        """One attempt at `inputs` (to the generator, or to `model`), sending what is left of the deadline (less the
        server's compute reserve) as the request's queue timeout, and the deadline itself so that the server can
        refuse what it cannot finish. The generator's calls go to `version` (None: the client's, else the newest)."""
        def attempt(seconds_left: float, att: Attempts):
            if model is None:
                self._fits(inputs[0].shape()[0], seconds_left)
            return self._client.infer(
                model or self.model, inputs, model_version=(self.version if version is None else version)
                if model is None else "", client_timeout=seconds_left, timeout=att.queue_timeout_us(seconds_left),
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

    def _get_metadata(self, seconds_left: float, _att: Attempts):
        return self._client.get_model_metadata(self.model, client_timeout=seconds_left)

    @staticmethod
    def _versions(metadata) -> list[str]:
        """The model versions a server serves now (its metadata lists the ready ones), oldest first."""
        return sorted(metadata.versions, key=int)

    def _is_ready(self):
        return self._client.is_model_ready(self.model, client_timeout=min(self.timeout_s, 5.0))

    def _replica_rows(self) -> list[dict]:
        """Every address the target resolves to now, each asked on its own (blocking): live, model ready and, when
        ready, what it computes in (its config's `precision`: every replica of a deployment should say the same)."""
        import tritonclient.grpc as grpcclient
        out = []
        for addr in targets.resolve(self.url):
            row = {"address": addr, "live": False, "ready": False}
            try:
                with grpcclient.InferenceServerClient(addr, **self._kw) as c:
                    t = min(self.timeout_s, 3.0)
                    row["live"] = bool(c.is_server_live(client_timeout=t))
                    row["ready"] = bool(c.is_model_ready(self.model, client_timeout=t))
                    if row["ready"]:
                        cfg = c.get_model_config(self.model, as_json=True, client_timeout=t).get("config", {})
                        row["precision"] = cfg.get("parameters", {}).get("precision", {}).get("string_value", "")
            except Exception as e:  # noqa: BLE001 — reported per replica, never raised
                row["error"] = str(translate_error(e))
            out.append(row)
        return out


def translate_error(e: Exception) -> SketchClientError:
    from tritonclient.utils import InferenceServerException
    if isinstance(e, SketchClientError):
        return e
    if isinstance(e, InferenceServerException):
        return from_grpc(e.status(), e.message() or str(e))
    return SketchClientError(str(e))
