"""`k8smon db`: apply, revert and inspect the database migrations."""

from __future__ import annotations

import click

from cli.runtime import open_runtime
from store import migrate


@click.group()
def db() -> None:
    """Database schema migrations (Alembic)."""


@db.command()
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Bring the database schema up to REVISION."""
    runtime = open_runtime()
    migrate.upgrade(runtime.engine, revision)
    click.echo(f"database at revision {migrate.current_revision(runtime.engine)}")


@db.command()
@click.option("--revision", required=True, help="target revision, or 'base' to drop everything")
def downgrade(revision: str) -> None:
    """Revert the database schema to REVISION."""
    runtime = open_runtime()
    migrate.downgrade(runtime.engine, revision)
    click.echo(f"database at revision {migrate.current_revision(runtime.engine)}")


@db.command()
def current() -> None:
    """Print the database's current revision."""
    click.echo(migrate.current_revision(open_runtime().engine) or "empty (no revision)")
