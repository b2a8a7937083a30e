"""`k8smon exemptions add|list|remove`: accepted risks, each with a reason and an expiry."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import click

from cli.client import AdminClient
from cli.output import DURATION, Col, Output, api_command

COLUMNS = [
    Col("id", "id"),
    Col("rule_ids", "rules"),
    Col("cluster_id", "cluster"),
    Col("selector", "selector"),
    Col("reason", "reason"),
    Col("created_by", "by"),
    Col("created_at", "age", age=True, wide=True),
    Col("expires_at", "expires", age=True),
    Col("state", "state"),
]


def parse_expiry(value: str, *, now: datetime | None = None) -> datetime:
    """`2026-12-31` (end of that day, UTC), an ISO 8601 time, or a duration from now (`30d`)."""
    now = now or datetime.now(UTC)
    text = value.strip()
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        pass
    else:
        return datetime.combine(day.date(), time(23, 59, 59), tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            seconds = DURATION.convert(text, None, None)
        except click.BadParameter:
            raise click.BadParameter(
                f"{value!r} is not a date (2026-12-31), a time (ISO 8601) or a duration (30d)",
                param_hint="--expires",
            ) from None
        return now + timedelta(seconds=seconds)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_rule_ids(rule_ids: tuple[str, ...]) -> None:
    """Refuse rule ids the catalogue does not know (a typo would exempt nothing, silently)."""
    from rules.registry import default_rules  # noqa: PLC0415 - the catalogue only when adding

    known = {rule.meta.id for rule in default_rules()}
    unknown = [r for r in rule_ids if r.strip().upper() not in known]
    if unknown:
        raise click.BadParameter(
            f"unknown rule {unknown[0]!r}: not in the rule catalogue "
            "(`k8smon rules list` shows every rule id)",
            param_hint="--rule",
        )


def _state(row: dict[str, Any], now: datetime) -> str:
    if row.get("revoked_at"):
        return "removed"
    expires = row.get("expires_at")
    if expires and datetime.fromisoformat(expires) <= now:
        return "expired"
    return "active"


@click.group()
def exemptions() -> None:
    """Accepted risks: rules that do not apply to selected resources, until they expire."""


@exemptions.command()
@click.option("--rule", "rules", multiple=True, required=True, help="rule id (repeatable)")
@click.option("--reason", required=True, help="why this risk is accepted")
@click.option("--expires", required=True, help="2026-12-31, an ISO 8601 time, or 30d")
@click.option("--cluster", default=None, help="only in this cluster (default: everywhere)")
@click.option("--kind", default=None)
@click.option("--namespace", default=None)
@click.option("--name", default=None, help="object name (glob patterns allowed)")
@click.option(
    "--labels",
    default=None,
    help="label selector of the objects, e.g. 'team=legacy,tier in (a,b)'",
)
@click.option("--container", default=None, help="container name (glob patterns allowed)")
@api_command()
def add(
    *,
    client: AdminClient,
    out: Output,
    rules: tuple[str, ...],
    reason: str,
    expires: str,
    cluster: str | None,
    kind: str | None,
    namespace: str | None,
    name: str | None,
    labels: str | None,
    container: str | None,
) -> None:
    """Exempt resources from rules, with a reason and an expiry (both required)."""
    check_rule_ids(rules)
    if not reason.strip():
        raise click.BadParameter("give a reason", param_hint="--reason")
    expiry = parse_expiry(expires)
    if expiry <= datetime.now(UTC):
        raise click.BadParameter("the expiry is in the past", param_hint="--expires")
    chosen = (
        ("kind", kind),
        ("namespace", namespace),
        ("name", name),
        ("labels", labels),
        ("container", container),
    )
    selector = {k: v for k, v in chosen if v}
    body = {
        "rule_ids": [r.strip().upper() for r in rules],
        "reason": reason,
        "cluster_id": cluster,
        "selector": selector,
        "expires_at": expiry.isoformat(),
    }
    created = client.post("/v1/admin/exemptions", body)
    if out.for_people:
        out.note(f"exemption {created['id']} created; it applies from the next scan")
    out.record({**created, "state": "active"}, fields=COLUMNS)


@exemptions.command("list")
@click.option("--cluster", default=None, help="exemptions that apply to this cluster")
@click.option("--all", "include_all", is_flag=True, help="include removed ones")
@api_command()
def list_(*, client: AdminClient, out: Output, cluster: str | None, include_all: bool) -> None:
    """List exemptions."""
    answer = client.get("/v1/admin/exemptions", cluster=cluster, all="1" if include_all else None)
    now = datetime.now(UTC)
    rows = [{**e, "state": _state(e, now)} for e in answer["exemptions"]]
    out.rows(
        rows,
        COLUMNS,
        title="Exemptions",
        empty="no exemptions",
        style=lambda r: None if r["state"] == "active" else "dim",
    )


@exemptions.command()
@click.argument("exemption_id", type=int)
@api_command()
def remove(*, client: AdminClient, out: Output, exemption_id: int) -> None:
    """Remove (expire now) exemption EXEMPTION_ID; its findings reopen at the next scan."""
    answer = client.delete(f"/v1/admin/exemptions/{exemption_id}")
    if out.for_people:
        out.note(f"exemption {exemption_id} removed")
    else:
        out.record(answer)
