"""Stable Celery task names: ingest enqueues by these, workers declare them explicitly."""

from __future__ import annotations

from typing import Any, Protocol

PROCESS_SNAPSHOT = "k8smon.process_snapshot"
SCAN_FLEET = "k8smon.scan_fleet"
SCAN_CLUSTER = "k8smon.scan_cluster"
SCAN_CLUSTERS = "k8smon.scan_clusters"
EVALUATE_SHARD = "k8smon.evaluate_shard"
EVALUATE_CLUSTER_RULES = "k8smon.evaluate_cluster_rules"
FINALIZE_SCAN = "k8smon.finalize_scan"
DELIVER_REPORTS = "k8smon.deliver_reports"
PURGE_EXPIRED = "k8smon.purge_expired"
RESCAN = "k8smon.rescan"
SWEEP_UNPROCESSED = "k8smon.sweep_unprocessed"
CHATOPS_COMMAND = "k8smon.chatops_command"
EVALUATE_FLEET = "k8smon.evaluate_fleet"
WATCH_SCANS = "k8smon.watch_scans"

ALL_TASK_NAMES = (
    PROCESS_SNAPSHOT,
    SCAN_FLEET,
    SCAN_CLUSTER,
    SCAN_CLUSTERS,
    EVALUATE_SHARD,
    EVALUATE_CLUSTER_RULES,
    FINALIZE_SCAN,
    DELIVER_REPORTS,
    PURGE_EXPIRED,
    RESCAN,
    SWEEP_UNPROCESSED,
    CHATOPS_COMMAND,
    EVALUATE_FLEET,
    WATCH_SCANS,
)


class TaskDispatcher(Protocol):
    """Sends a task by name; ingest gets one injected (Celery client or in-process runner)."""

    def __call__(
        self, task_name: str, *, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
    ) -> None: ...
