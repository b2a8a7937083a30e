"""Find the PostgreSQL and Redis the tests use: env URLs, local servers, or throwaway ones."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_HINT = (
    "PostgreSQL is needed for the tests: set DATABASE_URL, or run a server on 127.0.0.1:5432 "
    "(e.g. `pg_ctlcluster 15 main start`), or install its binaries (pg_ctl) so the tests can "
    "start a throwaway one."
)
REDIS_HINT = (
    "Redis is needed for the tests: set REDIS_URL, or run `redis-server --daemonize yes` on "
    "127.0.0.1:6379, or install redis-server so the tests can start a throwaway one."
)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _ignore_local_servers() -> bool:
    """K8SMON_TEST_THROWAWAY_SERVERS=1 skips the default ports (to exercise the fallback)."""
    return os.environ.get("K8SMON_TEST_THROWAWAY_SERVERS") == "1"


def configured_postgres_url() -> str | None:
    """DATABASE_URL when it names PostgreSQL, else the local default server if it answers."""
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url and url.startswith("postgresql"):
        return url
    if not _ignore_local_servers() and port_open("127.0.0.1", 5432):
        return "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    return None


def configured_redis_url() -> str | None:
    url = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if url:
        return url
    if not _ignore_local_servers() and port_open("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    return None


def can_start_postgres() -> bool:
    return shutil.which("pg_ctl") is not None or any(
        os.path.exists(f"/usr/lib/postgresql/{v}/bin/pg_ctl") for v in range(12, 20)
    )


def can_start_redis() -> bool:
    return shutil.which("redis-server") is not None


@dataclass(frozen=True)
class ThrowawayDatabase:
    """A database created for one test session on a server, dropped afterwards."""

    admin_url: str
    url: str
    name: str

    @classmethod
    def create(cls, server_url: str) -> ThrowawayDatabase:
        name = f"k8smon_test_{uuid.uuid4().hex[:10]}"
        admin = make_url(server_url).set(drivername="postgresql+psycopg2")
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return cls(
            admin_url=admin.render_as_string(hide_password=False),
            url=admin.set(database=name).render_as_string(hide_password=False),
            name=name,
        )

    def drop(self) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        engine.dispose()


def redis_db_url(base_url: str, db: int) -> str:
    """The same Redis server with the test suite's own database number."""
    url = make_url(base_url.replace("redis://", "redis+test://", 1))
    return (
        url.set(database=str(db))
        .render_as_string(hide_password=False)
        .replace("redis+test://", "redis://", 1)
    )
