"""Run Alembic migrations programmatically (the `k8smon db` commands and the test rig use this)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command, op
from alembic.config import Config
from sqlalchemy import Connection, Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(*, url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest)."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def set_compression(table: str, column: str, method: str) -> None:
    """In a migration: compress the column's new values with `method` (`lz4`, `pglz`) where
    the server supports it (PostgreSQL 14 and later, lz4 when built with it); elsewhere (an
    older server, SQLite) nothing changes."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if int(bind.execute(sa.text("SHOW server_version_num")).scalar_one()) < 140000:
        return  # SET COMPRESSION came with PostgreSQL 14
    op.execute(
        "DO $$ BEGIN "
        f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}; "
        "EXCEPTION WHEN feature_not_supported THEN NULL; "  # built without lz4
        "END $$"
    )
