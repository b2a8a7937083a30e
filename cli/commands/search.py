"""`k8smon search JSONPATH`: query the current manifests of the fleet with a JSON path.

Runs on the server, in one JSON-path dialect on PostgreSQL and SQLite (`store/jsonpath.py`,
docs/operators.md): `$.a.b`, `['x']`, `[0]`, `[*]`, `..name`, `[?(@.a == 'x')]`. `--distinct`
lists each value once, with how often it occurs and in how many clusters (the server counts
every match, so the counts are whole however many objects match), e.g. every image anywhere:
`k8smon search '$..image' --distinct` (`k8smon images` counts them per workload).

`--at TIME` searches the versions that were current then, `--between START END` every version
current at some instant of the period, across clusters and deleted objects too (ISO 8601 with
`Z` or an offset, read by the one parser the server uses, `contracts.instants`); each match says
when its version was current. The server refuses times before its retention window.
"""

from __future__ import annotations

from typing import Any

import click

from cli.client import AdminClient
from cli.output import Output, api_command
from contracts.instants import InstantError, format_instant, parse_instant

HIT_COLUMNS = [
    ("cluster", "cluster"),
    ("kind", "kind"),
    ("namespace", "namespace"),
    ("name", "name"),
    ("value", "value"),
]
VALIDITY_COLUMNS = [("valid_from", "valid from"), ("valid_until", "valid until")]
DISTINCT_COLUMNS = [("value", "value"), ("occurrences", "occurrences"), ("clusters", "clusters")]
MAX_MATCHES = 5000  # objects listed without --distinct (the server's cap)
MAX_VALUES = 100_000  # distinct values listed with --distinct (the server's cap)
DEFAULT_VALUES = 10_000


@click.command()
@click.argument("jsonpath")
@click.option("--cluster", "clusters", multiple=True, help="only this cluster (repeatable)")
@click.option("--kind", default=None, help="only objects of this kind, e.g. Deployment")
@click.option("--namespace", default=None)
@click.option(
    "--distinct",
    is_flag=True,
    help="each value once, with how often and in how many clusters it occurs "
    "(counted by the server over every match)",
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_VALUES),
    default=None,
    help=f"most objects to list (default and at most {MAX_MATCHES}), or with "
    f"--distinct most values (default {DEFAULT_VALUES}, at most {MAX_VALUES})",
)
@click.option(
    "--at",
    "at",
    default=None,
    metavar="TIME",
    help="search the versions current at TIME (ISO 8601 with Z or an offset, "
    "e.g. 2026-11-01T12:00Z), deleted objects included",
)
@click.option(
    "--between",
    "between",
    nargs=2,
    default=None,
    metavar="START END",
    help="search every version current at some time between START and END",
)
@api_command()
def search(
    *,
    client: AdminClient,
    out: Output,
    jsonpath: str,
    clusters: tuple[str, ...],
    kind: str | None,
    namespace: str | None,
    distinct: bool,
    limit: int | None,
    at: str | None,
    between: tuple[str, str] | None,
) -> None:
    """Evaluate JSONPATH on every current manifest (of the selected clusters/kind), or on the
    versions current at a past time (--at) or during a period (--between).

    \b
    JSONPATH: $.spec.replicas  $..image  $.metadata.labels['app.kubernetes.io/name']
              $.spec.containers[?(@.securityContext.privileged == true)].name
    \b
    Which clusters ran an image last Tuesday:
      k8smon search '$..image' --distinct --between 2026-11-24T00:00Z 2026-11-25T00:00Z
    """
    period, when = _period(at, between)
    if limit is None:
        limit = DEFAULT_VALUES if distinct else MAX_MATCHES
    elif not distinct and limit > MAX_MATCHES:
        raise click.BadParameter(f"at most {MAX_MATCHES} without --distinct", param_hint="--limit")
    body: dict[str, Any] = {"path": jsonpath, "limit": limit}
    if distinct:
        body["distinct"] = True
    if clusters:
        body["clusters"] = list(clusters)
    if kind:
        body["kind"] = kind
    if namespace is not None:
        body["namespace"] = namespace
    body.update(period)
    with out.progress("searching the fleet"):
        answer = client.post("/v1/admin/search", body)
    if distinct:
        out.rows(
            answer["values"],
            DISTINCT_COLUMNS,
            title=f"Distinct {jsonpath}{when}",
            empty="no matches",
        )
        if answer.get("truncated"):
            out.note(
                f"warning: only the {limit} most frequent values are listed; raise "
                "--limit to see more"
            )
        return
    matches = answer["matches"]
    rows = [
        {
            "cluster": m["cluster_id"],
            "kind": m["resource"]["kind"],
            "namespace": m["resource"].get("namespace"),
            "name": m["resource"]["name"],
            "value": m["values"][0] if len(m["values"]) == 1 else m["values"],
            **_validity(m, out=out),
        }
        for m in matches
    ]
    columns = HIT_COLUMNS + VALIDITY_COLUMNS if period else HIT_COLUMNS
    out.rows(rows, columns, title=f"{jsonpath}{when}", empty="no matches")
    if len(matches) >= limit:
        out.note(
            f"warning: stopped at {limit} matching objects; narrow the search "
            "(--cluster, --kind, --namespace) to see everything"
        )


def _period(at: str | None, between: tuple[str, str] | None) -> tuple[dict[str, Any], str]:
    """The request's `at`/`between` (read here by the server's parser, so a bad time fails
    early) and the title's words for it."""
    if at is not None and between is not None:
        raise click.UsageError("give --at or --between, not both")
    try:
        if at is not None:
            instant = parse_instant(at, name="--at")
            return {"at": instant.isoformat()}, f" at {format_instant(instant)}"
        if between is not None:
            start, end = (parse_instant(raw, name="--between") for raw in between)
            return (
                {"between": [start.isoformat(), end.isoformat()]},
                f" between {format_instant(start)} and {format_instant(end)}",
            )
    except InstantError as problem:
        raise click.UsageError(str(problem)) from None
    return {}, ""


def _validity(match: dict[str, Any], *, out: Output) -> dict[str, Any]:
    """When the matched version was current (back in time only); None until: still current."""
    if "valid_from" not in match:
        return {}
    until = match["valid_until"]
    return {
        "valid_from": match["valid_from"],
        "valid_until": until if until is not None or not out.for_people else "still current",
    }
