"""The one task table: every pipeline task declared once (name, function, time limits, queue).

Both runners read `TASKS`: `workers.celery_app` registers each entry as a Celery task, and
`workers.inprocess` (the embedded mode) calls the same functions in the calling process. A task
function takes a `Runner` (what differs between the two: the task id and how fan-out runs) and
named, JSON-serialisable arguments, so Flower shows `scan_id=5, cluster_id='dev-ap-1'`.

Every task takes ids, runs one unit of work and is idempotent; Celery acknowledges late and
retries what `store.failures` calls retryable with capped backoff (`workers.retries`).

Each task names its queue (`TaskQueue`): snapshot processing has its own, so a snapshot pushed
while a fleet scan fills the default queue is applied by a process of its own within seconds
instead of waiting behind the scan's shards. Celery routes by this table (`celery_app`), and the
Procfile and the chart run a worker for the snapshots queue (`--lane snapshots`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from celery.exceptions import SoftTimeLimitExceeded

from contracts import tasks as names
from contracts.states import ScanTrigger
from workers import jobs
from workers.context import WorkerContext
from workers.services.scanning import ScanPlan

SHARD_LIMITS = (600, 720)  # soft, hard seconds: the default for every task
FINALIZE_LIMITS = (1200, 1500)
PURGE_LIMITS = (3000, 3300)


class Runner(Protocol):
    """What a task function may ask of the runner that executes it."""

    @property
    def ctx(self) -> WorkerContext: ...

    @property
    def task_id(self) -> str | None: ...

    def run_plan(self, plan: ScanPlan) -> dict[str, Any]:
        """Run a planned (or re-driven) scan's shards, cluster rules and finalize step, each
        as the task id the plan gives it."""
        ...

    def in_flight(self, task_ids: Collection[str]) -> Collection[str] | None:
        """Which of these task ids are queued or running (None: this runner cannot tell)."""
        ...

    def fan_out(self, task_name: str, calls: Sequence[Mapping[str, Any]]) -> list[Any] | None:
        """Run `task_name` once per keyword-argument mapping (Celery: a group; in process: a
        loop whose results are returned)."""
        ...


class TaskQueue(StrEnum):
    """The queues tasks are sent to (the broker's queue names: `celery_app.BrokerOptions`)."""

    DEFAULT = "default"  # scans, deliveries, purge, chat-ops
    SNAPSHOTS = "snapshots"  # applying pushed snapshots: never behind a fleet scan


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One pipeline task: its stable name, its function, its time limits (soft, hard) and the
    queue it is sent to."""

    name: str
    run: Callable[..., Any]
    limits: tuple[int, int] = SHARD_LIMITS
    queue: TaskQueue = TaskQueue.DEFAULT


def process_snapshot(run: Runner, snapshot_id: int) -> dict[str, Any]:
    return jobs.process_snapshot(run.ctx, snapshot_id)


def sweep_unprocessed(run: Runner) -> dict[str, Any]:
    return jobs.sweep_unprocessed(run.ctx)


def evaluate_shard(
    run: Runner, scan_id: int, cluster_id: str, shard_index: int, first_id: int, last_id: int
) -> dict[str, Any]:
    return jobs.evaluate_shard(run.ctx, scan_id, cluster_id, shard_index, first_id, last_id)


def evaluate_cluster_rules(run: Runner, scan_id: int, cluster_id: str) -> dict[str, Any]:
    return jobs.evaluate_cluster_rules(run.ctx, scan_id, cluster_id)


def finalize_scan(
    run: Runner, results: list[dict[str, Any]], scan_id: int, cluster_id: str
) -> dict[str, Any]:
    """The chord's callback: `results` (the shard outcomes) comes first, as Celery passes it."""
    return jobs.finalize_scan(run.ctx, results, scan_id, cluster_id)


def scan_cluster(
    run: Runner, cluster_id: str, trigger: str = ScanTrigger.SCHEDULE, in_fleet_scan: bool = False
) -> dict[str, Any]:
    """Scan one cluster; `in_fleet_scan`: a fleet scan sent it (its fleet evaluation gives
    the fleet rules' findings, so this scan leaves them alone)."""
    plan = jobs.plan_scan(
        run.ctx, cluster_id, trigger=trigger, task_id=run.task_id, in_fleet_scan=in_fleet_scan
    )
    if plan.finished:
        return {
            "scan_id": plan.scan_id,
            "cluster_id": cluster_id,
            "already_done": True,
            "counts": plan.counts,
        }
    return run.run_plan(plan)


def scan_clusters(
    run: Runner,
    cluster_ids: list[str],
    trigger: str = ScanTrigger.SCHEDULE,
    in_fleet_scan: bool = False,
) -> dict[str, Any]:
    """Scan several clusters (a fleet scan's batch): every scan is planned first, then each
    runs here as `scan_cluster` would, one cluster's findings written while the next cluster
    is evaluated (`jobs.scan_batch`); a scan of several shards is sent as its chord."""
    plans, outcomes = jobs.scan_batch(
        run.ctx,
        cluster_ids,
        trigger=trigger,
        task_id=run.task_id,
        in_fleet_scan=in_fleet_scan,
        elsewhere=run.run_plan,
    )
    return {
        "scans": [{"cluster_id": p.cluster_id, **o} for p, o in zip(plans, outcomes, strict=True)]
    }


# A fleet scan's batches shrink toward its end (guided self-scheduling): each takes at most
# 1/BATCH_SPREAD of the clusters still to send, so up to this many worker processes finish at
# about the same time, and a rescan of a few changed clusters goes out one task per cluster.
BATCH_SPREAD = 8


def batches(cluster_ids: Sequence[str], *, size: int) -> list[list[str]]:
    """The clusters, in order, in batches of at most `size`, each at most 1/BATCH_SPREAD of
    the clusters not yet in a batch (at least one): large batches first, single clusters last."""
    split: list[list[str]] = []
    start = 0
    while start < len(cluster_ids):
        remaining = len(cluster_ids) - start
        take = max(1, min(size, remaining // BATCH_SPREAD))
        split.append(list(cluster_ids[start : start + take]))
        start += take
    return split


def rescan(run: Runner, cluster_id: str) -> dict[str, Any]:
    return scan_cluster(run, cluster_id, ScanTrigger.RESCAN)


def scan_fleet(run: Runner, trigger: str = ScanTrigger.SCHEDULE) -> dict[str, Any]:
    clusters = jobs.clusters_to_scan(run.ctx, trigger=trigger)
    after_scan_id = jobs.scan_id_before_fleet_scan(run.ctx)
    done = run.fan_out(
        names.SCAN_CLUSTERS,
        [
            {"cluster_ids": batch, "trigger": trigger, "in_fleet_scan": True}
            for batch in batches(clusters, size=run.ctx.settings.scan_batch_size)
        ],
    )
    jobs.fleet_scan_started(run.ctx, clusters, after_scan_id=after_scan_id)
    # Run here (the embedded mode): each cluster's outcome, in the clusters' order.
    scans = None if done is None else [scan for batch in done for scan in batch["scans"]]
    return {"clusters": clusters, "scans": scans}


def evaluate_fleet(
    run: Runner, clusters: Sequence[str] = (), after_scan_id: int | None = None
) -> dict[str, Any]:
    return jobs.evaluate_fleet(run.ctx, clusters=clusters, after_scan_id=after_scan_id)


def deliver_reports(run: Runner, scan_id: int | None = None) -> dict[str, Any]:
    return jobs.deliver_reports(run.ctx, scan_id)


def chatops_command(run: Runner, request: dict[str, Any]) -> dict[str, Any]:
    return jobs.chatops_command(run.ctx, request)


def watch_scans(run: Runner) -> dict[str, Any]:
    return jobs.watch_scans(run.ctx, in_flight=run.in_flight, run_plan=run.run_plan)


def purge_expired(run: Runner) -> dict[str, Any]:
    try:
        return {"deleted": jobs.purge_expired(run.ctx), "complete": True}
    except SoftTimeLimitExceeded:
        # Every batch committed on its own; the next run carries on where this stopped.
        return {"complete": False}


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(names.PROCESS_SNAPSHOT, process_snapshot, queue=TaskQueue.SNAPSHOTS),
    TaskSpec(names.SWEEP_UNPROCESSED, sweep_unprocessed, queue=TaskQueue.SNAPSHOTS),
    TaskSpec(names.EVALUATE_SHARD, evaluate_shard),
    TaskSpec(names.EVALUATE_CLUSTER_RULES, evaluate_cluster_rules),
    TaskSpec(names.FINALIZE_SCAN, finalize_scan, FINALIZE_LIMITS),
    TaskSpec(names.SCAN_CLUSTER, scan_cluster, FINALIZE_LIMITS),
    TaskSpec(names.SCAN_CLUSTERS, scan_clusters, FINALIZE_LIMITS),
    TaskSpec(names.RESCAN, rescan, FINALIZE_LIMITS),
    TaskSpec(names.SCAN_FLEET, scan_fleet),
    TaskSpec(names.DELIVER_REPORTS, deliver_reports),
    TaskSpec(names.CHATOPS_COMMAND, chatops_command),
    TaskSpec(names.PURGE_EXPIRED, purge_expired, PURGE_LIMITS),
    TaskSpec(names.EVALUATE_FLEET, evaluate_fleet),
    TaskSpec(names.WATCH_SCANS, watch_scans),
)
BY_NAME: Mapping[str, TaskSpec] = {spec.name: spec for spec in TASKS}
LONGEST_TASK_S = max(spec.limits[1] for spec in TASKS)
