"""`k8smon images`: every container image running in the fleet's workloads, with how many
workloads run it and in which clusters (each image counted once per workload: a Deployment,
its ReplicaSets and Pods are one workload); `--workloads` lists the inventory itself: each
workload's containers with repository, tag, digest and since when they run it."""

from __future__ import annotations

import click

from cli.client import AdminClient
from cli.output import Col, Output, api_command

COLUMNS = [
    Col("image", "image"),
    Col("repository", "repository", wide=True),
    Col("tag", "tag", wide=True),
    Col("digest", "digest", wide=True),
    Col("workloads", "workloads"),
    Col("cluster_count", "clusters"),
    Col("clusters", "in clusters", wide=True),
    Col("kinds", "kinds", wide=True),
]


INVENTORY = [
    Col("repository", "repository"),
    Col("tag", "tag"),
    Col("digest", "digest", wide=True),
    Col("cluster_id", "cluster"),
    Col("namespace", "namespace"),
    Col("workload", "workload"),
    Col("container", "container"),
    Col("since", "since", age=True),
    Col("version_error", "version", wide=True),
]


def _inventory(
    client: AdminClient,
    out: Output,
    *,
    clusters: tuple[str, ...],
    repository: str | None,
    limit: int,
) -> None:
    with out.progress("listing the fleet's running images"):
        answer = client.request(
            "GET",
            "/v1/admin/images/inventory",
            params={"cluster": list(clusters) or None, "repository": repository, "limit": limit},
        ).json()
    rows = [
        {
            **r,
            "workload": f"{r['kind']}/{r['name']}",
            "version_error": "" if r.get("version") else "tag is not a version",
        }
        for r in answer["images"]
    ]
    out.rows(rows, INVENTORY, title="Running images", empty="no workloads with images")
    if answer.get("truncated"):
        out.note(f"warning: only {limit} rows are listed; raise --limit")


@click.command()
@click.option("--cluster", "clusters", multiple=True, help="only this cluster (repeatable)")
@click.option("--limit", type=click.IntRange(1, 100_000), default=10_000, show_default=True)
@click.option(
    "--workloads",
    is_flag=True,
    help="the inventory: one row per workload container (repository, tag, digest, where, since)",
)
@click.option("--repository", default=None, help="with --workloads: a repository glob")
@api_command()
def images(
    *,
    client: AdminClient,
    out: Output,
    clusters: tuple[str, ...],
    limit: int,
    workloads: bool,
    repository: str | None,
) -> None:
    """Every image in Pods and workload templates (containers, initContainers,
    ephemeralContainers; CronJobs too), most used first; `--workloads`: where each runs."""
    if workloads:
        _inventory(client, out, clusters=clusters, repository=repository, limit=limit)
        return
    if repository:
        raise click.BadParameter("--repository needs --workloads", param_hint="--repository")
    with out.progress("listing the fleet's images"):
        answer = client.request(
            "GET", "/v1/admin/images", params={"cluster": list(clusters) or None, "limit": limit}
        ).json()
    out.rows(answer["images"], COLUMNS, title="Images", empty="no workloads with images")
    if answer.get("truncated"):
        out.note(f"warning: only the {limit} most used images are listed; raise --limit")
