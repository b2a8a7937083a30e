"""`k8smon telemetry`: one row per cluster from its agent's latest ping; stale ones stand out.

The "last push" column summarises what the agent reported about its latest snapshot push
(`last_push_summary`); `--format json` also carries the report itself (`last_push`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from cli.client import AdminClient
from cli.output import DURATION, Output, api_command

COLUMNS = [
    ("cluster_id", "cluster"),
    ("age", "last ping"),
    ("agent_version", "agent"),
    ("kubernetes_version", "kubernetes"),
    ("platform", "platform"),
    ("node_count", "nodes"),
    ("object_count", "objects"),
    ("last_push_summary", "last push"),
    ("stale", "stale"),
]


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


def _push_age(at: object, now: datetime) -> str | None:
    if not isinstance(at, str):
        return None
    try:
        when = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return f"{_age(max((now - when).total_seconds(), 0.0))} ago"


def last_push_text(row: dict[str, Any], *, now: datetime) -> str:
    """The agent's report on its latest push, e.g. `accepted (delta, 3 min ago)` or
    `failed: unknown_key (full, 40 s ago)`, plus the collection errors of the last ping."""
    errors = row.get("errors") or {}
    push = row.get("last_push")
    if isinstance(push, dict):
        result = str(push.get("result") or "unknown")
        outcome = "no push yet" if result == "none" else result
        detail = push.get("detail") or push.get("error")
        if detail and result != "accepted":
            outcome += f": {str(detail)[:80]}"
        context = [str(push["type"])] if push.get("type") else []
        age = _push_age(push.get("at"), now)
        if age:
            context.append(age)
        if context and result != "none":
            outcome += f" ({', '.join(context)})"
    else:
        outcome = str(push) if push else "—"
    if errors:
        outcome += f"; {len(errors)} collection error{'s' if len(errors) != 1 else ''}"
    not_collected = row.get("not_collected") or {}
    if not_collected:
        # Types the agent could not read: their last known objects are kept, not deleted.
        outcome += "; not collected: " + ", ".join(
            f"{name} ({reason})" for name, reason in sorted(not_collected.items())
        )
    return outcome


@click.command()
@click.option(
    "--stale",
    "stale_after",
    type=DURATION,
    default="15m",
    show_default=True,
    help="a cluster whose last ping is older than this is stale",
)
@click.option("--only-stale", is_flag=True, help="list stale clusters only")
@api_command()
def telemetry(*, client: AdminClient, out: Output, stale_after: float, only_stale: bool) -> None:
    """Each cluster's agent health from its latest telemetry ping."""
    with out.progress("fetching telemetry"):
        clusters = client.get("/v1/admin/telemetry")["clusters"]
    now = datetime.now(UTC)
    rows = []
    for row in clusters:
        seconds = row.get("staleness_seconds")
        stale = row.get("status") == "active" and (seconds is None or seconds > stale_after)
        rows.append(
            {
                **row,
                "age": _age(seconds),
                "stale": stale,
                "last_push_summary": last_push_text(row, now=now),
            }
        )
    if only_stale:
        rows = [r for r in rows if r["stale"]]
    out.rows(
        rows,
        COLUMNS,
        title="Telemetry",
        empty="no clusters",
        style=lambda r: "bold red" if r["stale"] else None,
    )
    stale_count = sum(1 for r in rows if r["stale"])
    if out.for_people and stale_count:
        out.note(
            f"{stale_count} stale cluster{'s' if stale_count != 1 else ''} "
            f"(no ping for more than {_age(stale_after)})"
        )
