"""Sign-in throttling: failed attempts counted per account and per client address.

A moving window (the `limits` library) in Redis when it is configured, shared by every web
worker; in process memory otherwise (embedded mode), and as a logged fallback while Redis does
not answer. Only failures count, so a person who types the password right is never slowed;
once either count is full, every attempt — right password or not — gets 429 with Retry-After
until the window has room again.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger("k8smon.ingest")

WINDOW_MINUTES = 15
FAILURES_PER_ACCOUNT = 5  # per WINDOW_MINUTES
FAILURES_PER_ADDRESS = 20  # per WINDOW_MINUTES


@dataclass
class SignInThrottle:
    """`retry_after(username, address)` before checking a password, `failed(...)` after a
    wrong one."""

    storage: Storage
    per_account: int = FAILURES_PER_ACCOUNT
    per_address: int = FAILURES_PER_ADDRESS
    window_minutes: int = WINDOW_MINUTES
    fallback: MovingWindowRateLimiter | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(self.storage)
        self._items = {
            "account": RateLimitItemPerMinute(self.per_account, self.window_minutes),
            "address": RateLimitItemPerMinute(self.per_address, self.window_minutes),
        }

    def _subjects(self, username: str, address: str) -> list[tuple[str, str]]:
        return [("account", username.strip().lower()[:200]), ("address", address or "-")]

    def _limiter_or_fallback(self) -> MovingWindowRateLimiter:
        return self.fallback or self._limiter

    def _degrade(self, error: Exception) -> MovingWindowRateLimiter:
        log.warning('{"event": "sign_in_throttle_degraded", "error": "%s"}', type(error).__name__)
        self.fallback = self.fallback or MovingWindowRateLimiter(MemoryStorage())
        return self.fallback

    def retry_after(self, username: str, address: str) -> int | None:
        """Seconds until an attempt is allowed again, or None when it is allowed now."""
        waits = []
        for scope, subject in self._subjects(username, address):
            item = self._items[scope]
            limiter = self._limiter_or_fallback()
            try:
                allowed = limiter.test(item, "sign-in", scope, subject)
                stats = (
                    None if allowed else limiter.get_window_stats(item, "sign-in", scope, subject)
                )
            except (StorageError, ConnectionError, OSError) as error:
                limiter = self._degrade(error)
                allowed = limiter.test(item, "sign-in", scope, subject)
                stats = (
                    None if allowed else limiter.get_window_stats(item, "sign-in", scope, subject)
                )
            if stats is not None:
                waits.append(max(1, math.ceil(stats.reset_time - time.time())))
        return max(waits) if waits else None

    def failed(self, username: str, address: str) -> None:
        """Count one failed attempt against the account and the address."""
        for scope, subject in self._subjects(username, address):
            item = self._items[scope]
            try:
                self._limiter_or_fallback().hit(item, "sign-in", scope, subject)
            except (StorageError, ConnectionError, OSError) as error:
                self._degrade(error).hit(item, "sign-in", scope, subject)


def make_throttle(redis_client: Any, *, prefix: str) -> SignInThrottle:
    """Redis-backed when a client is given (sharing its connection pool), else in memory."""
    if redis_client is None:
        return SignInThrottle(MemoryStorage())
    storage = RedisStorage(
        "redis://",
        connection_pool=redis_client.connection_pool,
        key_prefix=f"{prefix}sign-in",
        wrap_exceptions=True,
    )
    return SignInThrottle(storage)
