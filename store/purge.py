"""Expiry purge, one small batch per call, so no statement holds locks the ingest waits on.

Each function deletes at most `batch_size` rows older than a cutoff and returns how many it
deleted; the caller commits after every batch and calls again until it gets 0. Deleted rows are
never ones the ingest writes concurrently: only superseded manifest versions, objects deleted
from their cluster long ago, processed snapshots that are not a cluster's current state, old
telemetry pings and long-resolved findings. The current version of a live object, a pending
snapshot and any finding that is not resolved are never purged.

Image presence over time (`image_changes`) is merged, not taken back: each group's rows before
the cutoff become one row at it (`store.image_presence.merge_before`), exact for every period
from the cutoff on (a deleted version began and ended before it, so it counts for nothing), and
its checkpoints before the cutoff go. Then the daily checkpoints not taken yet are
(`store.image_presence.take_checkpoints`; that step counts rows written, not deleted), and
their day summaries (`store.presence_days.derive_days`, PostgreSQL; rows written too).

Manifest bodies are kept (content-addressed, deduplicated): deleting one needs a scan of
`objects.current_hash` for the foreign-key check, which has no index.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, delete, exists, select
from sqlalchemy.orm import Session

from contracts.states import FindingStatus, SnapshotState
from store.bulk import chunked
from store.fleet_state import history_changed
from store.image_presence import merge_before, take_checkpoints
from store.models import (
    Cluster,
    Finding,
    KubeObject,
    ManifestVersion,
    Snapshot,
    TelemetryPing,
)
from store.presence_days import derive_days

DEFAULT_BATCH = 5000


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def purge_telemetry(session: Session, *, cutoff: datetime, batch_size: int = DEFAULT_BATCH) -> int:
    victims = select(TelemetryPing.id).where(TelemetryPing.received_at < cutoff).limit(batch_size)
    return _rowcount(session.execute(delete(TelemetryPing).where(TelemetryPing.id.in_(victims))))


def purge_snapshots(session: Session, *, cutoff: datetime, batch_size: int = DEFAULT_BATCH) -> int:
    """Old processed/failed snapshots (their items cascade), never a cluster's current one."""
    is_current = exists().where(Cluster.current_snapshot_id == Snapshot.id)
    victims = (
        select(Snapshot.id)
        .where(Snapshot.received_at < cutoff, Snapshot.state != SnapshotState.PENDING, ~is_current)
        .limit(batch_size)
    )
    return _rowcount(session.execute(delete(Snapshot).where(Snapshot.id.in_(victims))))


def expired_versions(*, cutoff: datetime, batch_size: int) -> Select[int]:
    """Ids of up to `batch_size` versions superseded before the cutoff, never an object's
    current version (found from the partial index on `superseded_at`)."""
    is_current = exists().where(
        KubeObject.id == ManifestVersion.object_id,
        KubeObject.current_version_id == ManifestVersion.id,
        KubeObject.deleted_at.is_(None),
    )
    return (
        select(ManifestVersion.id)
        .where(ManifestVersion.superseded_at < cutoff, ~is_current)
        .limit(batch_size)
    )


def purge_versions(session: Session, *, cutoff: datetime, batch_size: int = DEFAULT_BATCH) -> int:
    """Manifest versions superseded before the cutoff; never an object's current version.
    Moves the history epoch in the same transaction when it deleted one: a cached inventory's
    since values may rest on it (`store.fleet_state.history_changed`)."""
    victims = list(session.scalars(expired_versions(cutoff=cutoff, batch_size=batch_size)))
    deleted = 0
    for batch in chunked(victims):
        deleted += _rowcount(
            session.execute(delete(ManifestVersion).where(ManifestVersion.id.in_(batch)))
        )
    if deleted:
        history_changed(session)
    return deleted


def purge_deleted_objects(
    session: Session, *, cutoff: datetime, batch_size: int = DEFAULT_BATCH
) -> int:
    """Objects that left their cluster before the cutoff (remaining versions cascade)."""
    victims = list(
        session.scalars(
            select(KubeObject.id)
            .where(KubeObject.deleted_at.is_not(None), KubeObject.deleted_at < cutoff)
            .limit(batch_size)
        )
    )
    deleted = 0
    for batch in chunked(victims):
        deleted += _rowcount(session.execute(delete(KubeObject).where(KubeObject.id.in_(batch))))
    return deleted


def purge_resolved_findings(
    session: Session, *, cutoff: datetime, batch_size: int = DEFAULT_BATCH
) -> int:
    """Findings resolved before the cutoff; new, open and exempted findings are never purged."""
    victims = (
        select(Finding.id)
        .where(Finding.status == FindingStatus.RESOLVED, Finding.resolved_at < cutoff)
        .limit(batch_size)
    )
    return _rowcount(session.execute(delete(Finding).where(Finding.id.in_(victims))))


def purge_image_changes(
    session: Session, *, cutoff: datetime, batch_size: int = DEFAULT_BATCH
) -> int:
    """Image presence rows before the cutoff, merged into one row per group at the cutoff."""
    return merge_before(session, cutoff=cutoff, batch_size=batch_size)


def checkpoint_image_presence(
    session: Session, *, cutoff: datetime, batch_size: int = DEFAULT_BATCH
) -> int:
    """The daily image presence checkpoints not taken yet, oldest first, until about
    `batch_size` rows are written (a checkpoint is never split); returns the rows written.
    `cutoff` is the merge's: the checkpoints start at it."""
    del cutoff  # (the merge before this step moved the horizon to it)
    return take_checkpoints(session, budget=batch_size)


def derive_image_days(
    session: Session, *, cutoff: datetime, batch_size: int = DEFAULT_BATCH
) -> int:
    """The day summaries of image presence (`store.presence_days`) of the checkpoints that
    have none, oldest first, until about `batch_size` rows are written; returns them."""
    del cutoff  # (the checkpoints before it went with the merge)
    return derive_days(session, budget=batch_size)


PURGERS = (
    ("telemetry_pings", purge_telemetry),
    ("snapshots", purge_snapshots),
    ("manifest_versions", purge_versions),
    ("objects", purge_deleted_objects),
    ("image_changes", purge_image_changes),
    ("image_checkpoints", checkpoint_image_presence),
    ("image_derived_days", derive_image_days),
    ("findings", purge_resolved_findings),
)


def retention_cutoff(now: datetime, *, retention_days: int) -> datetime:
    """The oldest instant the expiry purge keeps: history before it may already be deleted."""
    return now - timedelta(days=retention_days)
