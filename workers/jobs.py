"""One unit of work per task run: open a session, call a service, commit, then enqueue follow-ups.

The task table (workers.tasks), which both Celery and the in-process runner read, calls these,
so the embedded mode runs exactly the code the workers run.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine, select

from contracts.states import ScanTrigger
from contracts.tasks import DELIVER_REPORTS, EVALUATE_FLEET, PROCESS_SNAPSHOT, SCAN_CLUSTER
from rules import gc_paused
from store.db import unit_of_work
from store.manifests import PrefetchedBodies
from store.models import Cluster
from store.scans import (
    CLUSTER_STEP,
    finish_step,
    finish_steps,
    last_scan_id,
    scans_to_await,
)
from store.types import utcnow
from workers.body_prefetch import BodyPrefetch
from workers.context import WorkerContext
from workers.engine import EngineHandle
from workers.finalize_lane import FinalizeLane
from workers.services import delivery, fleet, purge, scanning, snapshots, watchdog

log = logging.getLogger("k8smon.workers")
# The fleet evaluation's inventory may take this long, after waiting at most
# FLEET_SCAN_WAIT_S for the scans of the fleet scan that sent it (both under the task's soft
# time limit, 600 s), polling every FLEET_SCAN_POLL_S.
FLEET_INVENTORY_LIMIT_S = 540.0
FLEET_SCAN_WAIT_S = 45.0
FLEET_SCAN_POLL_S = 0.1


def process_snapshot(ctx: WorkerContext, snapshot_id: int) -> dict[str, Any]:
    with unit_of_work(ctx.sessions) as session:
        outcome = snapshots.process_snapshot(session, snapshot_id)
    if outcome.applied and outcome.cluster_id:
        scan_if_behind(ctx, outcome.cluster_id)
    return asdict(outcome)


def scan_if_behind(ctx: WorkerContext, cluster_id: str) -> bool:
    """After a push was applied (or a scan ended): scan the cluster when its state is one no
    scan covered yet (`scanning.push_scan_due`). Incremental, so it costs what changed."""
    if not ctx.settings.scan_on_push:
        return False
    with unit_of_work(ctx.sessions) as session:
        due = scanning.push_scan_due(session, cluster_id)
    if due:
        ctx.send(SCAN_CLUSTER, cluster_id=cluster_id, trigger=ScanTrigger.PUSH)
    return due


def sweep_unprocessed(ctx: WorkerContext) -> dict[str, Any]:
    """Enqueue processing for snapshots stored while nothing could run tasks (e.g. Redis down).
    (Scans that stopped are the scan watchdog's: `watch_scans`.)"""
    with unit_of_work(ctx.sessions) as session:
        pending = snapshots.unprocessed_clusters(session)
    for snapshot_id, _cluster_id in pending:
        ctx.send(PROCESS_SNAPSHOT, snapshot_id=snapshot_id)
    return {"enqueued": [sid for sid, _ in pending]}


def clusters_to_scan(ctx: WorkerContext, *, trigger: str) -> list[str]:
    """Start a fleet scan: record no-op runs for unchanged clusters, return the others."""
    with unit_of_work(ctx.sessions) as session:
        active = list(
            session.scalars(
                select(Cluster.id).where(Cluster.status == "active").order_by(Cluster.id)
            )
        )
        return scanning.record_unchanged_scans(session, active, rules=ctx.rules, trigger=trigger)


def evaluate_fleet(
    ctx: WorkerContext, *, clusters: Sequence[str] = (), after_scan_id: int | None = None
) -> dict[str, Any]:
    """The fleet rules (image drift, advisories) on the whole fleet, in one transaction. Sent
    by a fleet scan (`clusters`: those it scans, `after_scan_id`: the last scan run before
    it), it first waits for those scans (`await_fleet_scan`)."""
    if clusters and after_scan_id is not None:
        await_fleet_scan(ctx, clusters, after_scan_id=after_scan_id)
    with gc_paused(), unit_of_work(ctx.sessions) as session:
        outcome = fleet.evaluate_fleet(
            session, rules=ctx.rules, timeout_seconds=FLEET_INVENTORY_LIMIT_S
        )
    return asdict(outcome)


def fleet_scan_started(ctx: WorkerContext, clusters: Sequence[str], *, after_scan_id: int) -> None:
    """A fleet scan also re-evaluates the fleet rules. Sent after the batches, it is queued
    behind them; with several worker processes it may start while the last batches run, so
    it waits for the scans of `clusters` (`await_fleet_scan`): it then finds every scanned
    cluster's image inventory cached, or carried over, by its scan
    (`scanning._cache_inventory`, `_carry_inventory`), and an evaluation whose inputs did not
    change is skipped (`workers.services.fleet`)."""
    ctx.send(EVALUATE_FLEET, clusters=list(clusters), after_scan_id=after_scan_id)


def scan_id_before_fleet_scan(ctx: WorkerContext) -> int:
    """The last scan run's id: the fleet scan's scans are planned after it."""
    with unit_of_work(ctx.sessions) as session:
        return last_scan_id(session)


def await_fleet_scan(ctx: WorkerContext, clusters: Sequence[str], *, after_scan_id: int) -> bool:
    """Wait until each of `clusters` has a scan run after `after_scan_id` that ended, for at
    most `FLEET_SCAN_WAIT_S` (a batch that failed leaves its scans to the watchdog: the
    evaluation then goes on with what it finds). Not for a scan of several shards: its step
    tasks may wait behind this one on the same worker process (`store.scans.scans_to_await`);
    the evaluation works such a cluster's inventory out itself. The batches were queued
    before the evaluation, so each has started on some worker process. Returns whether none
    was left to wait for."""
    deadline = time.monotonic() + FLEET_SCAN_WAIT_S
    while True:
        with unit_of_work(ctx.sessions) as session:
            left = scans_to_await(session, clusters, after_id=after_scan_id)
        if not left:
            return True
        if time.monotonic() > deadline:
            log.warning("fleet evaluation: %d scans of the fleet scan still running", left)
            return False
        time.sleep(FLEET_SCAN_POLL_S)


def plan_scan(
    ctx: WorkerContext,
    cluster_id: str,
    *,
    trigger: str,
    task_id: str | None = None,
    in_fleet_scan: bool = False,
) -> scanning.ScanPlan:
    with unit_of_work(ctx.sessions) as session:
        return scanning.plan_scan(
            session,
            cluster_id,
            rules=ctx.rules,
            trigger=trigger,
            shard_size=ctx.settings.shard_size,
            deadline_minutes=ctx.settings.scan_deadline_minutes,
            task_id=task_id,
            in_fleet_scan=in_fleet_scan,
        )


def evaluate_shard(
    ctx: WorkerContext,
    scan_id: int,
    cluster_id: str,
    shard_index: int,
    first_id: int,
    last_id: int,
) -> dict[str, Any]:
    with gc_paused(), unit_of_work(ctx.sessions) as session:
        result = scanning.evaluate_shard(
            session,
            cluster_id=cluster_id,
            first_id=first_id,
            last_id=last_id,
            rules=ctx.rules,
            shard_index=shard_index,
        )
        outcome = {**result.to_dict(), "scan_id": scan_id}
        finish_step(session, scan_id, step=shard_index, outcome=outcome)
    return outcome


def evaluate_cluster_rules(ctx: WorkerContext, scan_id: int, cluster_id: str) -> dict[str, Any]:
    with gc_paused(), unit_of_work(ctx.sessions) as session:
        result = scanning.evaluate_cluster_rules(session, cluster_id=cluster_id, rules=ctx.rules)
        outcome = {**result.to_dict(), "scan_id": scan_id}
        finish_step(session, scan_id, step=CLUSTER_STEP, outcome=outcome)
    return outcome


def finalize_scan(
    ctx: WorkerContext,
    results: Sequence[dict[str, Any]],
    scan_id: int,
    cluster_id: str,
    *,
    known: scanning.Evaluated | None = None,
    judged: EngineHandle | None = None,
) -> dict[str, Any]:
    """The scan's last step (`known`: what `run_plan` evaluated just before, in this process;
    `judged`: the plan's judged engine, `ScanPlan.judged`)."""
    return finalized(
        ctx,
        _finalize(ctx, results, scan_id, cluster_id, known=known, judged=judged),
    )


def _finalize(
    ctx: WorkerContext,
    results: Sequence[dict[str, Any]],
    scan_id: int,
    cluster_id: str,
    *,
    known: scanning.Evaluated | None = None,
    judged: EngineHandle | None = None,
) -> scanning.FinalizeOutcome:
    """`finalize_scan`'s unit of work (committed when it returns), without the follow-ups."""
    with gc_paused(), unit_of_work(ctx.sessions) as session:
        return scanning.finalize_scan(
            session,
            scan_id=scan_id,
            cluster_id=cluster_id,
            results=list(results or []),
            rules=ctx.rules,
            public_url=ctx.settings.public_url,
            known=known,
            judged=judged,
        )


def finalized(ctx: WorkerContext, outcome: scanning.FinalizeOutcome) -> dict[str, Any]:
    """What follows a committed finalize: its report's delivery, and a scan of pushes
    applied while it ran."""
    counts = outcome.counts
    news = counts.get("new", 0) + counts.get("resolved", 0) + counts.get("unexempted", 0)
    if not outcome.already_done and (news or not counts.get("incremental")):
        ctx.send(DELIVER_REPORTS, scan_id=outcome.scan_id)
    if not outcome.already_done:
        scan_if_behind(ctx, outcome.cluster_id)  # pushes applied while this scan ran
    return asdict(outcome)


def deliver_reports(ctx: WorkerContext, scan_id: int | None = None) -> dict[str, Any]:
    """Write the scan's HTML report, then send due deliveries (never raises on a bad channel).
    The reports are written with the cyclic collector paused (`gc_paused`): they load every
    finding of the cluster, and the collections that allocation triggered traversed the
    worker's heap again and again (10-25% of a delivery's CPU time)."""
    html = None
    if scan_id is not None:
        with gc_paused(), unit_of_work(ctx.sessions) as session:
            path = delivery.write_cluster_html(session, settings=ctx.settings, scan_id=scan_id)
            html = str(path) if path else None
    result = delivery.deliver_due(ctx.sessions, settings=ctx.settings, scan_id=scan_id)
    return {**result, "html": html}


def purge_expired(ctx: WorkerContext) -> dict[str, int]:
    return purge.purge_expired(
        ctx.sessions,
        retention_days=ctx.settings.retention_days,
        catalogue_version=ctx.rules.catalogue_version,
    )


def chatops_command(ctx: WorkerContext, request: dict[str, Any]) -> dict[str, Any]:
    """Answer a Slack slash command (reports.chatops) and post it to its response_url."""
    from reports.chatops import run_chatops_command  # noqa: PLC0415 - only chat-ops needs it

    return dict(
        run_chatops_command(
            ctx.sessions,
            request=request,
            secret_key=ctx.settings.secret_key,
            public_url=ctx.settings.public_url,
            response_hosts=ctx.settings.slack_response_hosts,
        )
        or {}
    )


def evaluate_inline(ctx: WorkerContext, plan: scanning.ScanPlan) -> list[dict[str, Any]]:
    """A one-shard scan's shard and cluster step in one unit of work (each body read once)."""
    return _evaluate_inline(ctx, plan)[0]


def _evaluate_inline(
    ctx: WorkerContext, plan: scanning.ScanPlan, *, prefetched: PrefetchedBodies | None = None
) -> tuple[list[dict[str, Any]], scanning.Evaluated | None]:
    """`evaluate_inline`'s outcomes, and what it evaluated (for the finalize that follows);
    `prefetched`: the cluster's bodies read ahead (`BodyPrefetch`)."""
    (shard,) = plan.shards
    with gc_paused(), unit_of_work(ctx.sessions) as session:
        shard_outcome, cluster_outcome, known = scanning.evaluate_inline(
            session,
            cluster_id=plan.cluster_id,
            first_id=shard.first_id,
            last_id=shard.last_id,
            rules=ctx.rules,
            shard_index=shard.index,
            judged=plan.judged,
            changed_since=plan.since,
            planned=scanning.PlannedState(
                plan.digest, plan.uncached, snapshot_id=plan.snapshot_id, live=plan.live
            )
            if plan.digest is not None and plan.uncached is not None
            else None,
            prefetched=prefetched,
        )
        outcomes = {
            step: {**result.to_dict(), "scan_id": plan.scan_id}
            for step, result in ((shard.index, shard_outcome), (CLUSTER_STEP, cluster_outcome))
        }
        finish_steps(session, plan.scan_id, outcomes)
    return list(outcomes.values()), known


def run_plan(ctx: WorkerContext, plan: scanning.ScanPlan) -> dict[str, Any]:
    """Run a planned (or re-driven) scan's shards, cluster rules and finalize one after
    another here (a one-shard scan's shard and cluster rules in one step).

    The cyclic collector stays paused from the first step until the steps' data is freed:
    re-enabled in between, its first collection would traverse everything the steps
    allocated that is still held (the results handed to finalize), a twentieth of the time."""
    with gc_paused():
        return _run_plan(ctx, plan)


def _run_plan(ctx: WorkerContext, plan: scanning.ScanPlan) -> dict[str, Any]:
    results, known = _run_steps(ctx, plan)
    return finalize_scan(
        ctx, results, plan.scan_id, plan.cluster_id, known=known, judged=plan.judged
    )


def _run_steps(
    ctx: WorkerContext, plan: scanning.ScanPlan, *, prefetched: PrefetchedBodies | None = None
) -> tuple[list[dict[str, Any]], scanning.Evaluated | None]:
    """A plan's shards and cluster step, run here one after another: their outcomes, and
    what they evaluated when that is kept for the finalize (one shard and the cluster step).
    `prefetched`: the cluster's bodies read ahead, for a one-shard scan (`BodyPrefetch`)."""
    if len(plan.shards) == 1 and plan.cluster_step:
        return _evaluate_inline(ctx, plan, prefetched=prefetched)
    results = [
        evaluate_shard(ctx, plan.scan_id, plan.cluster_id, s.index, s.first_id, s.last_id)
        for s in plan.shards
    ]
    if plan.cluster_step:
        results.append(evaluate_cluster_rules(ctx, plan.scan_id, plan.cluster_id))
    return results, None


def scan_batch(
    ctx: WorkerContext,
    cluster_ids: Sequence[str],
    *,
    trigger: str,
    task_id: str | None = None,
    in_fleet_scan: bool = False,
    elsewhere: Callable[[scanning.ScanPlan], Any],
) -> tuple[list[scanning.ScanPlan], list[Any]]:
    """A fleet scan's batch (`k8smon.scan_clusters`): its scans planned (`plan_scans`), then
    run (`run_batch`), with one `BodyPrefetch` for both, so that the first full scan's bodies
    are read while the batch's other scans are planned. The plans and each scan's outcome."""
    with BodyPrefetch(ctx.sessions, background=_lane_in_background(ctx)) as prefetch:
        plans = plan_scans(
            ctx,
            cluster_ids,
            trigger=trigger,
            task_id=task_id,
            in_fleet_scan=in_fleet_scan,
            prefetch=prefetch,
        )
        return plans, run_batch(ctx, plans, elsewhere=elsewhere, prefetch=prefetch)


def plan_scans(
    ctx: WorkerContext,
    cluster_ids: Sequence[str],
    *,
    trigger: str,
    task_id: str | None = None,
    in_fleet_scan: bool = False,
    prefetch: BodyPrefetch | None = None,
) -> list[scanning.ScanPlan]:
    """`plan_scan` for several clusters in one unit of work: every scan of a batch is
    recorded (running, with its steps and the batch's task id) before any is evaluated, so
    the scan watchdog sees all of them should the worker die in the middle of the batch.
    The cyclic collector stays paused, as for the steps that follow. `prefetch`: the first
    scan that reads every body has them read ahead as soon as it is planned (a body never
    changes under its hash: read in another transaction, they are still right)."""
    plans: list[scanning.ScanPlan] = []
    with gc_paused(), unit_of_work(ctx.sessions) as session:
        for cluster_id in cluster_ids:
            plan = scanning.plan_scan(
                session,
                cluster_id,
                rules=ctx.rules,
                trigger=trigger,
                shard_size=ctx.settings.shard_size,
                deadline_minutes=ctx.settings.scan_deadline_minutes,
                task_id=task_id,
                in_fleet_scan=in_fleet_scan,
            )
            if (
                prefetch is not None
                and _reads_every_body(plan)
                and not any(_reads_every_body(planned) for planned in plans)
            ):
                prefetch.ahead(plan.cluster_id)  # the first such scan
            plans.append(plan)
    return plans


def run_batch(
    ctx: WorkerContext,
    plans: Sequence[scanning.ScanPlan],
    *,
    elsewhere: Callable[[scanning.ScanPlan], Any],
    prefetch: BodyPrefetch,
) -> list[Any]:
    """Run a batch's planned scans here, one after another, each scan's finalize committing
    on a thread of its own (`FinalizeLane`, PostgreSQL only) while the next scan is evaluated,
    and the next full scan's bodies read ahead by `prefetch` (the first's may have been read
    while the batch was planned: `scan_batch`); a scan of more than one shard, or a re-drive,
    goes to `elsewhere` (the runner's `run_plan`: a chord of tasks). Returns each scan's
    outcome, in the plans' order."""
    outcomes: dict[int, Any] = {}
    # Each full scan's position, and the next full scan's cluster (its bodies read ahead).
    read_ahead = [n for n, plan in enumerate(plans) if _reads_every_body(plan)]
    upcoming = {n: plans[after].cluster_id for n, after in itertools.pairwise(read_ahead)}
    with (
        gc_paused(),
        FinalizeLane[scanning.FinalizeOutcome](background=_lane_in_background(ctx)) as lane,
    ):
        for n, plan in enumerate(plans):
            if plan.finished:
                outcomes[n] = {
                    "scan_id": plan.scan_id,
                    "cluster_id": plan.cluster_id,
                    "already_done": True,
                    "counts": plan.counts,
                }
            elif len(plan.shards) > 1 or plan.redrive:
                outcomes[n] = elsewhere(plan)
            else:
                prefetched = prefetch.take(plan.cluster_id)
                if n in upcoming:
                    prefetch.ahead(upcoming[n])
                results, known = _run_steps(ctx, plan, prefetched=prefetched)
                lane.submit(
                    partial(
                        _finalize,
                        ctx,
                        results,
                        plan.scan_id,
                        plan.cluster_id,
                        known=known,
                        judged=plan.judged,
                    ),
                    then=partial(_record_finalized, ctx, outcomes, n),
                )
    return [outcomes[n] for n in range(len(plans))]


def _reads_every_body(plan: scanning.ScanPlan) -> bool:
    """Whether a batch runs the plan here reading every live body: a full scan (no earlier
    complete scan to be incremental to) of one shard with its cluster step."""
    return (
        not plan.finished
        and not plan.redrive
        and plan.since is None
        and len(plan.shards) == 1
        and plan.cluster_step
    )


def _record_finalized(
    ctx: WorkerContext, into: dict[int, Any], n: int, outcome: scanning.FinalizeOutcome
) -> None:
    into[n] = finalized(ctx, outcome)


def _lane_in_background(ctx: WorkerContext) -> bool:
    """Whether a finalize may run on a thread of its own: its sessions come from a pool of
    PostgreSQL connections (SQLite serialises writers; sessions bound to one connection, as
    the tests' SAVEPOINT sessions are, would share it between the threads)."""
    bind = ctx.sessions.kw.get("bind")
    return isinstance(bind, Engine) and bind.dialect.name == "postgresql"


InFlight = Callable[[Collection[str]], Collection[str] | None]


def watch_scans(
    ctx: WorkerContext,
    *,
    in_flight: InFlight,
    run_plan: Callable[[scanning.ScanPlan], Any],
) -> dict[str, Any]:
    """The scan watchdog (workers.services.watchdog): find running scans that went quiet,
    ask the runner which of their tasks are still queued or running (`in_flight`), re-send
    what was lost (`run_plan`), or fail the scan with the reason and rescan its cluster."""
    settings = ctx.settings
    now = utcnow()
    with unit_of_work(ctx.sessions) as session:
        suspects = watchdog.suspects(
            session, now=now, stale_after=timedelta(seconds=settings.scan_stale_seconds)
        )
    if not suspects:
        return {"suspects": 0, "redriven": [], "failed": []}
    live = in_flight(set().union(*(s.task_ids() for s in suspects)))
    redriven: list[int] = []
    failed: list[int] = []
    for suspect in suspects:
        verdict = watchdog.judge(
            suspect, in_flight=live, now=now, max_redrives=settings.scan_max_redrives
        )
        if verdict.action == watchdog.Action.LEAVE:
            continue
        with unit_of_work(ctx.sessions) as session:
            if verdict.action == watchdog.Action.REDRIVE:
                plan = watchdog.redrive(session, suspect, now=now)
                acted = plan is not None
            else:
                plan = None
                acted = watchdog.fail(session, suspect, reason=verdict.reason, now=now)
        if not acted:
            continue  # finished (or handled) meanwhile
        log.log(
            logging.WARNING if plan is not None else logging.ERROR,
            json.dumps(
                {
                    "event": "scan_redriven" if plan is not None else "scan_failed",
                    "scan_id": suspect.scan_id,
                    "cluster_id": suspect.cluster_id,
                    "redrives": suspect.redrives + (plan is not None),
                    "reason": verdict.reason,
                }
            ),
        )
        if plan is not None:
            redriven.append(suspect.scan_id)
            run_plan(plan)
            continue
        failed.append(suspect.scan_id)
        if suspect.trigger != ScanTrigger.WATCHDOG:  # a rescan that failed again waits
            ctx.send(SCAN_CLUSTER, cluster_id=suspect.cluster_id, trigger=ScanTrigger.WATCHDOG)
    return {"suspects": len(suspects), "redriven": redriven, "failed": failed}
