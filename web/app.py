"""The gateway: a Starlette app that turns `POST /v1/generate` (an image body) into `AsyncSketchClient` calls (the
image, then its class confidence when the server has a scorer), and serves `/v1/sketch`, `/v1/grid` and the page.

Every failure is answered with JSON `{"error": ...}` and a status that says whose fault it was: 400 bad input,
413 body too large, 503 (+ Retry-After) tritonserver unavailable or not ready, 504 deadline passed, 502 any other
tritonserver answer; a client that leaves before its image is counted as 499 and its tritonserver call cancelled.
Images are decoded and encoded in worker threads so one big upload never stalls the loop.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import io
import json
import logging
import secrets
import time
from pathlib import Path
from urllib.parse import quote

import anyio
import numpy as np
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sketchygan_client import (
    AsyncSketchClient,
    DeadlineExceeded,
    InvalidInput,
    ModelNotReady,
    ServerUnavailable,
    SketchClientError,
    VersionNotServed,
)
from sketchygan_client.images import to_image, to_sketch
from web.auth import require_key
from web.canary import CanarySplit
from web.metrics import GatewayMetrics
from web.photo_sketch import photo_to_sketch
from web.query import (
    MAX_SEED,
    GatewayError,
    parse_grid_seeds,
    parse_seed,
    parse_seed_list,
    parse_version,
    required_class,
)
from web.transport import read_body, until_disconnect

log = logging.getLogger("web")
STATIC = Path(__file__).resolve().parent / "static"
# the page's own assets only: no inline script, no third-party origin
SECURITY_HEADERS = {"content-security-policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                                               "base-uri 'none'; frame-ancestors 'none'",
                    "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


@dataclasses.dataclass(frozen=True)
class GatewayConfig:
    """Where tritonserver is and how patient the gateway is with it and with uploads."""

    triton: str = "127.0.0.1:8001"
    timeout_s: float = 10.0  # deadline of each call to tritonserver (-> 504 when it passes)
    retries: int = 3  # retries of "not executed" answers (a restart in progress) before answering 503
    max_body_bytes: int = 4 << 20  # larger uploads get 413, checked before the body is read
    retry_after_s: int = 2  # the Retry-After of a 503
    api_key: str | None = dataclasses.field(default=None, repr=False)  # web/auth.py; None: no key asked
    # during a canary (two versions served), this share of the calls that name no version goes to the newer one,
    # the rest to the older (each pinned by version); 0: Triton's choice, the newest
    canary_percent: float = 0.0
    # TLS to tritonserver: its CA (PEM file), and this gateway's certificate and key for a server requiring them
    triton_tls_ca: str | None = None
    triton_tls_cert: str | None = None
    triton_tls_key: str | None = None

    def __post_init__(self) -> None:
        for name, ok, want in (("timeout_s", self.timeout_s > 0, "> 0"), ("retries", self.retries >= 0, ">= 0"),
                               ("max_body_bytes", self.max_body_bytes > 0, "> 0"),
                               ("retry_after_s", self.retry_after_s >= 0, ">= 0"),
                               ("canary_percent", 0 <= self.canary_percent <= 100, "0..100")):
            if not ok:
                raise ValueError(f"GatewayConfig.{name} must be {want}, got {getattr(self, name)!r}")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _from_client(e: SketchClientError, cfg: GatewayConfig) -> GatewayError:
    """The client library's typed error -> the HTTP answer."""
    retry = {"retry-after": str(cfg.retry_after_s)}
    if isinstance(e, InvalidInput):
        return GatewayError(400, str(e))
    if isinstance(e, VersionNotServed):  # a `version` the server does not serve (or no longer: a rollout moved on)
        return GatewayError(404, f"that model version is not served (python -m serving versions lists them): {e}")
    if isinstance(e, (ServerUnavailable, ModelNotReady)):
        return GatewayError(503, f"tritonserver at {cfg.triton} is unavailable or the model is not ready: {e}", retry)
    if isinstance(e, DeadlineExceeded):
        return GatewayError(504, f"no answer from tritonserver within {cfg.timeout_s:g} s")
    return GatewayError(502, f"tritonserver answered with an error: {e}")


def grid_image(images, rows: int, cols: int):
    """[rows x cols, S, S, 3] images (row-major) -> one [rows x S, cols x S, 3] picture."""
    s = images.shape[1]
    return images.reshape(rows, cols, s, s, 3).transpose(0, 2, 1, 3, 4).reshape(rows * s, cols * s, 3)


def _png(arr) -> bytes:
    """PNG of an image [S, S, 3] (RGB) or a sketch [S, S] (grey)."""
    buf = io.BytesIO()
    (to_image(arr) if arr.ndim == 3 else Image.fromarray(arr, mode="L")).save(buf, format="PNG")
    return buf.getvalue()


def create_app(cfg: GatewayConfig = GatewayConfig()) -> Starlette:
    """The ASGI app; the tritonserver client (one gRPC channel) lives as long as the app's lifespan."""
    metrics = GatewayMetrics()
    state: dict[str, AsyncSketchClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state["client"] = AsyncSketchClient(cfg.triton, timeout_s=cfg.timeout_s, retries=cfg.retries,
                                            metrics=metrics.client, root_certificates=cfg.triton_tls_ca,
                                            certificate_chain=cfg.triton_tls_cert, private_key=cfg.triton_tls_key)
        try:
            yield
        finally:
            await state["client"].close()

    async def client_call(coro):
        try:
            return await coro
        except SketchClientError as e:
            raise _from_client(e, cfg) from None

    split = CanarySplit(cfg.canary_percent, lambda: client_call(state["client"].served_versions()))

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    async def classes(request: Request) -> Response:
        info = await client_call(state["client"].info())
        return JSONResponse({"classes": list(info.class_names), "resolution": info.resolution,
                             "image_resolution": info.image_resolution, "styles": list(info.styles),
                             "default_style": info.default_style})

    async def sketch_and_style(request: Request, cls: str | None = None):
        """(model info, the uploaded sketch at the model's size, the style asked for, the class id of `cls`): what
        generate and grid read. The class and style are checked before the image is decoded."""
        body = await read_body(request, cfg.max_body_bytes)
        if not body:
            raise GatewayError(400, "empty body: send the sketch image (PNG or JPEG) as the request body")
        info = await client_call(state["client"].info())
        style = request.query_params.get("style") or None  # absent: the model's default style (a photograph)
        try:
            class_id = None if cls is None else info.class_id(cls)
            info.style_index(style)  # validated here: an unknown style is the caller's 400
            sketch = await anyio.to_thread.run_sync(to_sketch, body, info.resolution)
        except InvalidInput as e:
            raise _from_client(e, cfg) from None
        return info, sketch, style, class_id

    async def generate(request: Request) -> Response:
        q = request.query_params
        cls = required_class(q)
        seed = parse_seed(q.get("seed"))
        version = parse_version(q.get("version"))
        _, sketch, style, class_id = await sketch_and_style(request, cls)
        t0 = time.perf_counter()
        arr, receipt = await until_disconnect(request, split.run(version, lambda v: client_call(
            state["client"].generate_explained(sketch, class_id, seed=seed, style=style, version=v))))
        metrics.answered([receipt], time.perf_counter() - t0)
        png = await anyio.to_thread.run_sync(_png, arr)
        # the receipt: which model made the image and how to make it again (docs/web.md)
        return Response(png, media_type="image/png", headers=receipt.headers())

    async def variations(request: Request) -> Response:
        """The sketch in one class and style with several seeds, computed in one batched call (and scored in one):
        JSON with each image (base64 PNG) and its receipt. What the playground sends per drawing update."""
        q = request.query_params
        cls = required_class(q)
        seeds = parse_seed_list(q.get("seeds"))
        explicit = parse_version(q.get("version"))
        info, sketch, style, class_id = await sketch_and_style(request, cls)
        client = state["client"]
        spread = min(len(seeds), info.instances)
        t0 = time.perf_counter()

        async def images_and_receipts(version: str | None):
            # the seeds in one contiguous part per model instance (its config's instance groups), computed at once;
            # the parts' answers, concatenated, are in the seeds' order
            bounds = [len(seeds) * i // spread for i in range(spread + 1)]
            parts = list(zip(bounds, bounds[1:]))

            async def part(a: int, b: int, pin: str | None):
                return await client_call(client.generate_batch_explained(
                    [sketch] * (b - a), [class_id] * (b - a), seeds[a:b], style, version=pin))

            answers = await asyncio.gather(*(part(a, b, version) for a, b in parts))
            newest = max((rs[0].model_version for _, rs in answers), key=int)
            if version is None and any(rs[0].model_version != newest for _, rs in answers):
                # a rollout switched versions between the parts: the parts from the old one again, from the new
                answers = [ans if ans[1][0].model_version == newest else await part(a, b, newest)
                           for ans, (a, b) in zip(answers, parts)]
            arr = np.concatenate([a for a, _ in answers])
            receipts = [r for _, rs in answers for r in rs]
            if await client_call(client.has_scorer()):
                conf = await client_call(client.score(arr, [class_id] * len(seeds)))
                receipts = [dataclasses.replace(r, class_confidence=float(c)) for r, c in zip(receipts, conf)]
            return arr, receipts

        arr, receipts = await until_disconnect(request, split.run(explicit, images_and_receipts))
        metrics.answered(receipts, time.perf_counter() - t0)
        pngs = await anyio.to_thread.run_sync(lambda: [base64.b64encode(_png(a)).decode() for a in arr])
        return JSONResponse({"images": [{"png": png, "receipt": r.as_dict()} for png, r in zip(pngs, receipts)]})

    async def grid(request: Request) -> Response:
        """The sketch in every class x K seeds, computed in batched calls (at most max_batch_size images each): one
        PNG, rows = classes in the model's order, columns = seeds first, first+1, ..."""
        q = request.query_params
        k = parse_grid_seeds(q.get("seeds"))
        first = parse_seed(q.get("seed"))
        first = secrets.randbelow(2**31) if first is None else first  # as the client draws a seed
        explicit = parse_version(q.get("version"))
        if first + k - 1 > MAX_SEED:
            raise GatewayError(400, f"seed + seeds - 1 must be at most {MAX_SEED}; got seed {first} and {k} seeds")
        info, sketch, style, _ = await sketch_and_style(request)
        n_cls = len(info.class_names)
        classes = [c for c in range(n_cls) for _ in range(k)]
        seeds = [first + j for _ in range(n_cls) for j in range(k)]
        client = state["client"]

        async def images_and_scores(version: str | None):
            # one model version for every cell (the client pins the later requests to the first's)
            arr, receipts = await client_call(client.generate_batch_explained(
                [sketch] * len(classes), classes, seeds, style=style, version=version))
            scored = await client_call(client.has_scorer())  # each cell's class confidence, rows = classes
            return arr, receipts[0], (await client_call(client.score(arr, classes)) if scored else None)

        arr, receipt, conf = await until_disconnect(request, split.run(explicit, images_and_scores))
        png = await anyio.to_thread.run_sync(_png, grid_image(arr, n_cls, k))
        headers = {"x-grid-classes": quote(json.dumps(list(info.class_names))),
                   "x-grid-seeds": ",".join(map(str, range(first, first + k))),
                   "x-model-version": receipt.model_version, "x-checkpoint-sha256": receipt.checkpoint_sha256,
                   "x-runtime": info.runtime, "x-precision": info.precision}
        if conf is not None:
            headers["x-grid-confidence"] = json.dumps([[round(float(c), 4) for c in row]
                                                       for row in conf.reshape(n_cls, k)])
        if info.styles:
            headers["x-style"] = info.styles[info.style_index(style)]
        return Response(png, media_type="image/png", headers=headers)

    async def sketch(request: Request) -> Response:
        """A photo (PNG or JPEG) -> the sketch the model expects (PNG, the model's size), to draw over."""
        body = await read_body(request, cfg.max_body_bytes)
        if not body:
            raise GatewayError(400, "empty body: send the photo (PNG or JPEG) as the request body")
        info = await client_call(state["client"].info())
        try:
            gray = await anyio.to_thread.run_sync(photo_to_sketch, body, info.resolution)
        except InvalidInput as e:
            raise _from_client(e, cfg) from None
        return Response(await anyio.to_thread.run_sync(_png, gray), media_type="image/png")

    async def healthz(request: Request) -> Response:
        if await state["client"].ready():
            return JSONResponse({"status": "ready", "triton": cfg.triton})
        return error_response(503, f"model not ready: tritonserver at {cfg.triton} is unreachable or the model is "
                                   f"not loaded", {"retry-after": str(cfg.retry_after_s)})

    async def metrics_route(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def on_gateway_error(request: Request, e: GatewayError) -> Response:
        return error_response(e.status, e.message, e.headers)

    async def on_http_error(request: Request, e: HTTPException) -> Response:
        return error_response(e.status_code, e.detail if isinstance(e.detail, str) else "error", e.headers)

    async def on_disconnect(request: Request, e: ClientDisconnect) -> Response:
        return error_response(400, "client disconnected before the body was complete")

    async def on_unexpected(request: Request, e: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal gateway error (logged on the gateway)")

    app = Starlette(
        routes=[Route("/", index, methods=["GET"]),
                Route("/v1/classes", classes, methods=["GET"]),
                Route("/v1/generate", generate, methods=["POST"]),
                Route("/v1/sketch", sketch, methods=["POST"]),
                Route("/v1/grid", grid, methods=["POST"]),
                Route("/v1/variations", variations, methods=["POST"]),
                Route("/healthz", healthz, methods=["GET"]),
                Route("/metrics", metrics_route, methods=["GET"]),
                Mount("/static", StaticFiles(directory=STATIC), name="static")],
        exception_handlers={GatewayError: on_gateway_error, HTTPException: on_http_error,
                            ClientDisconnect: on_disconnect, Exception: on_unexpected},
        lifespan=lifespan)
    guarded = require_key(app, cfg.api_key) if cfg.api_key else app
    return metrics.middleware(_with_headers(guarded))


def _with_headers(app):
    """Add the security headers to every HTTP response."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(k.encode(), v.encode())
                                                                for k, v in SECURITY_HEADERS.items()]
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped
