"""Backoff: exponential growth with jitter, Retry-After honoured, no real sleeping."""

from __future__ import annotations

import random
from dataclasses import dataclass

from agent.backoff import Backoff, parse_retry_after, retry


@dataclass(frozen=True)
class Try:
    status: int
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == 202

    @property
    def retryable(self) -> bool:
        return self.status in (0, 429) or self.status >= 500


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.stop_after: int | None = None

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        self.now += seconds
        return self.stop_after is not None and len(self.sleeps) >= self.stop_after


def _script(*statuses: Try):
    calls = list(statuses)
    seen: list[Try] = []

    def operation() -> Try:
        outcome = calls.pop(0)
        seen.append(outcome)
        return outcome

    return operation, seen


def test_delays_grow_exponentially_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=1, factor=2, max_s=60)
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(60, 2**attempt)
        delays = [backoff.delay(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered, not lock-step
    assert backoff.delay(1000, rng) <= 60


def test_retries_network_errors_and_5xx_until_success() -> None:
    time = FakeTime()
    operation, seen = _script(Try(0), Try(503), Try(500), Try(202))
    outcome = retry(
        operation,
        backoff=Backoff(initial_s=1, max_s=100),
        rng=random.Random(3),
        wait=time.wait,
        clock=time.clock,
    )
    assert outcome.ok
    assert [t.status for t in seen] == [0, 503, 500, 202]
    assert len(time.sleeps) == 3
    assert 0.5 <= time.sleeps[0] <= 1 and 1 <= time.sleeps[1] <= 2 and 2 <= time.sleeps[2] <= 4


def test_retry_after_is_honoured_on_429() -> None:
    time = FakeTime()
    operation, _ = _script(Try(429, retry_after=30), Try(202))
    retry(
        operation,
        backoff=Backoff(initial_s=1),
        rng=random.Random(0),
        wait=time.wait,
        clock=time.clock,
    )
    assert time.sleeps == [30]


def test_client_errors_are_not_retried() -> None:
    time = FakeTime()
    operation, seen = _script(Try(400), Try(202))
    outcome = retry(
        operation, backoff=Backoff(), rng=random.Random(0), wait=time.wait, clock=time.clock
    )
    assert outcome.status == 400
    assert len(seen) == 1 and time.sleeps == []


def test_gives_up_at_the_deadline_instead_of_queueing() -> None:
    time = FakeTime()
    operation, seen = _script(*[Try(503)] * 50)
    outcome = retry(
        operation,
        backoff=Backoff(initial_s=1, max_s=300),
        rng=random.Random(0),
        wait=time.wait,
        clock=time.clock,
        deadline=time.now + 60,
    )
    assert outcome.status == 503
    assert time.now <= 1000 + 60
    assert 4 <= len(seen) <= 8


def test_stops_waiting_when_asked_to_stop() -> None:
    time = FakeTime()
    time.stop_after = 1
    operation, seen = _script(Try(503), Try(202))
    outcome = retry(
        operation, backoff=Backoff(), rng=random.Random(0), wait=time.wait, clock=time.clock
    )
    assert outcome.status == 503
    assert len(seen) == 1


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
