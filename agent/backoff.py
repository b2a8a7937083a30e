"""Exponential backoff with jitter, honouring Retry-After; sleeping is injected (testable)."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

MAX_RETRY_AFTER_S = 3600.0


class Attempt(Protocol):
    """What a retried operation reports about one try."""

    @property
    def ok(self) -> bool: ...

    @property
    def retryable(self) -> bool: ...

    @property
    def retry_after(self) -> float | None: ...


T = TypeVar("T", bound=Attempt)


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Delays grow by `factor` from `initial_s` up to `max_s`; each is jittered to [d/2, d]."""

    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 300.0

    def delay(self, attempt: int, rng: random.Random, *, retry_after: float | None = None) -> float:
        ceiling = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        jittered = rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            return max(jittered, min(retry_after, MAX_RETRY_AFTER_S))
        return jittered


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry(
    operation: Callable[[], T],
    *,
    backoff: Backoff,
    rng: random.Random,
    wait: Callable[[float], bool],
    clock: Callable[[], float] = time.monotonic,
    deadline: float | None = None,
    on_retry: Callable[[T, float], None] | None = None,
) -> T:
    """Run `operation` until it succeeds, fails for good, the deadline passes or we must stop.

    `wait(seconds)` sleeps and returns True when the agent is asked to stop (a
    `threading.Event.wait`), in which case the last outcome is returned at once.
    """
    attempt = 0
    while True:
        outcome = operation()
        if outcome.ok or not outcome.retryable:
            return outcome
        delay = backoff.delay(attempt, rng, retry_after=outcome.retry_after)
        if deadline is not None and clock() + delay > deadline:
            return outcome
        if on_retry is not None:
            on_retry(outcome, delay)
        if wait(delay):
            return outcome
        attempt += 1
