"""`k8smon advisories load|list|delete`: image advisories (id, severity, repository pattern,
affected versions, fixed version, URL); KM-622 reports every running image they affect."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from cli.advisory_files import read_advisories
from cli.client import AdminClient
from cli.output import Col, Output, api_command

COLUMNS = [
    Col("id", "id"),
    Col("severity", "severity"),
    Col("ranges", "affected"),
    Col("fixed", "fixed in"),
    Col("summary", "summary", wide=True),
    Col("url", "url", wide=True),
    Col("loaded_by", "loaded by", wide=True),
    Col("loaded_at", "loaded", age=True),
]


def _row(record: dict[str, Any]) -> dict[str, Any]:
    ranges = record.get("affected") or []
    return {
        **record,
        "ranges": "; ".join(
            r.get("repository", "")
            + "".join(
                f" {label}{r[key]}"
                for key, label in (("introduced", ">="), ("fixed", "<"), ("last_affected", "<="))
                if r.get(key)
            )
            for r in ranges
        ),
        "fixed": ", ".join(sorted({r["fixed"] for r in ranges if r.get("fixed")})),
    }


@click.group()
def advisories() -> None:
    """Image advisories: load them from a file, list them, delete them."""


@advisories.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@api_command()
def load(*, client: AdminClient, out: Output, file: Path) -> None:
    """Load the advisories of FILE (YAML or JSON: one record, a list, or `advisories:`);
    an advisory already loaded with the same id is replaced. A bad file is refused whole,
    naming the field. Findings for every running image in an affected range follow at once."""
    _data, parsed = read_advisories(file, param_hint="FILE")
    answer = client.post("/v1/admin/advisories", {"advisories": [a.to_dict() for a in parsed]})
    if out.for_people:
        out.note(
            f"{answer['count']} advisories loaded ({len(answer['created'])} new, "
            f"{len(answer['replaced'])} replaced); the fleet is being re-evaluated"
        )
    else:
        out.record(answer)


@advisories.command("list")
@api_command()
def list_(*, client: AdminClient, out: Output) -> None:
    """List the loaded advisories."""
    answer = client.get("/v1/admin/advisories")
    out.rows(
        [_row(a) for a in answer["advisories"]],
        COLUMNS,
        title="Advisories",
        empty="no advisories loaded",
    )


@advisories.command()
@click.argument("advisory_id")
@api_command()
def delete(*, client: AdminClient, out: Output, advisory_id: str) -> None:
    """Delete advisory ADVISORY_ID; its findings resolve at once."""
    answer = client.delete(f"/v1/admin/advisories/{quote(advisory_id, safe='')}")
    if out.for_people:
        out.note(f"advisory {advisory_id} deleted; the fleet is being re-evaluated")
    else:
        out.record(answer)
