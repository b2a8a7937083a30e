"""Materialise stored snapshots into cluster state, and find the ones nobody processed yet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from contracts.states import SnapshotState
from store.models import Snapshot
from store.snapshots import apply_pending, pending_snapshot_ids


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    snapshot_id: int
    cluster_id: str | None
    applied: tuple[int, ...]
    failed: tuple[int, ...]


def process_snapshot(session: Session, snapshot_id: int) -> ProcessOutcome:
    """Apply the snapshot's cluster's pending snapshots in order (idempotent: done is done)."""
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:
        return ProcessOutcome(snapshot_id, None, (), ())
    cluster_id = snapshot.cluster_id
    if snapshot.state != SnapshotState.PENDING:
        return ProcessOutcome(snapshot_id, cluster_id, (), ())
    result = apply_pending(session, cluster_id)
    return ProcessOutcome(snapshot_id, cluster_id, tuple(result.applied), tuple(result.failed))


def unprocessed_clusters(session: Session, *, limit: int = 1000) -> Sequence[tuple[int, str]]:
    """One pending snapshot per cluster (the oldest): enough to get each cluster processed."""
    seen: dict[str, int] = {}
    for snapshot_id, cluster_id in pending_snapshot_ids(session, limit=limit):
        seen.setdefault(cluster_id, snapshot_id)
    return [(sid, cid) for cid, sid in seen.items()]
