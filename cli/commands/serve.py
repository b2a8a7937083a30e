"""`k8smon serve`: the server on the embedded default (`make run`), staying up until stopped."""

from __future__ import annotations

import os
from typing import Any

import click

from contracts.stopping import stop_on_signals


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve ingest and admin pages; without REDIS_URL also run scans and the schedule here."""
    from cli.embedded import EmbeddedServer  # noqa: PLC0415 - heavy imports only when serving

    # Installed first: a stop request during start-up is honoured, never lost.
    stopping = stop_on_signals()
    server = EmbeddedServer(environ=dict(os.environ), host=host, port=port)
    accounts = _has_accounts(server)
    in_process = server.settings.tasks_in_process
    if in_process:
        server.start_schedule()
    server.start()
    click.echo(
        f"k8s-monitor listening on {server.url} "
        f"({'tasks in-process' if in_process else 'tasks on Celery workers'}; "
        f"database {server.settings.database_url.split('://', 1)[0]})\n"
        f"Admin pages: {server.url}/admin/"
        + (
            ""
            if accounts
            else "\nNo account can sign in yet: create one with "
            "`k8smon users add NAME --role admin` (in this environment, on this machine)"
        )
    )
    while not stopping.wait(1.0):
        pass
    click.echo("stopping")
    server.stop()
    click.echo("stopped")


def _has_accounts(server: Any) -> bool:
    from store.accounts import list_accounts  # noqa: PLC0415
    from store.db import unit_of_work  # noqa: PLC0415

    with unit_of_work(server.runner.ctx.sessions) as session:
        return bool(list_accounts(session))
