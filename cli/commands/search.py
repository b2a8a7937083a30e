"""`k8smon search JSONPATH`: query the current manifests of the fleet with a JSON path.

Runs on the server, in one JSON-path dialect on PostgreSQL and SQLite (`store/jsonpath.py`,
docs/operators.md): `$.a.b`, `['x']`, `[0]`, `[*]`, `..name`, `[?(@.a == 'x')]`. `--distinct`
lists each value once, with how often it occurs and in how many clusters (the server counts
every match, so the counts are whole however many objects match), e.g. every image anywhere:
`k8smon search '$..image' --distinct` (`k8smon images` counts them per workload).
"""

from __future__ import annotations

from typing import Any

import click

from cli.client import AdminClient
from cli.output import Output, api_command

HIT_COLUMNS = [
    ("cluster", "cluster"),
    ("kind", "kind"),
    ("namespace", "namespace"),
    ("name", "name"),
    ("value", "value"),
]
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
) -> None:
    """Evaluate JSONPATH on every current manifest (of the selected clusters/kind).

    \b
    JSONPATH: $.spec.replicas  $..image  $.metadata.labels['app.kubernetes.io/name']
              $.spec.containers[?(@.securityContext.privileged == true)].name
    """
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
    with out.progress("searching the fleet"):
        answer = client.post("/v1/admin/search", body)
    if distinct:
        out.rows(
            answer["values"], DISTINCT_COLUMNS, title=f"Distinct {jsonpath}", empty="no matches"
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
        }
        for m in matches
    ]
    out.rows(rows, HIT_COLUMNS, title=jsonpath, empty="no matches")
    if len(matches) >= limit:
        out.note(
            f"warning: stopped at {limit} matching objects; narrow the search "
            "(--cluster, --kind, --namespace) to see everything"
        )
