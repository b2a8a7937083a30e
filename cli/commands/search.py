"""`k8smon search JSONPATH`: query the current manifests of the fleet with a JSON path.

Runs on the server (PostgreSQL's `jsonb_path_query`; Python on SQLite). `--distinct` lists
each value once with how many objects and clusters carry it, e.g. every image deployed:
`k8smon search '$.spec.template.spec.containers[*].image' --kind Deployment --distinct`.
"""

from __future__ import annotations

import json
from typing import Any

import click

from cli.client import AdminClient
from cli.output import Output, api_command

HIT_COLUMNS = [("cluster", "cluster"), ("kind", "kind"), ("namespace", "namespace"),
               ("name", "name"), ("value", "value")]
DISTINCT_COLUMNS = [("value", "value"), ("objects", "objects"), ("clusters", "clusters")]
MAX_LIMIT = 5000


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def distinct_values(matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each value once, with the number of objects and clusters it appears in."""
    seen: dict[str, dict[str, Any]] = {}
    for match in matches:
        for value in {json.dumps(v, sort_keys=True): v for v in match["values"]}.values():
            key = json.dumps(value, sort_keys=True)
            entry = seen.setdefault(key, {"value": value, "objects": 0, "clusters": set()})
            entry["objects"] += 1
            entry["clusters"].add(match["cluster_id"])
    rows = [{"value": e["value"], "objects": e["objects"], "clusters": len(e["clusters"])}
            for e in seen.values()]
    return sorted(rows, key=lambda r: (-r["objects"], _text(r["value"])))


@click.command()
@click.argument("jsonpath")
@click.option("--cluster", "clusters", multiple=True, help="only this cluster (repeatable)")
@click.option("--kind", default=None, help="only objects of this kind, e.g. Deployment")
@click.option("--namespace", default=None)
@click.option("--distinct", is_flag=True, help="each value once, with counts")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=MAX_LIMIT,
              show_default=True, help="most objects to match")
@api_command()
def search(*, client: AdminClient, out: Output, jsonpath: str, clusters: tuple[str, ...],
           kind: str | None, namespace: str | None, distinct: bool, limit: int) -> None:
    """Evaluate JSONPATH on every current manifest (of the selected clusters/kind)."""
    body: dict[str, Any] = {"path": jsonpath, "limit": limit}
    if clusters:
        body["clusters"] = list(clusters)
    if kind:
        body["kind"] = kind
    if namespace is not None:
        body["namespace"] = namespace
    with out.progress("searching the fleet"):
        answer = client.post("/v1/admin/search", body)
    matches = answer["matches"]
    if distinct:
        out.rows(distinct_values(matches), DISTINCT_COLUMNS, title=f"Distinct {jsonpath}",
                 empty="no matches")
    else:
        rows = [{"cluster": m["cluster_id"], "kind": m["resource"]["kind"],
                 "namespace": m["resource"].get("namespace"), "name": m["resource"]["name"],
                 "value": m["values"][0] if len(m["values"]) == 1 else m["values"]}
                for m in matches]
        out.rows(rows, HIT_COLUMNS, title=jsonpath, empty="no matches")
    if len(matches) >= limit:
        out.note(f"warning: stopped at {limit} matching objects; narrow the search "
                 "(--cluster, --kind, --namespace) to see everything")
