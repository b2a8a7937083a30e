"""When a task retries and when it gives up: `store.failures` classifies, this module decides.

A retryable error (transient or unavailable) is retried with capped exponential backoff: the
wait doubles from 1 s up to `K8SMON_TASK_RETRY_BACKOFF_CAP_SECONDS`, with jitter that only ever
shortens a wait by a quarter, for as many retries as it takes for the waits to add up to
`K8SMON_TASK_RETRY_WINDOW_SECONDS` even with the shortest jitter: a task outlives a database
failover or restart of that length. Then, or at once for a permanent error, the task gives up:
`give_up` logs the reason at error level and notes it in the scan's error list when the task
belongs to a scan, without finishing the scan (the scan watchdog re-drives or fails it).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from settings import Settings
from store.db import unit_of_work
from store.failures import Failure, classify
from store.scans import note_scan_error
from workers.context import WorkerContext

log = logging.getLogger("k8smon.workers")

JITTER = 0.25  # a wait is shortened by up to this fraction (never lengthened)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff for `window_s` seconds in all."""

    window_s: float
    cap_s: float
    base_s: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            window_s=settings.task_retry_window_seconds,
            cap_s=settings.task_retry_backoff_cap_seconds,
        )

    def nominal_delay(self, retries: int) -> float:
        """The wait before retry number `retries + 1`, before jitter."""
        return min(self.cap_s, self.base_s * 2 ** min(retries, 32))

    def delay(self, retries: int, rng: random.Random | None = None) -> float:
        nominal = self.nominal_delay(retries)
        return nominal * (1 - JITTER * (rng or random).random())

    @property
    def max_retries(self) -> int:
        """Enough retries that even the shortest waits add up to the window."""
        total, retries = 0.0, 0
        while total < self.window_s:
            total += self.nominal_delay(retries) * (1 - JITTER)
            retries += 1
        return retries

    def should_retry(self, failure: Failure, retries: int) -> bool:
        return failure.retryable and retries < self.max_retries


def give_up(
    ctx: WorkerContext,
    task_name: str,
    *,
    failure: Failure,
    kwargs: Mapping[str, Any],
    retries: int,
) -> None:
    """Record why a task gave up: an error-level log event, and the scan's error list when the
    task belongs to a scan (best effort: the database may be what failed). The scan stays
    `running`: the watchdog decides whether to re-drive it or fail it."""
    log.error(
        json.dumps(
            {
                "event": "task_gave_up",
                "task": task_name,
                "class": str(failure.error_class),
                "reason": failure.describe(),
                "retries": retries,
                "kwargs": {k: v for k, v in kwargs.items() if k != "results"},
            },
            default=str,
        )
    )
    scan_id = kwargs.get("scan_id")
    if not isinstance(scan_id, int):
        return
    try:
        with unit_of_work(ctx.sessions) as session:
            note_scan_error(
                session,
                scan_id,
                {
                    "stage": task_name,
                    "class": str(failure.error_class),
                    "error": failure.describe()[:500],
                    "retries": retries,
                },
            )
    except Exception as exc:  # the database is often what failed: the log line stands
        log.warning(
            json.dumps(
                {
                    "event": "scan_error_not_recorded",
                    "scan_id": scan_id,
                    "error": classify(exc).describe()[:300],
                }
            )
        )
