"""The scan watchdog's decisions: which running scans lost a step or their finalize, and whether
to re-send what was lost or to fail the scan with a reason.

A scan's steps (shards, the cluster-rules step) and its finalize each run as a task id recorded
at plan time (`store.scans`, `ScanStep`); every step that finishes records its outcome and beats
the scan's heartbeat. A running scan whose heartbeat is older than K8SMON_SCAN_STALE_SECONDS is
a *suspect*. The runner says which of its task ids are still queued or running (Celery: in the
broker's queue, or reserved, scheduled or active on a live worker); when none is, what is
unfinished was lost (a worker killed, Redis restarted empty, a task that gave up) and is re-sent
as new task ids, at most K8SMON_SCAN_MAX_REDRIVES times. A scan past its deadline, or out of
re-drives, is failed with the reason and its cluster rescanned (`workers.jobs.watch_scans`).
Re-sending is harmless: step results are cached insert-if-absent, the first outcome recorded
wins, and finalize does nothing for a scan that is no longer running.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from contracts.states import ScanState
from store.models import ScanRun
from store.scans import CLUSTER_STEP, finish_scan_run, quiet_runs, unfinished_steps
from workers.services.scanning import UNPLANNED_DEADLINE, ScanPlan, unfinished_plan


@dataclass(frozen=True, slots=True)
class LostStep:
    """An unfinished step of a suspect scan: its number, shard bounds and task id."""

    step: int
    first_id: int | None
    last_id: int | None
    task_id: str


@dataclass(frozen=True, slots=True)
class Suspect:
    """A running scan that has been quiet too long (or is past its deadline)."""

    scan_id: int
    cluster_id: str
    trigger: str
    started_at: datetime
    deadline: datetime
    redrives: int
    task_id: str | None  # the task that planned it (it may still run a small scan itself)
    finalize_task_id: str | None
    unfinished: tuple[LostStep, ...]

    def task_ids(self) -> set[str]:
        """Every task id whose being queued or running means the scan is still progressing."""
        ids = {s.task_id for s in self.unfinished}
        return ids | {t for t in (self.task_id, self.finalize_task_id) if t}


class Action(StrEnum):
    LEAVE = "leave"
    REDRIVE = "redrive"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: str = ""


def suspects(session: Session, *, now: datetime, stale_after: timedelta) -> list[Suspect]:
    """Running scans with no step finished for `stale_after`, or past their deadline."""
    found = []
    for run in quiet_runs(session, now=now, quiet_since=now - stale_after):
        unfinished = tuple(
            LostStep(s.step, s.first_id, s.last_id, s.task_id)
            for s in unfinished_steps(session, run.id)
        )
        found.append(
            Suspect(
                scan_id=run.id,
                cluster_id=run.cluster_id,
                trigger=run.trigger,
                started_at=run.started_at,
                deadline=run.deadline_at or run.started_at + UNPLANNED_DEADLINE,
                redrives=run.redrives or 0,
                task_id=run.task_id,
                finalize_task_id=run.finalize_task_id,
                unfinished=unfinished,
            )
        )
    return found


def describe(steps: Sequence[LostStep]) -> str:
    """'shards 0 and 3 and the cluster rules', 'the finalize step', … for a reason text."""
    shards = [str(s.step) for s in steps if s.step != CLUSTER_STEP]
    parts = []
    if shards:
        listed = shards[0] if len(shards) == 1 else ", ".join(shards[:-1]) + " and " + shards[-1]
        parts.append(f"shard{'s' if len(shards) > 1 else ''} {listed}")
    if any(s.step == CLUSTER_STEP for s in steps):
        parts.append("the cluster rules")
    return " and ".join(parts) if parts else "the finalize step"


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def judge(
    suspect: Suspect, *, in_flight: Collection[str] | None, now: datetime, max_redrives: int
) -> Verdict:
    """What to do with a suspect. `in_flight`: which of its task ids are queued or running
    (None: the runner cannot tell, as in the embedded mode, where a quiet scan is a lost one)."""
    if now >= suspect.deadline:
        return Verdict(
            Action.FAIL,
            f"still running at its deadline ({_at(suspect.deadline)}; started "
            f"{_at(suspect.started_at)}, K8SMON_SCAN_DEADLINE_MINUTES plus a minute per shard)",
        )
    if in_flight is not None and suspect.task_ids() & set(in_flight):
        return Verdict(Action.LEAVE)  # queued behind other work, or running: not lost
    lost = describe(suspect.unfinished)
    if suspect.redrives >= max_redrives:
        return Verdict(
            Action.FAIL,
            f"{lost} did not finish after {suspect.redrives} re-drives "
            f"(K8SMON_SCAN_MAX_REDRIVES); the worker running it died or it kept failing",
        )
    return Verdict(Action.REDRIVE, f"{lost} lost (no task queued or running)")


def _locked_running(session: Session, suspect: Suspect) -> ScanRun | None:
    """The suspect's run, locked, if it is still running as the watchdog saw it (no finalize
    or other watchdog pass changed it meanwhile)."""
    run = session.get(ScanRun, suspect.scan_id, with_for_update=True)
    if run is None or run.state != ScanState.RUNNING or (run.redrives or 0) != suspect.redrives:
        return None
    return run


def redrive(session: Session, suspect: Suspect, *, now: datetime) -> ScanPlan | None:
    """Re-send the suspect's unfinished steps (or only its finalize) as new task ids; the
    plan to hand to the runner, or None when the scan moved on meanwhile."""
    run = _locked_running(session, suspect)
    if run is None:
        return None
    run.redrives = (run.redrives or 0) + 1
    run.heartbeat_at = now
    return unfinished_plan(session, run, redrive=True)


def fail(session: Session, suspect: Suspect, *, reason: str, now: datetime) -> bool:
    """Fail the suspect's scan with the reason (False when it moved on meanwhile)."""
    run = _locked_running(session, suspect)
    if run is None:
        return False
    finish_scan_run(
        session,
        run.id,
        counts=run.counts or {},
        errors=[*(run.errors or []), {"stage": "watchdog", "error": reason}],
        state=ScanState.FAILED,
        at=now,
        failure_reason=reason,
    )
    return True
