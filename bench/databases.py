"""Benchmark databases: a named database on the bench's PostgreSQL server, made and dropped."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

DEFAULT_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def server_url() -> URL:
    """`K8SMON_BENCH_DATABASE_URL`, or the local server; always with the pinned psycopg2 driver
    (SQLAlchemy 2.1 would pick psycopg 3 otherwise)."""
    raw = os.environ.get("K8SMON_BENCH_DATABASE_URL", DEFAULT_SERVER)
    return make_url(raw).set(drivername="postgresql+psycopg2")


def _admin_execute(*statements: str) -> None:
    admin = create_engine(server_url().set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for statement in statements:
            connection.execute(text(statement))
    admin.dispose()


def recreate_database(name: str) -> str:
    """Drop `name` if a crashed run left it, create it empty, and return its URL."""
    _admin_execute(
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}"',
    )
    return server_url().set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
