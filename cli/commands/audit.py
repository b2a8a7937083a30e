"""`k8smon audit`: the latest entries of the audit log (who did what, from where)."""

from __future__ import annotations

import click

from cli.client import AdminClient
from cli.output import Col, Output, api_command

COLUMNS = [
    Col("at", "age", age=True),
    Col("actor", "actor"),
    Col("action", "action"),
    Col("target", "target"),
    Col("source", "source"),
    Col("details", "details", wide=True),
]


@click.command()
@click.option("--actor", default=None, help="only this actor's entries")
@click.option("--action", default=None, help="only this action, e.g. exemptions.create")
@click.option("--limit", type=click.IntRange(1, 5000), default=200, show_default=True)
@api_command()
def audit(
    *, client: AdminClient, out: Output, actor: str | None, action: str | None, limit: int
) -> None:
    """The latest audit-log entries, newest first (needs the admin role)."""
    rows = client.get("/v1/admin/audit", actor=actor, action=action, limit=limit)["entries"]
    out.rows(rows, COLUMNS, title="Audit log", empty="no audit entries")
