"""Engines and sessions: one engine per process, one session (unit of work) per request or task."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker


def load_json(text: str) -> Any:
    """Decode a JSON column with orjson (about twice as fast as the standard library, which
    matters when a scan reads thousands of manifests); what orjson refuses (NaN) falls back to
    the standard library. orjson would read an integer beyond 64 bits as a float, but none is
    ever stored: the ingest refuses them, as the Kubernetes API never serves one."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def with_pinned_driver(database_url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg2, the driver we pin.

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, which is not installed in production.
    """
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg2://" + database_url[len(prefix) :]
    return database_url


def dump_json(value: Any) -> str:
    """Encode a JSON column with orjson; the standard library for what orjson refuses
    (integers beyond 64 bits, unusual key types)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


SQLITE_BUSY_TIMEOUT_S = 60


def make_engine(database_url: str, *, lock_on_begin: bool = True, **options: Any) -> Engine:
    """Create an engine with sane pool settings; SQLite gets WAL, foreign keys, a busy timeout
    and write-serialised transactions (`_sqlite_begin_immediate`). `lock_on_begin=False`
    keeps the driver's own transactions instead (reads outside any transaction, BEGIN just
    before the first write), for an observer such as a test whose open session must not hold
    the write lock the server's sessions wait for."""
    options.setdefault("json_deserializer", load_json)
    options.setdefault("json_serializer", dump_json)
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            **options,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if lock_on_begin:
            event.listen(engine, "connect", _sqlite_no_implicit_begin)
            event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    database_url = with_pinned_driver(database_url)
    options.setdefault("pool_pre_ping", True)
    options.setdefault("pool_size", 5)
    options.setdefault("max_overflow", 10)
    return create_engine(database_url, **options)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN (deferred, just before the first write) is turned off:
    # every transaction starts at SQLAlchemy's "begin" event instead.
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection: Any) -> None:
    """Start every SQLite transaction with BEGIN IMMEDIATE: it takes the write lock up front,
    waiting up to the busy timeout for it. A deferred transaction that read first and writes
    later fails at once with `database is locked` when another connection wrote in between
    (SQLite cannot upgrade a stale read snapshot, so the busy timeout never applies): that is
    how a telemetry ping arriving during snapshot processing used to lose the snapshot."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def on_postgresql(session: Session) -> bool:
    """Whether the session's database is PostgreSQL (production) rather than SQLite (embedded):
    the one test of the dialect for the paths that differ between them."""
    return session.get_bind().dialect.name == "postgresql"


@contextmanager
def local_settings(session: Session, **settings: str) -> Iterator[None]:
    """PostgreSQL: the statements inside run with these settings (`set_config(..., true)`,
    as `SET LOCAL`: for the transaction), the previous values put back after them. On an
    error nothing is put back: the error aborts the transaction (or its savepoint), whose
    rollback restores them. Other databases: nothing is set."""
    if not on_postgresql(session):
        yield
        return
    current = text("SELECT current_setting(:name)")
    apply = text("SELECT set_config(:name, :value, true)")
    previous = {name: session.execute(current, {"name": name}).scalar_one() for name in settings}
    for name, value in settings.items():
        session.execute(apply, {"name": name, "value": value})
    yield
    for name, value in previous.items():
        session.execute(apply, {"name": name, "value": value})
