"""Typed errors: each carries the server's (or the validator's) message."""
from __future__ import annotations


class SketchClientError(Exception):
    """Base class; `code` is the gRPC status name when the error came from the server."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class InvalidInput(SketchClientError):
    """The request is malformed (rejected locally before sending, or INVALID_ARGUMENT from the server)."""


class ServerUnavailable(SketchClientError):
    """The server could not be reached (UNAVAILABLE after the allowed retries)."""


class DeadlineExceeded(SketchClientError):
    """The call did not complete within its deadline."""


class ModelNotReady(SketchClientError):
    """The server is up but the model is not loaded or not ready."""


def from_grpc(status: str | None, message: str) -> SketchClientError:
    """Map a tritonclient status ('StatusCode.X') + message to the typed error."""
    code = (status or "").replace("StatusCode.", "") or None
    if code == "INVALID_ARGUMENT":
        return InvalidInput(message, code)
    if code == "DEADLINE_EXCEEDED":
        return DeadlineExceeded(message, code)
    if code == "UNAVAILABLE" and "not ready" not in message.lower():
        return ServerUnavailable(message, code)
    if code in ("NOT_FOUND", "UNAVAILABLE") or "unknown model" in message.lower() or "not ready" in message.lower():
        return ModelNotReady(message, code)
    return SketchClientError(message, code)
