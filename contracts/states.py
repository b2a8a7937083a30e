"""The pipeline's vocabularies as StrEnums: finding, scan, snapshot, delivery and cluster states.

Each is a `StrEnum`, so a member is its string: it compares equal to the stored value, and
JSON, SQL and templates see plain strings. The ORM maps its columns to these types
(`store.models`); every other module imports them from here instead of re-declaring tuples.
"""

from __future__ import annotations

from enum import StrEnum


class FindingStatus(StrEnum):
    """Where a finding is in its life: first seen, still open, gone, or exempted."""

    NEW = "new"
    OPEN = "open"
    RESOLVED = "resolved"
    EXEMPTED = "exempted"

    @classmethod
    def unresolved(cls) -> tuple[FindingStatus, ...]:
        """Statuses that need attention: new and open."""
        return (cls.NEW, cls.OPEN)

    @classmethod
    def active(cls) -> tuple[FindingStatus, ...]:
        """Statuses of findings still present on the cluster (anything but resolved)."""
        return (cls.NEW, cls.OPEN, cls.EXEMPTED)


class ScanState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ScanTrigger(StrEnum):
    """Why a scan ran. The column also accepts other labels (e.g. a benchmark's own)."""

    SCHEDULE = "schedule"
    RESCAN = "rescan"
    ON_DEMAND = "on-demand"
    PUSH = "push"  # a processed push changed the cluster's state (workers.jobs.scan_if_behind)
    WATCHDOG = "watchdog"  # the scan watchdog failed a stuck scan of the cluster (workers.watchdog)


class SnapshotState(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


class DeliveryState(StrEnum):
    """A report delivery: waiting for its (next) attempt, acknowledged by the receiver, or
    dead-lettered after its retry window (shown on the admin pages, re-sendable by an admin)."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class ClusterStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class ErrorClass(StrEnum):
    """What a database or broker error means for whoever met it (`store.failures.classify`).

    - `transient`: the operation may succeed if simply tried again (connection lost, deadlock,
      serialization failure, Redis connection/timeout/loading): tasks retry with backoff, ingest
      answers 503 `unavailable` with a short Retry-After.
    - `unavailable`: the database or broker cannot take writes for now (read-only after a
      failover, shutting down, not accepting connections, out of connections or disk): tasks
      retry with backoff, ingest answers 503 `unavailable` with Retry-After.
    - `permanent`: trying again cannot help (a bug, a constraint violation, a missing table):
      the task fails with the reason, ingest answers 500.
    """

    TRANSIENT = "transient"
    UNAVAILABLE = "unavailable"
    PERMANENT = "permanent"

    @property
    def retryable(self) -> bool:
        return self is not ErrorClass.PERMANENT
