"""One call's deadline and its retries: exponential backoff with full jitter, capped, until the deadline.

Retried: every answer that means "not executed, try again" (`SketchClientError.retryable`: UNAVAILABLE, a dead
model process, a model being reloaded or a server shutting down). Inference is a pure function, so a retry is
always safe. An explicit loop rather than gRPC's service-config retry policy: it also retries the INTERNAL and
NOT_FOUND answers Triton gives while it recovers, the caller's metrics count every retry, and the same rule serves
the sync and asyncio clients.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

from sketchygan_client.errors import DeadlineExceeded, SketchClientError


@dataclass(frozen=True)
class RetryPolicy:
    """`retries=None`: retry until the deadline. `compute_reserve_s`: how much of the remaining deadline is kept
    for computing when the rest is sent to the server as the request's queue timeout (the server applies the
    smaller of that and its own default); used only when the server publishes no measured reserve of its own.
    `max_queue_wait_s`: never let a request wait longer than this in the server's queue (it is refused then, and
    retried while the deadline allows): for a caller that would rather fail fast than queue; None: its deadline."""

    retries: int | None = None
    max_queue_wait_s: float | None = None
    base_delay_s: float = 0.05
    max_delay_s: float = 0.5
    compute_reserve_s: float = 0.25


def queue_wait_s(left: float, reserve_s: float, cap_s: float | None = None) -> float:
    """What a caller with `left` seconds of deadline sends as the request's queue timeout: what is left less the
    server's compute reserve (at most 3/4 of what is left is kept for compute), at most `cap_s`."""
    wait = max(left - reserve_s, left / 4)
    return wait if cap_s is None else min(wait, cap_s)


class Attempts:
    """Book-keeping of one call: time left before the deadline, and the pause before the next try."""

    def __init__(self, timeout_s: float, policy: RetryPolicy, reserve_s: float | None = None) -> None:
        self.timeout_s, self.policy = timeout_s, policy
        self.reserve_s = policy.compute_reserve_s if reserve_s is None else reserve_s
        self.deadline = time.monotonic() + timeout_s
        self.attempt = 0

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"no answer within the {self.timeout_s:g} s deadline", "DEADLINE_EXCEEDED")
        return left

    def queue_timeout_us(self, left: float) -> int:
        """The request timeout sent to the server: a request still queued when it expires is rejected instead of
        computed for a caller who has gone. Keeps the compute reserve (at most 3/4 of what is left) for compute, and
        is at most the policy's `max_queue_wait_s`."""
        return max(1, int(1e6 * queue_wait_s(left, self.reserve_s, self.policy.max_queue_wait_s)))

    @staticmethod
    def deadline_unix_us(left: float) -> int:
        """The call's deadline on the wall clock, sent as the request parameter `deadline_unix_us`: the server
        refuses a request it predicts cannot be answered in time instead of computing it for nobody (this assumes
        the client's and the server's clocks agree to well within the deadline, as NTP keeps them)."""
        return int(1e6 * (time.time() + left))

    def backoff(self, error: SketchClientError) -> float:
        """Seconds to sleep before retrying, or re-raise `error` when it is final or retries/time are used up."""
        p = self.policy
        if not error.retryable:
            raise error
        pause = random.uniform(0.0, min(p.max_delay_s, p.base_delay_s * 2 ** min(self.attempt, 16)))
        if (p.retries is not None and self.attempt >= p.retries) or time.monotonic() + pause >= self.deadline:
            raise error
        self.attempt += 1
        return pause
