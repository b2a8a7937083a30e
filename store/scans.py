"""Scan runs: one row per scan of one cluster, with trigger, timings, counts and errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from contracts.states import ScanState
from store.bulk import affected
from store.models import Cluster, ScanRun
from store.types import utcnow


def start_scan_run(
    session: Session,
    cluster_id: str,
    *,
    trigger: str,
    catalogue_version: str,
    task_id: str | None = None,
) -> ScanRun:
    """Record the start of a scan of the cluster's current state."""
    cluster = session.get(Cluster, cluster_id)
    run = ScanRun(
        cluster_id=cluster_id,
        trigger=trigger,
        state=ScanState.RUNNING,
        started_at=utcnow(),
        catalogue_version=catalogue_version,
        snapshot_digest=cluster.current_digest if cluster else None,
        task_id=task_id,
        counts={},
        errors=[],
    )
    session.add(run)
    session.flush()
    return run


def get_scan_run(session: Session, scan_id: int) -> ScanRun | None:
    return session.get(ScanRun, scan_id)


def finish_scan_run(
    session: Session,
    scan_id: int,
    *,
    counts: Mapping[str, int],
    errors: Sequence[Mapping[str, Any]],
    state: ScanState = ScanState.DONE,
    at: datetime | None = None,
) -> ScanRun:
    run = session.get(ScanRun, scan_id, with_for_update=True)
    if run is None:
        raise LookupError(f"scan run {scan_id} does not exist")
    finished = at or utcnow()
    run.state = state
    run.finished_at = finished
    run.duration_s = max((finished - run.started_at).total_seconds(), 0.0)
    run.counts = dict(counts)
    run.errors = [dict(e) for e in errors]
    session.flush()
    return run


def latest_scan_run(
    session: Session, cluster_id: str, *, state: str | None = ScanState.DONE
) -> ScanRun | None:
    query = select(ScanRun).where(ScanRun.cluster_id == cluster_id)
    if state is not None:
        query = query.where(ScanRun.state == state)
    return session.scalar(query.order_by(ScanRun.id.desc()).limit(1))


def list_scan_runs(
    session: Session, *, cluster_id: str | None = None, limit: int = 50
) -> Sequence[ScanRun]:
    query = select(ScanRun).order_by(ScanRun.id.desc()).limit(limit)
    if cluster_id is not None:
        query = query.where(ScanRun.cluster_id == cluster_id)
    return session.scalars(query).all()


def fail_stale_runs(session: Session, *, older_than: timedelta) -> int:
    """Mark scans still 'running' long after they started as failed (their workers died)."""
    cutoff = utcnow() - older_than
    result = session.execute(
        update(ScanRun)
        .where(ScanRun.state == ScanState.RUNNING, ScanRun.started_at < cutoff)
        .values(
            state=ScanState.FAILED,
            finished_at=utcnow(),
            errors=[{"stage": "scan", "error": "scan did not finish in time"}],
        )
    )
    return affected(result)


def note_scan_error(session: Session, scan_id: int, entry: Mapping[str, Any]) -> bool:
    """Append why a task of a running scan gave up to its error list, leaving it `running`
    (the scan watchdog re-drives or fails it). False when the scan is gone or already ended."""
    run = session.get(ScanRun, scan_id, with_for_update=True)
    if run is None or run.state != ScanState.RUNNING:
        return False
    run.errors = [*(run.errors or []), dict(entry)]
    session.flush()
    return True
