"""`k8smon rescan CLUSTER [--wait]`: scan a cluster now, optionally waiting for the result."""

from __future__ import annotations

import time

import click

from cli.client import EXIT_ERROR, AdminClient, ApiError
from cli.commands.scans import COLUMNS, list_scans, scan_row
from cli.output import DURATION, Output, api_command

POLL_SECONDS = 1.0


@click.command()
@click.argument("cluster", required=False)
@click.option("--all", "every", is_flag=True, help="scan every active cluster (a fleet scan)")
@click.option("--wait", is_flag=True, help="wait for the scan to finish and show it")
@click.option(
    "--timeout", type=DURATION, default="10m", show_default=True, help="how long --wait waits"
)
@api_command()
def rescan(
    *,
    client: AdminClient,
    out: Output,
    cluster: str | None,
    every: bool,
    wait: bool,
    timeout: float,
) -> None:
    """Queue a scan of CLUSTER, or of every cluster with --all (exit 1 with --wait when the
    scan fails or times out)."""
    if every == bool(cluster):
        raise click.UsageError("name one CLUSTER or give --all")
    if every:
        if wait:
            raise click.UsageError("--wait works with one CLUSTER, not with --all")
        answer = client.post("/v1/admin/rescan", {})
        if out.for_people:
            out.note("fleet scan requested (every active cluster)")
        else:
            out.record(answer)
        return
    assert cluster is not None
    before = 0
    if wait:
        latest = list_scans(client, cluster=cluster, limit=1)
        before = int(latest[0]["id"]) if latest else 0
    answer = client.post("/v1/admin/rescan", {"cluster_id": cluster})
    if not wait:
        if out.for_people:
            out.note(f"rescan of {cluster} requested")
        else:
            out.record(answer)
        return
    deadline = time.monotonic() + timeout
    with out.progress(f"scanning {cluster}"):
        while True:
            found = [
                s
                for s in list_scans(client, cluster=cluster, limit=5)
                if int(s["id"]) > before and s["state"] in ("done", "failed")
            ]
            if found:
                scan = min(found, key=lambda s: int(s["id"]))
                break
            if time.monotonic() > deadline:
                raise ApiError(
                    f"no finished scan of {cluster} after {timeout:g} s (is a worker running?)",
                    exit_code=EXIT_ERROR,
                )
            time.sleep(POLL_SECONDS)
    out.rows([scan_row(scan)], COLUMNS, title=f"Scan of {cluster}")
    if scan["state"] != "done":
        raise ApiError(f"scan {scan['id']} of {cluster} failed", exit_code=EXIT_ERROR)
