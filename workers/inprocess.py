"""The embedded mode's dispatcher: runs the pipeline's tasks in the calling process, by name.

It implements `contracts.tasks.TaskDispatcher`, so the composition root hands it to ingest
exactly where a Celery client would go. It reads the one task table (`workers.tasks.TASKS`),
round-trips every task's arguments through JSON as a broker would, and runs tasks
synchronously, in order; a fan-out (fleet scan, shards) becomes a loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from workers import jobs
from workers.context import WorkerContext
from workers.services.scanning import ScanPlan
from workers.tasks import BY_NAME

log = logging.getLogger("k8smon.workers")


class InProcessDispatcher:
    """Call the task table's functions in this process (the embedded mode's `Runner`)."""

    task_id: str | None = None

    def __init__(self, ctx: WorkerContext) -> None:
        self._ctx = ctx
        ctx.dispatch = self

    @property
    def ctx(self) -> WorkerContext:
        return self._ctx

    def run_plan(self, plan: ScanPlan) -> dict[str, Any]:
        return jobs.run_plan(self._ctx, plan)

    def in_flight(self, task_ids: Collection[str]) -> None:
        """Unknown: steps run synchronously in whichever thread started them, so the watchdog
        takes a scan that stayed quiet past K8SMON_SCAN_STALE_SECONDS as lost."""
        return None

    def fan_out(self, task_name: str, calls: Sequence[Mapping[str, Any]]) -> list[Any]:
        return [self.run(task_name, **kwargs) for kwargs in calls]

    def run(self, task_name: str, *args: Any, **kwargs: Any) -> Any:
        """Run a task now and return its result."""
        spec = BY_NAME.get(task_name)
        if spec is None:
            raise KeyError(f"no task named {task_name!r}")
        # What a broker would deliver: JSON, so a non-serialisable argument fails here too.
        message = json.loads(json.dumps({"args": list(args), "kwargs": kwargs}))
        return spec.run(self, *message["args"], **message["kwargs"])

    def __call__(
        self, task_name: str, *, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
    ) -> None:
        self.run(task_name, *(args or []), **(kwargs or {}))
