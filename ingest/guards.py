"""Replay and flood guards: a nonce cache and a per-cluster rate limiter (Redis, memory fallback).

With Redis configured both live in Redis (shared by every gunicorn worker). If Redis stops
answering, each falls back to its process-local memory twin and logs it, so pushes keep being
accepted (durability first) while replay protection is per process until Redis is back. Without
REDIS_URL (embedded mode) the memory twins are the only ones.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("k8smon.ingest")


class NonceCache(Protocol):
    def first_use(self, key_id: str, nonce: str, *, ttl: int) -> bool:
        """Record the nonce; True when it was not seen within `ttl` seconds."""


class RateLimiter(Protocol):
    def hit(self, subject: str) -> float | None:
        """Count one request; None if allowed, else the seconds until it would be."""


class MemoryNonceCache:
    """Process-local nonces with expiry, bounded in size (oldest evicted first)."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 200_000
    ) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._clock = clock
        self._max = max_entries

    def first_use(self, key_id: str, nonce: str, *, ttl: int) -> bool:
        now = self._clock()
        entry = f"{key_id}\x00{nonce}"
        with self._lock:
            while self._seen:
                oldest, expiry = next(iter(self._seen.items()))
                if expiry > now and len(self._seen) < self._max:
                    break
                del self._seen[oldest]
            seen_until = self._seen.get(entry)
            if seen_until is not None and seen_until > now:
                return False
            self._seen[entry] = now + ttl
            self._seen.move_to_end(entry)
            return True


class MemoryRateLimiter:
    """Fixed one-minute windows per subject, in this process."""

    def __init__(self, *, per_minute: int, clock: Callable[[], float] = time.time) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, subject: str) -> float | None:
        now = self._clock()
        window = int(now // 60)
        with self._lock:
            current, count = self._counts.get(subject, (window, 0))
            if current != window:
                count = 0
            count += 1
            self._counts[subject] = (window, count)
            if len(self._counts) > 100_000:
                self._counts = {k: v for k, v in self._counts.items() if v[0] == window}
        if count > self._per_minute:
            return max(1.0, (window + 1) * 60 - now)
        return None


@dataclass
class RedisNonceCache:
    """SET NX EX in Redis; on a Redis error, the memory fallback answers (and it is logged)."""

    client: Any
    prefix: str = "k8smon:"
    fallback: MemoryNonceCache | None = None

    def first_use(self, key_id: str, nonce: str, *, ttl: int) -> bool:
        import redis  # noqa: PLC0415 - only with Redis configured

        try:
            return bool(
                self.client.set(
                    f"{self.prefix}nonce:{key_id}:{nonce}", b"1", nx=True, ex=max(1, ttl)
                )
            )
        except redis.RedisError as problem:
            log.warning('{"event": "nonce_cache_degraded", "error": "%s"}', type(problem).__name__)
            self.fallback = self.fallback or MemoryNonceCache()
            return self.fallback.first_use(key_id, nonce, ttl=ttl)


@dataclass
class RedisRateLimiter:
    """INCR on a per-minute key in Redis; falls back to a memory limiter if Redis fails."""

    client: Any
    per_minute: int
    prefix: str = "k8smon:"
    clock: Callable[[], float] = time.time
    fallback: MemoryRateLimiter | None = None

    def hit(self, subject: str) -> float | None:
        import redis  # noqa: PLC0415 - only with Redis configured

        now = self.clock()
        window = int(now // 60)
        key = f"{self.prefix}rate:{subject}:{window}"
        try:
            pipe = self.client.pipeline()
            pipe.incr(key)
            pipe.expire(key, 120)
            count = int(pipe.execute()[0])
        except redis.RedisError as problem:
            log.warning('{"event": "rate_limiter_degraded", "error": "%s"}', type(problem).__name__)
            self.fallback = self.fallback or MemoryRateLimiter(per_minute=self.per_minute)
            return self.fallback.hit(subject)
        if count > self.per_minute:
            return max(1.0, math.ceil((window + 1) * 60 - now))
        return None
