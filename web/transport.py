"""The HTTP side of a gateway call: the body read under a size limit, and a call cancelled as soon as its client
leaves (its tritonserver call with it)."""
from __future__ import annotations

import anyio
from starlette.requests import Request

from web.query import GatewayError


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` (from Content-Length before
    reading anything, or while streaming a chunked upload)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise GatewayError(400, f"Content-Length must be a byte count, got {declared!r}")
        if int(declared) > limit:
            raise GatewayError(413, f"sketch is {int(declared)} bytes; at most {limit} bytes are accepted")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, f"sketch is over {limit} bytes; at most {limit} bytes are accepted")
        chunks.append(chunk)
    return b"".join(chunks)


CLIENT_GONE = 499  # the status counted when the HTTP client left before its answer (nginx's convention)


async def until_disconnect(request: Request, coro):
    """`coro`'s result, or GatewayError(499) as soon as the HTTP client disconnects: its call to tritonserver is
    cancelled with it, and tritonserver skips a cancelled request that is still queued. The page abandons a live
    update when the pen lifts; without this, the server would still compute it ahead of the final drawing."""
    result: list = []
    error: list[Exception] = []
    async with anyio.create_task_group() as tg:
        async def call() -> None:
            try:
                result.append(await coro)
            except Exception as e:  # noqa: BLE001 — re-raised below, outside the task group
                error.append(e)
            tg.cancel_scope.cancel()

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            tg.cancel_scope.cancel()

        tg.start_soon(call)
        tg.start_soon(watch)
    if error:
        raise error[0]
    if not result:
        raise GatewayError(CLIENT_GONE, "the client closed the request before its answer; its call to tritonserver "
                                         "was cancelled")
    return result[0]
