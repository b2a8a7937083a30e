"""`k8smon images`: every container image running in the fleet's workloads, with how many
workloads run it and in which clusters (each image counted once per workload: a Deployment,
its ReplicaSets and Pods are one workload)."""

from __future__ import annotations

import click

from cli.client import AdminClient
from cli.output import Col, Output, api_command

COLUMNS = [
    Col("image", "image"),
    Col("workloads", "workloads"),
    Col("cluster_count", "clusters"),
    Col("clusters", "in clusters", wide=True),
    Col("kinds", "kinds", wide=True),
]


@click.command()
@click.option("--cluster", "clusters", multiple=True, help="only this cluster (repeatable)")
@click.option("--limit", type=click.IntRange(1, 100_000), default=10_000, show_default=True)
@api_command()
def images(*, client: AdminClient, out: Output, clusters: tuple[str, ...], limit: int) -> None:
    """Every image in Pods and workload templates (containers, initContainers,
    ephemeralContainers; CronJobs too), most used first."""
    with out.progress("listing the fleet's images"):
        answer = client.request(
            "GET", "/v1/admin/images", params={"cluster": list(clusters) or None, "limit": limit}
        ).json()
    out.rows(answer["images"], COLUMNS, title="Images", empty="no workloads with images")
    if answer.get("truncated"):
        out.note(f"warning: only the {limit} most used images are listed; raise --limit")
