"""`k8smon findings`: query findings across the fleet."""

from __future__ import annotations

import click

from cli.client import AdminClient
from cli.commands.scans import list_scans
from cli.output import Output, api_command
from contracts.severity import Severity

STATUSES = ("new", "open", "resolved", "exempted")
COLUMNS = [
    ("cluster_id", "cluster"),
    ("rule_id", "rule"),
    ("severity", "severity"),
    ("status", "status"),
    ("kind", "kind"),
    ("namespace", "namespace"),
    ("name", "name"),
    ("container", "container"),
    ("path", "path"),
    ("first_seen", "first seen"),
]
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow"}


@click.command()
@click.option("--cluster", default=None)
@click.option("--rule", default=None, help="rule id, e.g. KM-101")
@click.option("--severity", type=click.Choice([s.value for s in Severity]), default=None)
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--kind", default=None)
@click.option("--namespace", default=None)
@click.option("--limit", type=click.IntRange(1, 5000), default=200, show_default=True)
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
) -> None:
    """List findings (newest first), filtered by cluster, rule, severity and status."""
    answer = client.get(
        "/v1/admin/findings",
        cluster=cluster,
        rule=rule,
        severity=severity,
        status=status,
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


def _why_empty(client: AdminClient, cluster: str | None) -> str:
    """No findings: say so plainly when no scan has run yet (for the cluster)."""
    if list_scans(client, cluster=cluster, limit=1):
        return "no findings match"
    where = f" for cluster {cluster}" if cluster else ""
    return (
        f"no scan has run yet{where}: a cluster is scanned after its first push is processed "
        f"(or run `k8smon rescan {cluster or 'CLUSTER'}`)"
    )
