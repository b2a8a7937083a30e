"""`k8smon serve`: the server on the embedded default (`make run`), staying up until stopped."""

from __future__ import annotations

import os
import signal
from types import FrameType

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve ingest and admin pages; without REDIS_URL also run scans and the schedule here."""
    from cli.embedded import EmbeddedServer  # noqa: PLC0415 - heavy imports only when serving

    server = EmbeddedServer(environ=dict(os.environ), host=host, port=port)
    server.start()
    in_process = server.settings.tasks_in_process
    if in_process:
        server.start_schedule()
    click.echo(
        f"k8s-monitor listening on {server.url} "
        f"({'tasks in-process' if in_process else 'tasks on Celery workers'}; "
        f"database {server.settings.database_url.split('://', 1)[0]})"
    )

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.wait()
    click.echo("stopped")
