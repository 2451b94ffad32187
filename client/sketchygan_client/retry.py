"""Deadline + bounded retries with exponential backoff and full jitter, on UNAVAILABLE only.

An explicit loop rather than gRPC's service-config retry policy: the caller's metrics count every retry, and the
same rule serves the sync and asyncio clients. Inference is a pure function, so a retry is always safe.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

from sketchygan_client.errors import DeadlineExceeded, ServerUnavailable


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    base_delay_s: float = 0.05
    max_delay_s: float = 1.0


class Attempts:
    """Book-keeping of one call: time left before the deadline, and the pause before the next try."""

    def __init__(self, timeout_s: float, policy: RetryPolicy) -> None:
        self.timeout_s, self.policy = timeout_s, policy
        self.deadline = time.monotonic() + timeout_s
        self.attempt = 0

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"no answer within the {self.timeout_s:g} s deadline", "DEADLINE_EXCEEDED")
        return left

    def backoff(self, error: ServerUnavailable) -> float:
        """Seconds to sleep before retrying, or re-raise `error` when retries or time are used up."""
        p = self.policy
        pause = random.uniform(0.0, min(p.max_delay_s, p.base_delay_s * 2**self.attempt))
        if self.attempt >= p.retries or time.monotonic() + pause >= self.deadline:
            raise error
        self.attempt += 1
        return pause
