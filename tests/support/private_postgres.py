"""A private PostgreSQL server for one test module (never the shared one): start it, migrate a
database on it, make it read-only and writable again, stop it."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from tests.support.services import can_start_postgres
from tests.support.throwaway_postgres import ThrowawayPostgres


@contextmanager
def private_postgres() -> Iterator[ThrowawayPostgres]:
    """initdb + start on a free port, under a folder the `postgres` user can reach."""
    if not can_start_postgres():
        pytest.skip("no PostgreSQL binaries on this machine")
    base = Path(tempfile.mkdtemp(prefix="k8smon-pg-"))
    base.chmod(0o755)
    server = ThrowawayPostgres.start(base)
    try:
        yield server
    finally:
        with suppress(Exception):  # already stopped by the test
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _admin(server: ThrowawayPostgres) -> Engine:
    return create_engine(server.url, isolation_level="AUTOCOMMIT")


def set_read_only(server: ThrowawayPostgres, read_only: bool) -> None:
    """Make every new transaction on the server read-only (as a standby after a failover
    answers writes: SQLSTATE 25006), or writable again; existing connections follow at their
    next transaction."""
    engine = _admin(server)
    with engine.connect() as connection:
        connection.execute(text("SET default_transaction_read_only = off"))
        if read_only:
            connection.execute(text("ALTER SYSTEM SET default_transaction_read_only = on"))
        else:
            connection.execute(text("ALTER SYSTEM RESET default_transaction_read_only"))
        connection.execute(text("SELECT pg_reload_conf()"))
    engine.dispose()
    # The reload reaches each backend asynchronously: wait until a new session sees it.
    expected = "on" if read_only else "off"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        probe = create_engine(server.url, poolclass=NullPool)
        with probe.connect() as connection:
            value = connection.execute(text("SHOW default_transaction_read_only")).scalar()
        probe.dispose()
        if value == expected:
            time.sleep(0.2)  # and the existing backends, signalled at the same time
            return
        time.sleep(0.05)
    raise AssertionError(f"default_transaction_read_only did not become {expected}")


@contextmanager
def read_only(server: ThrowawayPostgres) -> Iterator[None]:
    """The server is read-only inside the block, writable again after it."""
    set_read_only(server, True)
    try:
        yield
    finally:
        set_read_only(server, False)
