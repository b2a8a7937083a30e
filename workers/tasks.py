"""The Celery tasks: thin shells with stable names around workers.jobs, plus the fan-out canvas.

Every task takes ids, runs one unit of work and is idempotent; late acknowledgement and
reject-on-worker-lost mean a killed worker's task is redelivered, never lost; transient database
and Redis errors are retried with exponential backoff.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from celery import Task, chord, group
from celery.exceptions import SoftTimeLimitExceeded

from contracts import tasks as names
from workers import jobs

if TYPE_CHECKING:
    from workers.celery_app import K8sMonCelery

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)

COMMON: dict[str, Any] = {
    "bind": True,
    "shared": False,  # tasks belong to their app only: no process-wide registry
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 6,
}


def register_tasks(app: K8sMonCelery) -> dict[str, Task]:
    """Define every pipeline task on `app` under its name from contracts.tasks."""
    from workers.celery_app import FINALIZE_LIMITS, PURGE_LIMITS  # noqa: PLC0415

    ctx = app.context

    @app.task(name=names.PROCESS_SNAPSHOT, **COMMON)
    def process_snapshot(self: Task, snapshot_id: int) -> dict[str, Any]:
        return jobs.process_snapshot(ctx, snapshot_id)

    @app.task(name=names.SWEEP_UNPROCESSED, **COMMON)
    def sweep_unprocessed(self: Task) -> dict[str, Any]:
        return jobs.sweep_unprocessed(ctx)

    @app.task(name=names.EVALUATE_SHARD, **COMMON)
    def evaluate_shard(
        self: Task, scan_id: int, cluster_id: str, shard_index: int, first_id: int, last_id: int
    ) -> dict[str, Any]:
        return jobs.evaluate_shard(ctx, scan_id, cluster_id, shard_index, first_id, last_id)

    @app.task(name=names.EVALUATE_CLUSTER_RULES, **COMMON)
    def evaluate_cluster_rules(self: Task, scan_id: int, cluster_id: str) -> dict[str, Any]:
        return jobs.evaluate_cluster_rules(ctx, scan_id, cluster_id)

    @app.task(
        name=names.FINALIZE_SCAN,
        soft_time_limit=FINALIZE_LIMITS[0],
        time_limit=FINALIZE_LIMITS[1],
        **COMMON,
    )
    def finalize_scan(
        self: Task, results: list[dict[str, Any]], scan_id: int, cluster_id: str
    ) -> dict[str, Any]:
        return jobs.finalize_scan(ctx, results, scan_id, cluster_id)

    def start_scan(task: Task, cluster_id: str, trigger: str) -> dict[str, Any]:
        plan = jobs.plan_scan(ctx, cluster_id, trigger=trigger, task_id=task.request.id)
        if plan.finished:
            return {"scan_id": plan.scan_id, "already_done": True}
        if len(plan.shards) <= 1:
            # One shard of work (an incremental rescan, a small cluster): a chord would add
            # three task round trips to the same sequence of steps; run them here instead.
            outcome = jobs.run_plan(ctx, plan)
            return {
                "scan_id": plan.scan_id,
                "shards": len(plan.shards),
                "inline": True,
                "counts": outcome["counts"],
            }
        header = [
            evaluate_shard.si(plan.scan_id, cluster_id, s.index, s.first_id, s.last_id)
            for s in plan.shards
        ]
        header.append(evaluate_cluster_rules.si(plan.scan_id, cluster_id))
        chord(header)(finalize_scan.s(plan.scan_id, cluster_id))
        return {"scan_id": plan.scan_id, "shards": len(plan.shards)}

    @app.task(
        name=names.SCAN_CLUSTER,
        soft_time_limit=FINALIZE_LIMITS[0],
        time_limit=FINALIZE_LIMITS[1],
        **COMMON,
    )
    def scan_cluster(self: Task, cluster_id: str, trigger: str = "schedule") -> dict[str, Any]:
        return start_scan(self, cluster_id, trigger)

    @app.task(
        name=names.RESCAN,
        soft_time_limit=FINALIZE_LIMITS[0],
        time_limit=FINALIZE_LIMITS[1],
        **COMMON,
    )
    def rescan(self: Task, cluster_id: str) -> dict[str, Any]:
        return start_scan(self, cluster_id, "rescan")

    @app.task(name=names.SCAN_FLEET, **COMMON)
    def scan_fleet(self: Task, trigger: str = "schedule") -> dict[str, Any]:
        clusters = jobs.clusters_to_scan(ctx, trigger=trigger)
        group(scan_cluster.si(cid, trigger) for cid in clusters).apply_async()
        return {"clusters": clusters}

    @app.task(name=names.DELIVER_REPORTS, **COMMON)
    def deliver_reports(self: Task, scan_id: int | None = None) -> dict[str, Any]:
        return jobs.deliver_reports(ctx, scan_id)

    @app.task(name=names.CHATOPS_COMMAND, **COMMON)
    def chatops_command(self: Task, request: dict[str, Any]) -> dict[str, Any]:
        return jobs.chatops_command(ctx, request)

    @app.task(
        name=names.PURGE_EXPIRED,
        soft_time_limit=PURGE_LIMITS[0],
        time_limit=PURGE_LIMITS[1],
        **COMMON,
    )
    def purge_expired(self: Task) -> dict[str, Any]:
        try:
            return {"deleted": jobs.purge_expired(ctx), "complete": True}
        except SoftTimeLimitExceeded:
            # Every batch committed on its own; the next run carries on where this stopped.
            return {"complete": False}

    return {
        t.name: t
        for t in (
            process_snapshot,
            sweep_unprocessed,
            evaluate_shard,
            evaluate_cluster_rules,
            finalize_scan,
            scan_cluster,
            rescan,
            scan_fleet,
            deliver_reports,
            purge_expired,
            chatops_command,
        )
    }
