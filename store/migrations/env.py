"""Alembic environment: runs migrations on the connection or URL handed over by store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from store.db import with_pinned_driver
from store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = create_engine(with_pinned_driver(config.get_main_option("sqlalchemy.url") or ""))
    with engine.connect() as conn:
        _run_on(conn)
        conn.commit()
    engine.dispose()


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
