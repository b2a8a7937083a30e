"""`k8smon report CLUSTER --format json|sarif|policyreport|html`: a cluster's report.

Needs the admin API's `GET /v1/admin/clusters/<id>/report?format=...`, answering the
document in that format (the media types of the formats registry, `reports.formats`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import click

from cli.client import AdminClient
from cli.output import Output, api_command
from reports.formats import FORMATS, SERVED_FORMATS


@click.command()
@click.argument("cluster")
@click.option(
    "--output",
    "-o",
    "output_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="write to this file instead of standard output",
)
@api_command(formats=SERVED_FORMATS)
def report(*, client: AdminClient, out: Output, cluster: str, output_path: str | None) -> None:
    """Fetch CLUSTER's report from the latest scan."""
    with out.progress(f"building the {out.fmt} report of {cluster}"):
        answer = client.request(
            "GET",
            f"/v1/admin/clusters/{quote(cluster, safe='')}/report",
            params={"format": out.fmt},
            accept=FORMATS[out.fmt].media_type,
        )
    if output_path:
        Path(output_path).write_bytes(answer.body)
        out.note(f"wrote {output_path} ({len(answer.body)} bytes)")
        return
    click.echo(answer.body.decode("utf-8"), nl=not answer.body.endswith(b"\n"))
