"""The embedded mode's dispatcher: runs the pipeline's tasks in the calling process, by name.

It implements `contracts.tasks.TaskDispatcher`, so the composition root hands it to ingest
exactly where a Celery client would go. Tasks run synchronously, in order; a fan-out (fleet
scan, shards) becomes a loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from contracts import tasks as names
from workers import jobs
from workers.context import WorkerContext

log = logging.getLogger("k8smon.workers")


class InProcessDispatcher:
    """Call the same job functions the Celery tasks call, in this process."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        ctx.dispatch = self
        self._handlers: dict[str, Callable[..., Any]] = {
            names.PROCESS_SNAPSHOT: lambda sid: jobs.process_snapshot(ctx, sid),
            names.SWEEP_UNPROCESSED: lambda: jobs.sweep_unprocessed(ctx),
            names.SCAN_FLEET: self.scan_fleet,
            names.SCAN_CLUSTER: lambda cid, trigger="on-demand": jobs.scan_cluster_inline(
                ctx, cid, trigger=trigger
            ),
            names.RESCAN: lambda cid: jobs.scan_cluster_inline(ctx, cid, trigger="rescan"),
            names.DELIVER_REPORTS: lambda scan_id=None: jobs.deliver_reports(ctx, scan_id),
            names.PURGE_EXPIRED: lambda: jobs.purge_expired(ctx),
            names.CHATOPS_COMMAND: lambda request: jobs.chatops_command(ctx, request),
        }

    def scan_fleet(self, trigger: str = "schedule") -> list[dict[str, Any]]:
        return [
            jobs.scan_cluster_inline(self.ctx, cid, trigger=trigger)
            for cid in jobs.clusters_to_scan(self.ctx, trigger=trigger)
        ]

    def run(self, task_name: str, *args: Any, **kwargs: Any) -> Any:
        """Run a task now and return its result."""
        handler = self._handlers.get(task_name)
        if handler is None:
            raise KeyError(f"no in-process handler for task {task_name!r}")
        return handler(*args, **kwargs)

    def __call__(
        self, task_name: str, *, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
    ) -> None:
        self.run(task_name, *(args or []), **(kwargs or {}))
