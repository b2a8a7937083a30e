"""`k8smon timeline CLUSTER [KIND/[NAMESPACE/]NAME]`: what happened in a cluster, or to one
resource, newest first: resources created, changed and deleted, findings opened and resolved
with the change that did it (`--diff` prints each change's diff), scans. One page at a time:
the note at the end gives the `--before` of the next."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from cli.client import AdminClient
from cli.output import Col, Output, api_command, choice_list, visible

GROUPS = ("resources", "findings", "scans")
COLUMNS = [
    Col("at", "time"),
    Col("type", "event"),
    Col("resource_text", "resource"),
    Col("summary", "what"),
    Col("change_text", "change", wide=True),
    Col("cursor", "cursor", wide=True),
]
STYLE = {"finding_opened": "red", "finding_resolved": "green", "deleted": "yellow"}


def _resource(value: str | None) -> dict[str, str] | None:
    """`KIND/NAME` (cluster-scoped) or `KIND/NAMESPACE/NAME`."""
    if not value:
        return None
    parts = value.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise click.BadParameter(
            "give KIND/NAME or KIND/NAMESPACE/NAME, e.g. Deployment/shop/web",
            param_hint="RESOURCE",
        )
    if len(parts) == 2:
        return {"kind": parts[0], "name": parts[1]}
    return {"kind": parts[0], "namespace": parts[1], "name": parts[2]}


def _types(value: str | None) -> str | None:
    named = choice_list(value, GROUPS, param_hint="--types", noun="type")
    return ",".join(named) if named else None


def _ref_text(resource: dict[str, Any] | None) -> str:
    if not resource:
        return ""
    where = f"{resource['namespace']}/" if resource.get("namespace") else ""
    return f"{resource['kind']} {where}{resource['name']}"


def _summary(entry: dict[str, Any]) -> str:
    finding = entry.get("finding")
    scan = entry.get("scan")
    change = entry.get("change")
    if finding:
        text = f"{finding['severity']} {finding['rule_id']} {finding['title']}".rstrip()
        if finding.get("path"):
            text += f" at {finding['path']}"
        if entry["type"] == "finding_resolved" and entry.get("removed"):
            return text + " (the resource was removed)"
        if change and change.get("previous_version_id") is None:
            return text + " (in the first version seen)"
        return text
    if scan:
        counts = scan["counts"]
        return (
            f"scan {scan['id']} ({scan['trigger']}, {scan['state']}): "
            f"{counts.get('new', 0)} new, {counts.get('resolved', 0)} resolved"
        )
    if change:
        return f"version {change['version_id']}"
    return ""


def _change_text(change: dict[str, Any] | None) -> str:
    if not change:
        return ""
    before = change.get("previous_version_id")
    return f"{before} → {change['version_id']}" if before else str(change["version_id"])


@click.command()
@click.argument("cluster")
@click.argument("resource", required=False, metavar="[KIND/[NAMESPACE/]NAME]")
@click.option("--api-version", default=None, help="when two API groups share the kind")
@click.option(
    "--types",
    default=None,
    metavar="TYPE[,...]",
    help=f"only these: {', '.join(GROUPS)} (default: all)",
)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--before", default=None, metavar="CURSOR", help="the next page (printed at the end)")
@click.option("--diff", "with_diff", is_flag=True, help="print each change's manifest diff")
@api_command()
def timeline(
    *,
    client: AdminClient,
    out: Output,
    cluster: str,
    resource: str | None,
    api_version: str | None,
    types: str | None,
    limit: int,
    before: str | None,
    with_diff: bool,
) -> None:
    """What happened in CLUSTER (or to one resource of it), newest first."""
    chosen = _resource(resource) or {}
    answer = client.get(
        f"/v1/admin/clusters/{quote(cluster, safe='')}/timeline",
        **chosen,
        api_version=api_version,
        types=_types(types),
        limit=limit,
        before=before,
        diffs="1" if with_diff else "0",
    )
    rows = [
        {
            **entry,
            "resource_text": _ref_text(entry.get("resource")),
            "summary": _summary(entry),
            "change_text": _change_text(entry.get("change")),
        }
        for entry in answer["entries"]
    ]
    title = (
        f"Timeline of {_ref_text(answer['resource'])} in {cluster}"
        if answer["resource"]
        else (f"Timeline of {cluster}")
    )
    out.rows(
        rows,
        COLUMNS,
        title=title,
        empty="nothing happened yet",
        style=lambda r: STYLE.get(r["type"]),
    )
    if with_diff and out.for_people:
        _print_diffs(rows)
    if answer.get("next_cursor"):
        out.note(f"older entries: add --before {answer['next_cursor']}")


def _print_diffs(rows: list[dict[str, Any]]) -> None:
    """Each change's diff once, under a line naming it (agent-supplied text made visible)."""
    shown: set[int] = set()
    for row in rows:
        change = row.get("change") or {}
        lines = change.get("diff")
        if not lines or change["version_id"] in shown:
            continue
        shown.add(change["version_id"])
        click.echo("")
        click.echo(visible(f"# {row['resource_text']}: {_change_text(change)}"))
        for line in lines:
            click.echo(visible(line))
        if change.get("diff_truncated"):
            click.echo("# (diff cut)")
