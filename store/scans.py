"""Scan runs: one row per scan of one cluster, with trigger, timings, counts and errors; and the
steps of a running scan (shards and the cluster-rules step), each recorded when it finishes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from contracts.states import ScanState
from store.bulk import affected
from store.models import Cluster, ScanRun, ScanStep
from store.types import utcnow

CLUSTER_STEP = -1  # the cluster-rules step's number among a scan's steps (shards count from 0)


def start_scan_run(
    session: Session,
    cluster_id: str,
    *,
    trigger: str,
    catalogue_version: str,
    task_id: str | None = None,
    counts: Mapping[str, int] | None = None,
) -> ScanRun:
    """Record the start of a scan of the cluster's current state (with `counts` recorded
    from the start: one INSERT, no UPDATE after it)."""
    cluster = session.get(Cluster, cluster_id)
    now = utcnow()
    run = ScanRun(
        cluster_id=cluster_id,
        trigger=trigger,
        state=ScanState.RUNNING,
        started_at=now,
        heartbeat_at=now,
        catalogue_version=catalogue_version,
        snapshot_digest=cluster.current_digest if cluster else None,
        task_id=task_id,
        counts=dict(counts or {}),
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
    failure_reason: str | None = None,
    locked: ScanRun | None = None,
) -> ScanRun:
    """Record the end of a scan (done, or failed with its reason); its step rows go.
    `locked`: the run, which the caller read with a row lock (else it is read so here)."""
    run = locked or session.get(ScanRun, scan_id, with_for_update=True)
    if run is None:
        raise LookupError(f"scan run {scan_id} does not exist")
    finished = at or utcnow()
    run.state = state
    run.finished_at = finished
    run.duration_s = max((finished - run.started_at).total_seconds(), 0.0)
    run.counts = dict(counts)
    run.errors = [dict(e) for e in errors]
    run.failure_reason = failure_reason
    session.flush()
    session.execute(delete(ScanStep).where(ScanStep.scan_id == scan_id))
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


def add_steps(session: Session, scan_id: int, steps: Sequence[ScanStep]) -> None:
    """Record a running scan's planned steps, each with the task id it runs as."""
    session.add_all(steps)
    session.flush()


def reassign_steps(session: Session, scan_id: int, task_ids: Mapping[int, str]) -> None:
    """Give unfinished steps the task ids they are re-sent as (the lost ones keep nothing)."""
    for step, task_id in task_ids.items():
        session.execute(
            update(ScanStep)
            .where(ScanStep.scan_id == scan_id, ScanStep.step == step)
            .values(task_id=task_id)
        )


def has_steps(session: Session, scan_id: int) -> bool:
    first = session.scalar(select(ScanStep.step).where(ScanStep.scan_id == scan_id).limit(1))
    return first is not None


def finish_step(
    session: Session,
    scan_id: int,
    *,
    step: int,
    outcome: Mapping[str, Any],
    at: datetime | None = None,
) -> bool:
    """Record a step's outcome (the first to finish wins; a finished scan has no step rows
    left) and beat the scan's heartbeat (`finish_steps` of one step)."""
    return finish_steps(session, scan_id, {step: outcome}, at=at) > 0


def finish_steps(
    session: Session,
    scan_id: int,
    outcomes: Mapping[int, Mapping[str, Any]],
    *,
    at: datetime | None = None,
) -> int:
    """Record the outcomes of steps run together (by step number; the first to finish each
    wins) and beat the scan's heartbeat once: two statements. The run row is written before
    the step rows, the order finalize takes them in, so the two never wait on each other.
    Returns how many steps this finished."""
    now = at or utcnow()
    session.execute(
        update(ScanRun)
        .where(ScanRun.id == scan_id, ScanRun.state == ScanState.RUNNING)
        .values(heartbeat_at=now)
    )
    value = case(
        *(
            (ScanStep.step == step, bindparam(None, dict(o), type_=ScanStep.outcome.type))
            for step, o in outcomes.items()
        )
    )
    result = session.execute(
        update(ScanStep)
        .where(
            ScanStep.scan_id == scan_id,
            ScanStep.step.in_(sorted(outcomes)),
            ScanStep.finished_at.is_(None),
        )
        .values(finished_at=now, outcome=value)
    )
    return affected(result)


def step_outcomes(session: Session, scan_id: int) -> dict[int, dict[str, Any]]:
    """The outcomes of a running scan's finished steps, by step number."""
    rows = session.execute(
        select(ScanStep.step, ScanStep.outcome).where(
            ScanStep.scan_id == scan_id, ScanStep.finished_at.is_not(None)
        )
    )
    return {step: dict(outcome or {}) for step, outcome in rows}


def unfinished_steps(session: Session, scan_id: int) -> list[ScanStep]:
    return list(
        session.scalars(
            select(ScanStep)
            .where(ScanStep.scan_id == scan_id, ScanStep.finished_at.is_(None))
            .order_by(ScanStep.step)
        )
    )


def quiet_runs(session: Session, *, now: datetime, quiet_since: datetime) -> Sequence[ScanRun]:
    """Running scans none of whose steps finished since `quiet_since`, or past their deadline:
    the ones the watchdog looks at (oldest first)."""
    return session.scalars(
        select(ScanRun)
        .where(
            ScanRun.state == ScanState.RUNNING,
            or_(
                func.coalesce(ScanRun.heartbeat_at, ScanRun.started_at) < quiet_since,
                ScanRun.deadline_at < now,
            ),
        )
        .order_by(ScanRun.id)
    ).all()


def note_scan_error(session: Session, scan_id: int, entry: Mapping[str, Any]) -> bool:
    """Append why a task of a running scan gave up to its error list, leaving it `running`
    (the scan watchdog re-drives or fails it). False when the scan is gone or already ended."""
    run = session.get(ScanRun, scan_id, with_for_update=True)
    if run is None or run.state != ScanState.RUNNING:
        return False
    run.errors = [*(run.errors or []), dict(entry)]
    session.flush()
    return True


def last_scan_id(session: Session) -> int:
    """The id of the latest scan run (0: none yet): the runs started after it have greater ids."""
    return int(session.scalar(select(func.max(ScanRun.id))) or 0)


def scans_to_await(session: Session, cluster_ids: Sequence[str], *, after_id: int) -> int:
    """How many of these clusters have no scan run with an id above `after_id` that ended
    (done or failed), not counting those whose run is one of several shards: those run as
    tasks of their own, which may be queued behind the caller (a fleet evaluation) on the
    same worker process, whereas a scan of one shard runs in its batch, already started."""
    wanted = set(cluster_ids)
    ended: set[str] = set()
    in_tasks: set[str] = set()
    for cluster_id, state, shards in session.execute(
        select(ScanRun.cluster_id, ScanRun.state, ScanRun.shard_count).where(
            ScanRun.id > after_id, ScanRun.cluster_id.in_(sorted(wanted))
        )
    ):
        if state in (ScanState.DONE, ScanState.FAILED):
            ended.add(cluster_id)
        elif shards > 1:
            in_tasks.add(cluster_id)
    return len(wanted - ended - in_tasks)
