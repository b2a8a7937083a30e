"""`k8smon scans`: scan history (trigger, state, duration, counts, errors).

Needs the admin API's `GET /v1/admin/scans?cluster=&limit=` answering
`{"scans": [{"id", "cluster_id", "trigger", "state", "started_at", "finished_at",
"duration_s", "object_count", "counts", "errors", "task_id", "failure_reason", "redrives",
"heartbeat_at", "deadline_at"}]}`. A failed scan's `reason` column says why it failed (the scan
watchdog's words: lost steps, re-drives spent, deadline passed).
"""

from __future__ import annotations

from typing import Any

import click

from cli.client import AdminClient
from cli.output import Col, Output, api_command
from reports.wording import open_total

COLUMNS = [
    Col("id", "scan"),
    Col("cluster_id", "cluster"),
    Col("trigger", "trigger"),
    Col("state", "state"),
    Col("started_at", "started", age=True),
    Col("duration", "duration"),
    Col("object_count", "objects"),
    Col("open", "open"),
    Col("new", "new"),
    Col("resolved", "resolved"),
    Col("error_count", "errors"),
    Col("failure_reason", "reason"),
    Col("redrives", "re-drives", wide=True),
    Col("task_id", "task", wide=True),
]
STATE_STYLE = {"failed": "bold red", "running": "cyan"}


def scan_row(scan: dict[str, Any]) -> dict[str, Any]:
    counts = scan.get("counts") or {}
    duration = scan.get("duration_s")
    return {
        **scan,
        "duration": f"{duration:.1f} s" if duration is not None else None,
        "open": open_total(counts) if counts else None,  # new included (reports.wording)
        "new": counts.get("new"),
        "resolved": counts.get("resolved"),
        "error_count": len(scan.get("errors") or []),
    }


def list_scans(client: AdminClient, *, cluster: str | None, limit: int) -> list[dict[str, Any]]:
    return list(client.get("/v1/admin/scans", cluster=cluster, limit=limit)["scans"])


@click.command()
@click.option("--cluster", default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@api_command()
def scans(*, client: AdminClient, out: Output, cluster: str | None, limit: int) -> None:
    """Recent scans, newest first."""
    rows = [scan_row(s) for s in list_scans(client, cluster=cluster, limit=limit)]
    out.rows(
        rows,
        COLUMNS,
        title="Scans",
        empty="no scans yet",
        style=lambda r: STATE_STYLE.get(r["state"]),
    )
