"""The beat schedule as plain data: which task runs how often (seconds), with which named args.

Intervals come from settings through the caller (workers.celery_app); this module imports
nothing but the task names. Beat should run as one process; if two run, each entry still runs
once per interval: the beat that sends an entry first holds its lease (`lease_seconds`) in Redis
and the other skips it (workers.schedule_lease, docs/operations.md).
"""

from __future__ import annotations

from typing import Any

from contracts.tasks import (
    DELIVER_REPORTS,
    PURGE_EXPIRED,
    SCAN_FLEET,
    SWEEP_UNPROCESSED,
    WATCH_SCANS,
)

DAY_S = 24 * 3600.0
LEASE_SLACK_SHARE = 0.1  # a lease ends this share of its interval before the next send is due
LEASE_SLACK_MAX_S = 5.0  # ... but at most this many seconds before


def lease_seconds(interval_s: float) -> float:
    """How long the beat that sends an entry holds it: its interval less a slack (a tenth of
    the interval, at most five seconds). The holder's own next send, one interval later, finds
    the lease free; another beat's send within that time finds it taken and is skipped."""
    return interval_s - min(interval_s * LEASE_SLACK_SHARE, LEASE_SLACK_MAX_S)


def build_schedule(
    *,
    scan_interval_s: float,
    sweep_interval_s: float,
    watchdog_interval_s: float,
    purge_interval_s: float = DAY_S,
    delivery_retry_s: float,
) -> dict[str, dict[str, Any]]:
    """celery-beat's `beat_schedule` entries. Each fleet scan's finalize steps enqueue their
    report delivery themselves; the delivery entry here sends the deliveries whose next attempt
    is due (retries, and any a killed worker left unacknowledged)."""
    return {
        "fleet-scan": {
            "task": SCAN_FLEET,
            "schedule": scan_interval_s,
            "kwargs": {"trigger": "schedule"},
            "options": {"expires": scan_interval_s},
        },
        "purge-expired": {
            "task": PURGE_EXPIRED,
            "schedule": purge_interval_s,
            "kwargs": {},
            "options": {"expires": purge_interval_s},
        },
        "deliver-reports": {
            "task": DELIVER_REPORTS,
            "schedule": delivery_retry_s,
            "kwargs": {},
            "options": {"expires": delivery_retry_s},
        },
        "sweep-unprocessed": {
            "task": SWEEP_UNPROCESSED,
            "schedule": sweep_interval_s,
            "kwargs": {},
            "options": {"expires": sweep_interval_s},
        },
        "scan-watchdog": {
            "task": WATCH_SCANS,
            "schedule": watchdog_interval_s,
            "kwargs": {},
            "options": {"expires": watchdog_interval_s},
        },
    }
