"""The scan watchdog as a service, on PostgreSQL and SQLite: a scan that lost a shard is
re-driven, one out of re-drives or past its deadline is failed with the reason and its cluster
rescanned, and a healthy or merely queued scan is left alone."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from contracts.states import ScanState, ScanTrigger
from store.db import unit_of_work
from store.models import Finding, ScanRun, ScanStep
from store.types import utcnow
from tests.workers.conftest import Pipeline
from tests.workers.test_scan_lifecycle import offline
from tests.workers.workloads import cluster_state
from workers import jobs
from workers.services import watchdog
from workers.services.scanning import ScanPlan
from workers.services.watchdog import Action, LostStep, Suspect

SHARD_SIZE = 4
OBJECTS = 13  # four shards of at most SHARD_SIZE


@pytest.fixture(params=["postgresql", "sqlite"])
def any_pipeline(request: pytest.FixtureRequest) -> Pipeline:
    if request.param == "postgresql":
        return request.getfixturevalue("pipeline")
    return request.getfixturevalue("sqlite_pipeline")


def started_scan(p: Pipeline, cluster_id: str, *, skip: set[int]) -> tuple[ScanPlan, list]:
    """A scan whose chord lost members: every step ran except the shards in `skip`, and the
    finalize never came."""
    objects = cluster_state(cluster_id, OBJECTS)
    p.push_and_process(cluster_id, objects)
    p.ctx.settings = p.ctx.settings.replace(shard_size=SHARD_SIZE)
    plan = jobs.plan_scan(p.ctx, cluster_id, trigger=ScanTrigger.SCHEDULE, task_id=None)
    assert len(plan.shards) == 4 and len(plan.task_ids) == 5
    for shard in plan.shards:
        if shard.index not in skip:
            jobs.evaluate_shard(
                p.ctx, plan.scan_id, cluster_id, shard.index, shard.first_id, shard.last_id
            )
    jobs.evaluate_cluster_rules(p.ctx, plan.scan_id, cluster_id)
    return plan, objects


def age(p: Pipeline, scan_id: int, **values: Any) -> None:
    """Move the scan's clock back (its heartbeat, or its deadline): time passed."""
    with unit_of_work(p.ctx.sessions) as session:
        session.execute(update(ScanRun).where(ScanRun.id == scan_id).values(**values))


def quiet(p: Pipeline, scan_id: int) -> None:
    stale = timedelta(seconds=p.ctx.settings.scan_stale_seconds + 1)
    age(p, scan_id, heartbeat_at=utcnow() - stale)


def scan(p: Pipeline, scan_id: int) -> ScanRun:
    with unit_of_work(p.ctx.sessions) as session:
        run = session.get(ScanRun, scan_id)
        assert run is not None
        session.expunge(run)
        return run


def ref(f: Finding) -> str:
    return f"{f.api_version}|{f.kind}|{f.namespace or ''}|{f.name}"


def findings(p: Pipeline, cluster_id: str) -> list[tuple]:
    with unit_of_work(p.ctx.sessions) as session:
        rows = session.scalars(select(Finding).where(Finding.cluster_id == cluster_id))
        return [(f.rule_id, ref(f), f.container, f.path or "") for f in rows]


def runs_of(p: Pipeline, cluster_id: str) -> list[ScanRun]:
    with unit_of_work(p.ctx.sessions) as session:
        runs = list(
            session.scalars(
                select(ScanRun).where(ScanRun.cluster_id == cluster_id).order_by(ScanRun.id)
            )
        )
        session.expunge_all()
        return runs


def watch(p: Pipeline) -> dict[str, Any]:
    return p.run.run("k8smon.watch_scans")


def test_a_scan_that_lost_a_shard_is_redriven_and_the_late_original_changes_nothing(
    any_pipeline: Pipeline,
) -> None:
    p = any_pipeline
    plan, objects = started_scan(p, "lost-shard", skip={2})
    quiet(p, plan.scan_id)

    outcome = watch(p)

    assert outcome["redriven"] == [plan.scan_id] and outcome["failed"] == []
    run = scan(p, plan.scan_id)
    assert run.state == ScanState.DONE and run.redrives == 1
    assert run.counts["unevaluated"] == 0
    found = findings(p, "lost-shard")
    assert sorted(found) == sorted(offline(objects, "lost-shard"))
    assert len(found) == len(set(found))
    with unit_of_work(p.ctx.sessions) as session:  # finalize clears a scan's steps
        assert session.scalar(select(func.count()).select_from(ScanStep)) == 0

    # The original shard and the original chord's finalize arrive late: nothing doubles.
    lost = plan.shards[2]
    jobs.evaluate_shard(p.ctx, plan.scan_id, "lost-shard", 2, lost.first_id, lost.last_id)
    late = jobs.finalize_scan(p.ctx, [], plan.scan_id, "lost-shard")
    assert late["already_done"] is True
    assert sorted(findings(p, "lost-shard")) == sorted(found)
    assert [r.id for r in runs_of(p, "lost-shard")] == [plan.scan_id]


def test_a_scan_whose_finalize_was_lost_is_finalized(any_pipeline: Pipeline) -> None:
    p = any_pipeline
    plan, objects = started_scan(p, "lost-final", skip=set())
    quiet(p, plan.scan_id)

    assert watch(p)["redriven"] == [plan.scan_id]

    run = scan(p, plan.scan_id)
    assert run.state == ScanState.DONE and run.redrives == 1
    assert sorted(findings(p, "lost-final")) == sorted(offline(objects, "lost-final"))


def test_a_scan_out_of_redrives_is_failed_with_the_reason_and_rescanned(
    any_pipeline: Pipeline,
) -> None:
    p = any_pipeline
    plan, objects = started_scan(p, "no-budget", skip={1, 3})
    quiet(p, plan.scan_id)
    age(p, plan.scan_id, redrives=p.ctx.settings.scan_max_redrives)

    outcome = watch(p)

    assert outcome["failed"] == [plan.scan_id] and outcome["redriven"] == []
    failed, rescan = runs_of(p, "no-budget")
    assert failed.state == ScanState.FAILED and failed.finished_at is not None
    assert failed.failure_reason is not None
    assert "shards 1 and 3" in failed.failure_reason
    assert "did not finish after 3 re-drives" in failed.failure_reason
    assert failed.errors[-1] == {"stage": "watchdog", "error": failed.failure_reason}
    assert rescan.trigger == ScanTrigger.WATCHDOG and rescan.state == ScanState.DONE
    assert sorted(findings(p, "no-budget")) == sorted(offline(objects, "no-budget"))


def test_a_scan_past_its_deadline_is_failed_and_rescanned(any_pipeline: Pipeline) -> None:
    p = any_pipeline
    plan, _objects = started_scan(p, "too-late", skip={0})
    # Steps still finish (the heartbeat is fresh), but the scan is past its deadline.
    age(p, plan.scan_id, deadline_at=utcnow() - timedelta(seconds=1))

    assert watch(p)["failed"] == [plan.scan_id]

    failed, rescan = runs_of(p, "too-late")
    assert failed.state == ScanState.FAILED
    assert failed.failure_reason is not None
    assert failed.failure_reason.startswith("still running at its deadline")
    assert rescan.trigger == ScanTrigger.WATCHDOG and rescan.state == ScanState.DONE


def test_a_failed_watchdog_rescan_is_not_rescanned_again(any_pipeline: Pipeline) -> None:
    p = any_pipeline
    plan, _objects = started_scan(p, "loop", skip={0})
    age(p, plan.scan_id, trigger=ScanTrigger.WATCHDOG, deadline_at=utcnow() - timedelta(1))

    assert watch(p)["failed"] == [plan.scan_id]
    assert [r.state for r in runs_of(p, "loop")] == [ScanState.FAILED]


def test_a_healthy_running_scan_is_left_alone(any_pipeline: Pipeline) -> None:
    p = any_pipeline
    plan, _objects = started_scan(p, "healthy", skip={3})

    assert watch(p) == {"suspects": 0, "redriven": [], "failed": []}

    run = scan(p, plan.scan_id)
    assert run.state == ScanState.RUNNING and run.redrives == 0
    assert run.deadline_at is not None and run.heartbeat_at is not None
    # The deadline: K8SMON_SCAN_DEADLINE_MINUTES plus a minute per shard.
    expected = run.started_at + timedelta(minutes=p.ctx.settings.scan_deadline_minutes + 4)
    assert abs((run.deadline_at - expected).total_seconds()) < 1


def test_a_quiet_scan_whose_steps_are_queued_or_running_is_left_alone(
    any_pipeline: Pipeline,
) -> None:
    """On Celery the runner sees the lost shard's task id queued (a backlog): not lost."""
    p = any_pipeline
    plan, _objects = started_scan(p, "queued", skip={1})
    quiet(p, plan.scan_id)
    asked: list[set[str]] = []
    sent: list[ScanPlan] = []

    def in_flight(ids: Collection[str]) -> set[str]:
        asked.append(set(ids))
        return {plan.task_ids[1]}

    outcome = jobs.watch_scans(p.ctx, in_flight=in_flight, run_plan=sent.append)

    assert outcome == {"suspects": 1, "redriven": [], "failed": []} and sent == []
    assert plan.task_ids[1] in asked[0] and plan.finalize_task_id in asked[0]
    assert scan(p, plan.scan_id).state == ScanState.RUNNING

    # Once nothing of it is queued or running, the lost shard is re-sent under a new id.
    outcome = jobs.watch_scans(p.ctx, in_flight=lambda ids: set(), run_plan=sent.append)
    assert outcome["redriven"] == [plan.scan_id]
    (redrive,) = sent
    assert redrive.redrive and [s.index for s in redrive.shards] == [1]
    assert not redrive.cluster_step  # it finished: only what was lost is re-sent
    assert redrive.task_ids[1] != plan.task_ids[1]
    assert redrive.finalize_task_id not in (None, plan.finalize_task_id)
    with unit_of_work(p.ctx.sessions) as session:
        step = session.get(ScanStep, (plan.scan_id, 1))
        assert step is not None and step.task_id == redrive.task_ids[1]


def suspect(**changes: Any) -> Suspect:
    now = utcnow()
    values: dict[str, Any] = {
        "scan_id": 1,
        "cluster_id": "c",
        "trigger": "schedule",
        "started_at": now - timedelta(minutes=5),
        "deadline": now + timedelta(hours=1),
        "redrives": 0,
        "task_id": "plan",
        "finalize_task_id": "final",
        "unfinished": (LostStep(0, 1, 4, "s0"), LostStep(-1, None, None, "cr")),
    }
    return Suspect(**{**values, **changes})


def test_judge() -> None:
    now = utcnow()
    assert watchdog.judge(suspect(), in_flight=None, now=now, max_redrives=3).action == (
        Action.REDRIVE
    )
    assert watchdog.judge(suspect(), in_flight={"cr"}, now=now, max_redrives=3).action == (
        Action.LEAVE
    )
    # The task that planned the scan still runs it (a one-shard scan runs in its own task).
    assert watchdog.judge(suspect(), in_flight={"plan"}, now=now, max_redrives=3).action == (
        Action.LEAVE
    )
    out = watchdog.judge(suspect(redrives=3), in_flight=set(), now=now, max_redrives=3)
    assert out.action == Action.FAIL and out.reason.startswith("shard 0 and the cluster rules")
    late = suspect(deadline=now - timedelta(seconds=1))
    out = watchdog.judge(late, in_flight={"cr"}, now=now, max_redrives=3)
    assert out.action == Action.FAIL and "deadline" in out.reason


def test_describe() -> None:
    assert watchdog.describe([]) == "the finalize step"
    assert watchdog.describe([LostStep(-1, None, None, "x")]) == "the cluster rules"
    steps = [LostStep(n, n, n, str(n)) for n in (0, 2, 5)]
    assert watchdog.describe(steps) == "shards 0, 2 and 5"
