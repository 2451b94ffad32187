"""Typed errors: each carries the server's (or the validator's) message, and whether a retry may succeed.

`retryable` marks answers that mean "not executed, try again": the server or a model process is down, restarting
or shutting down. Inference is a pure function, so retrying those is always safe.
"""
from __future__ import annotations

import re


class SketchClientError(Exception):
    """Base class; `code` is the gRPC status name when the error came from the server."""

    def __init__(self, message: str, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class InvalidInput(SketchClientError):
    """The request is malformed (rejected locally before sending, or INVALID_ARGUMENT from the server)."""


class ServerUnavailable(SketchClientError):
    """The server (or one of its model processes) could not take the request; retried until the deadline."""


class DeadlineExceeded(SketchClientError):
    """The call did not complete within its deadline."""


class ModelNotReady(SketchClientError):
    """The server is up but the model is not loaded or not ready (retried while it is being (re)loaded)."""


class VersionNotServed(ModelNotReady):
    """A call pinned to one model version (`version=`, or a batch's later requests pinned to its first answer's)
    that the server does not serve (any more): not retried, since waiting would not bring it back; a batch starts
    again on the version that serves now."""


# Triton 2.51's answers that mean the request was never executed (see docs/reliability.md):
_STUB_DOWN = "is not healthy"  # INTERNAL: "Stub process '<model>_0_1' is not healthy." (a model process died)
_RELOADING = "has no available versions"  # NOT_FOUND while the model is unloaded for a reload or at shutdown
# gRPC's words for a call cut off on the wire, not answered by a model: an L7 proxy (HAProxy) resets the caller's
# stream when the replica behind it dies after it could no longer re-send the call (RST_STREAM -> INTERNAL or
# CANCELLED), or answers a non-gRPC HTTP error (-> UNKNOWN/INTERNAL "Received http2 header with status"). Inference
# is a pure function, so a call that may or may not have run is safe to send again.
_CUT_OFF = ("rst_stream", "stream removed", "received http2 header with status", "socket closed",
            "connection reset", "unexpected eos", "goaway")


# a request for one version that the server does not serve: "'sketchygan' version 1 is not at ready state"
# (UNAVAILABLE: being unloaded or loaded) or "... version 3 is not found" (NOT_FOUND)
_VERSION_GONE = re.compile(r"version \d+ is not (at ready state|found)")


def from_grpc(status: str | None, message: str) -> SketchClientError:
    """Map a tritonclient status ('StatusCode.X') + message to the typed error."""
    code = (status or "").replace("StatusCode.", "") or None
    text = message.lower()
    if code == "INVALID_ARGUMENT":
        return InvalidInput(message, code)
    if code == "DEADLINE_EXCEEDED":
        return DeadlineExceeded(message, code)
    if _VERSION_GONE.search(text):  # a pinned version not (or no longer) loaded: a rollout moved on, or a typo
        return VersionNotServed(message, code)
    if code == "UNAVAILABLE" and "unknown model" in text:  # a model still loading
        return ModelNotReady(message, code, retryable=True)
    if code == "UNAVAILABLE" or (code == "INTERNAL" and _STUB_DOWN in text):
        return ServerUnavailable(message, code, retryable=True)
    if code in ("INTERNAL", "UNKNOWN", "CANCELLED") and any(w in text for w in _CUT_OFF):
        return ServerUnavailable(message, code, retryable=True)
    if code == "NOT_FOUND" and _RELOADING in text:
        return ModelNotReady(message, code, retryable=True)
    if code == "NOT_FOUND" or "unknown model" in text or "not ready" in text:
        return ModelNotReady(message, code)
    return SketchClientError(message, code)
