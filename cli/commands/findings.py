"""`k8smon findings`: query findings across the fleet, most severe first, then newest.

`--severity high` means high or worse; a list (`critical,high`) means exactly those.
`--exit-code N` makes the command a CI gate: exit N when any listed finding is still active
(new or open).
"""

from __future__ import annotations

import sys

import click

from cli.client import AdminClient
from cli.commands.scans import list_scans
from cli.output import Col, Output, api_command, choice_list
from contracts.severity import Severity
from contracts.states import FindingStatus

STATUSES = tuple(s.value for s in FindingStatus)
ACTIVE = FindingStatus.unresolved()
COLUMNS = [
    Col("severity", "severity"),
    Col("cluster_id", "cluster"),
    Col("rule_id", "rule"),
    Col("status", "status"),
    Col("kind", "kind"),
    Col("namespace", "namespace"),
    Col("name", "name"),
    Col("container", "container", wide=True),
    Col("message", "message"),
    Col("path", "path", wide=True),
    Col("first_seen", "age", age=True),
    Col("last_seen", "last seen", wide=True, age=True),
]
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow"}


def severities(value: str | None) -> list[str] | None:
    """`high` -> high and worse; `critical,high` -> exactly those; a bad name is a usage error."""
    if not value:
        return None
    try:
        named = [Severity.parse(part) for part in value.split(",") if part.strip()]
    except ValueError as problem:
        raise click.BadParameter(str(problem), param_hint="--severity") from None
    if len(named) == 1:
        return [s.value for s in Severity if s.at_least(named[0])]
    return [s.value for s in named]


def statuses(value: str | None) -> list[str] | None:
    return choice_list(value, STATUSES, param_hint="--status", noun="status")


@click.command()
@click.option("--cluster", default=None)
@click.option("--rule", default=None, help="rule id, e.g. KM-101")
@click.option(
    "--severity",
    default=None,
    metavar="SEVERITY[,...]",
    help="one severity: it and worse (high = high, critical); a list: exactly those",
)
@click.option("--status", default=None, metavar="STATUS[,...]", help=", ".join(STATUSES))
@click.option("--kind", default=None)
@click.option("--namespace", default=None)
@click.option("--limit", type=click.IntRange(1, 5000), default=200, show_default=True)
@click.option(
    "--exit-code",
    type=click.IntRange(0, 255),
    default=0,
    show_default=True,
    help="exit with this code when a listed finding is active (new or open): a CI gate",
)
@api_command()
def findings(
    *,
    client: AdminClient,
    out: Output,
    cluster: str | None,
    rule: str | None,
    severity: str | None,
    status: str | None,
    kind: str | None,
    namespace: str | None,
    limit: int,
    exit_code: int,
) -> None:
    """List findings (most severe first, then newest), filtered by cluster, rule, severity,
    status, kind and namespace."""
    wanted_severities = severities(severity)
    wanted_statuses = statuses(status)
    answer = client.get(
        "/v1/admin/findings",
        cluster=cluster,
        rule=rule,
        severity=",".join(wanted_severities) if wanted_severities else None,
        status=",".join(wanted_statuses) if wanted_statuses else None,
        kind=kind,
        namespace=namespace,
        limit=limit,
    )
    rows = [
        {
            **f,
            "kind": f["resource"]["kind"],
            "namespace": f["resource"].get("namespace"),
            "name": f["resource"]["name"],
        }
        for f in answer["findings"]
    ]
    out.rows(
        rows,
        COLUMNS,
        title="Findings",
        empty="no findings match" if rows else _why_empty(client, cluster),
        style=lambda r: SEVERITY_STYLE.get(r["severity"]),
    )
    active = sum(1 for r in rows if r["status"] in ACTIVE)
    if exit_code and active:
        out.note(f"{active} active finding{'s' if active != 1 else ''}: exit {exit_code}")
        sys.exit(exit_code)


def _why_empty(client: AdminClient, cluster: str | None) -> str:
    """No findings: say so plainly when no scan has run yet (for the cluster)."""
    if list_scans(client, cluster=cluster, limit=1):
        return "no findings match"
    where = f" for cluster {cluster}" if cluster else ""
    return (
        f"no scan has run yet{where}: a cluster is scanned after its first push is processed "
        f"(or run `k8smon rescan {cluster or 'CLUSTER'}`)"
    )
