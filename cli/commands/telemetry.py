"""`k8smon telemetry`: one row per cluster from its agent's latest ping; stale ones stand out."""

from __future__ import annotations

import click

from cli.client import AdminClient
from cli.output import DURATION, Output, api_command

COLUMNS = [("cluster_id", "cluster"), ("age", "last ping"), ("agent_version", "agent"),
           ("kubernetes_version", "kubernetes"), ("platform", "platform"),
           ("node_count", "nodes"), ("object_count", "objects"), ("last_push", "last push"),
           ("stale", "stale")]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _last_push(row: dict) -> str:
    errors = row.get("errors") or {}
    push = row.get("last_push")
    if isinstance(push, dict):
        outcome = str(push.get("result") or push.get("status") or "unknown")
    else:
        outcome = str(push) if push else "—"
    if errors:
        outcome += f" ({len(errors)} collection error{'s' if len(errors) != 1 else ''})"
    return outcome


@click.command()
@click.option("--stale", "stale_after", type=DURATION, default="15m", show_default=True,
              help="a cluster whose last ping is older than this is stale")
@click.option("--only-stale", is_flag=True, help="list stale clusters only")
@api_command()
def telemetry(*, client: AdminClient, out: Output, stale_after: float, only_stale: bool
              ) -> None:
    """Each cluster's agent health from its latest telemetry ping."""
    with out.progress("fetching telemetry"):
        clusters = client.get("/v1/admin/telemetry")["clusters"]
    rows = []
    for row in clusters:
        seconds = row.get("staleness_seconds")
        stale = row.get("status") == "active" and (seconds is None or seconds > stale_after)
        rows.append({**row, "age": _age(seconds), "stale": stale,
                     "last_push": _last_push(row)})
    if only_stale:
        rows = [r for r in rows if r["stale"]]
    out.rows(rows, COLUMNS, title="Telemetry", empty="no clusters",
             style=lambda r: "bold red" if r["stale"] else None)
    stale_count = sum(1 for r in rows if r["stale"])
    if out.fmt == "table" and stale_count:
        out.note(f"{stale_count} stale cluster{'s' if stale_count != 1 else ''} "
                 f"(no ping for more than {_age(stale_after)})")
