"""The error table (store.failures), one test per row with the real error: provoked on a private
PostgreSQL (read-only, terminated backend, stopped server, serialization failure, deadlock,
constraint violation), on real Redis servers (down, read-only replica, silent) and on SQLite."""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy.exc
from sqlalchemy import Engine, create_engine, text

from contracts.states import ErrorClass
from store.failures import ERRORS, classify
from tests.support.private_postgres import private_postgres, set_read_only
from tests.support.services import can_start_redis
from tests.support.throwaway_postgres import ThrowawayPostgres
from tests.workers.celery_rig import free_port, wait_for

pytestmark = [pytest.mark.postgres]


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayPostgres]:
    with private_postgres() as pg:
        engine = create_engine(pg.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("CREATE TABLE t (id int PRIMARY KEY, v int)"))
            connection.execute(text("INSERT INTO t VALUES (1, 0), (2, 0)"))
        engine.dispose()
        yield pg


@pytest.fixture
def engine(server: ThrowawayPostgres) -> Iterator[Engine]:
    engine = create_engine(server.url, pool_pre_ping=False)
    yield engine
    engine.dispose()


def _raised(call: object) -> BaseException:
    try:
        call()  # type: ignore[operator]
    except Exception as exc:
        return exc
    raise AssertionError("no error was raised")


def test_every_row_has_a_reason_and_a_class() -> None:
    assert ERRORS
    for row in ERRORS:
        assert row.reason and row.error_class in ErrorClass
        assert row.sqlstates or row.types or row.message is not None


def test_a_read_only_transaction_is_unavailable(engine: Engine) -> None:
    def write() -> None:
        with engine.begin() as connection:
            connection.execute(text("SET TRANSACTION READ ONLY"))
            connection.execute(text("UPDATE t SET v = v + 1 WHERE id = 1"))

    error = _raised(write)
    assert isinstance(error, sqlalchemy.exc.InternalError)  # not an OperationalError
    failure = classify(error)
    assert failure.error_class is ErrorClass.UNAVAILABLE
    assert "read-only" in failure.reason and "25006" in failure.error
    assert failure.retryable and failure.retry_after_s > 0


def test_a_server_made_read_only_is_unavailable(server: ThrowawayPostgres, engine: Engine) -> None:
    with engine.connect() as connection:  # a pooled connection from before the switch
        connection.execute(text("SELECT 1"))
    set_read_only(server, True)
    try:
        error = _raised(lambda: _update(engine))
    finally:
        set_read_only(server, False)
    assert classify(error).error_class is ErrorClass.UNAVAILABLE
    _update(engine)  # writable again, on the same pool


def _update(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE t SET v = v + 1 WHERE id = 2"))


def test_a_terminated_backend_is_retryable(engine: Engine, server: ThrowawayPostgres) -> None:
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        error = _raised(lambda: connection.execute(text("SELECT 1")))
    admin.dispose()
    failure = classify(error)
    # "terminating connection due to administrator command" (57P01), or the lost connection
    # itself when the notice did not arrive first: retried either way.
    assert failure.error_class in {ErrorClass.UNAVAILABLE, ErrorClass.TRANSIENT}
    assert failure.retryable


def test_a_stopped_server_is_unavailable() -> None:
    with private_postgres() as pg:
        engine = create_engine(pg.url, pool_pre_ping=False)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        pg.stop()
        lost = _raised(lambda: _update(engine))  # the pooled connection: lost
        engine.dispose()
        refused = _raised(lambda: _update(engine))  # a new connection: refused
        engine.dispose()
    assert classify(lost).retryable
    failure = classify(refused)
    assert isinstance(refused, sqlalchemy.exc.OperationalError)
    assert failure.error_class is ErrorClass.UNAVAILABLE
    assert "cannot be reached" in failure.reason


def test_a_serialization_failure_is_transient(engine: Engine) -> None:
    first, second = engine.connect(), engine.connect()
    try:
        for connection in (first, second):
            connection.execute(text("BEGIN ISOLATION LEVEL REPEATABLE READ"))
            connection.execute(text("SELECT v FROM t WHERE id = 1")).scalar()
        first.execute(text("UPDATE t SET v = v + 1 WHERE id = 1"))
        first.commit()
        error = _raised(lambda: second.execute(text("UPDATE t SET v = v + 1 WHERE id = 1")))
    finally:
        first.close()
        second.close()
    failure = classify(error)
    assert failure.error_class is ErrorClass.TRANSIENT and "40001" in failure.error


def test_a_deadlock_is_transient(engine: Engine) -> None:
    first, second = engine.connect(), engine.connect()
    errors: list[BaseException] = []

    def lock(connection: object, row: int) -> None:
        try:
            connection.execute(text("UPDATE t SET v = v WHERE id = :id"), {"id": row})  # type: ignore[attr-defined]
        except Exception as exc:
            errors.append(exc)

    try:
        first.execute(text("UPDATE t SET v = v WHERE id = 1"))
        second.execute(text("UPDATE t SET v = v WHERE id = 2"))
        waiter = threading.Thread(target=lock, args=(first, 2))
        waiter.start()
        lock(second, 1)  # closes the cycle: PostgreSQL aborts one of the two
        waiter.join(timeout=30)
    finally:
        first.close()
        second.close()
    assert errors
    failure = classify(errors[0])
    assert failure.error_class is ErrorClass.TRANSIENT and "40P01" in failure.error


def test_a_constraint_violation_is_permanent(engine: Engine) -> None:
    def duplicate() -> None:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1, 0)"))

    error = _raised(duplicate)
    failure = classify(error)
    assert failure.error_class is ErrorClass.PERMANENT and not failure.retryable
    assert "23505" in failure.error


def test_a_missing_table_and_a_plain_bug_are_permanent(engine: Engine) -> None:
    def missing() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table"))

    assert classify(_raised(missing)).error_class is ErrorClass.PERMANENT
    assert classify(KeyError("x")).error_class is ErrorClass.PERMANENT


def test_a_locked_sqlite_database_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (id int)")
    holder.execute("BEGIN IMMEDIATE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    try:
        error = _raised(lambda: _insert_sqlite(engine))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()
    assert classify(error).error_class is ErrorClass.TRANSIENT


def _insert_sqlite(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))


def test_redis_down_is_transient() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=None)
    error = _raised(client.ping)
    assert isinstance(error, redis.exceptions.ConnectionError)
    assert classify(error).error_class is ErrorClass.TRANSIENT


def test_a_silent_redis_is_transient() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        port = listener.getsockname()[1]
        client = redis.Redis(port=port, socket_timeout=0.3, socket_connect_timeout=0.3)
        error = _raised(client.ping)
    finally:
        listener.close()
    assert isinstance(error, redis.exceptions.TimeoutError)
    assert classify(error).error_class is ErrorClass.TRANSIENT


def test_redis_loading_its_data_is_transient() -> None:
    # The error redis-py raises for Redis' "-LOADING" reply while it reads its dump at start.
    error = redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory")
    assert classify(error).error_class is ErrorClass.TRANSIENT


@pytest.mark.skipif(not can_start_redis(), reason="no redis-server on this machine")
def test_a_read_only_redis_replica_is_unavailable(tmp_path: Path) -> None:
    import subprocess  # noqa: PLC0415

    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--replicaof",
            "127.0.0.1",
            str(free_port()),  # a master that is not there: the replica stays read-only
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, socket_timeout=2)
        wait_for(lambda: _pings(client), timeout=20, what="the private redis-server")
        error = _raised(lambda: client.set("k", "v"))
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert isinstance(error, redis.exceptions.ReadOnlyError)
    assert classify(error).error_class is ErrorClass.UNAVAILABLE


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False


def test_a_wrapped_error_is_classified_by_its_cause() -> None:
    try:
        try:
            raise redis.exceptions.ConnectionError("lost")
        except redis.exceptions.ConnectionError as inner:
            raise RuntimeError("while sending") from inner
    except RuntimeError as outer:
        assert classify(outer).error_class is ErrorClass.TRANSIENT
