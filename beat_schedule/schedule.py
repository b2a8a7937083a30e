"""The beat schedule as plain data: which task runs how often (seconds), with which named args.

Intervals come from settings through the caller (workers.celery_app); this module imports
nothing but the task names. Beat must run as exactly one process.
"""

from __future__ import annotations

from typing import Any

from contracts.tasks import DELIVER_REPORTS, PURGE_EXPIRED, SCAN_FLEET, SWEEP_UNPROCESSED

DAY_S = 24 * 3600.0
DELIVERY_RETRY_S = 300.0  # due report deliveries (retries) are attempted every five minutes


def build_schedule(
    *,
    scan_interval_s: float,
    sweep_interval_s: float,
    purge_interval_s: float = DAY_S,
    delivery_retry_s: float = DELIVERY_RETRY_S,
) -> dict[str, dict[str, Any]]:
    """celery-beat's `beat_schedule` entries. Each fleet scan's finalize steps enqueue their
    report delivery themselves; the delivery entry here retries deliveries that failed."""
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
    }
