"""Test rig: a throwaway PostgreSQL database with the real migrations, SAVEPOINT per test,
an SQLite twin for storage tests, and an isolated Redis database."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_redis import factories as redis_factories
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from settings import Settings
from store import migrate
from store.db import make_engine
from tests.support.services import (
    POSTGRES_HINT,
    REDIS_HINT,
    ThrowawayDatabase,
    can_start_postgres,
    can_start_redis,
    configured_postgres_url,
    configured_redis_url,
    redis_db_url,
)
from tests.support.throwaway_postgres import ThrowawayPostgres

REPO_ROOT = Path(__file__).resolve().parent.parent

# A throwaway Redis from the local binary, used only when no server answers.
redis_proc = redis_factories.redis_proc(port=None, db_count=16)

# The suite's own Redis database number: tests never touch keys elsewhere.
TEST_REDIS_DB = int(os.environ.get("K8SMON_TEST_REDIS_DB", "13"))


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = configured_postgres_url()
    if url:
        yield url
        return
    if not can_start_postgres():
        pytest.fail(POSTGRES_HINT, pytrace=False)
    # Not under pytest's tmp tree: that is private to root, and PostgreSQL runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="k8smon-pg-"))
    base.chmod(0o755)
    server = ThrowawayPostgres.start(base)
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


class PackageDatabases:
    """One migrated throwaway database per test package, created on first use.

    Live-server tests commit for real, and their rows must not leak into another package's
    exact assertions. (A pytest "package"-scoped fixture defined here would be torn down only
    with the `tests` package itself, i.e. shared by everything.)
    """

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._by_package: dict[str, tuple[ThrowawayDatabase, Engine]] = {}

    def get(self, package: str) -> tuple[ThrowawayDatabase, Engine]:
        if package not in self._by_package:
            database = ThrowawayDatabase.create(self.server_url)
            engine = make_engine(database.url)
            migrate.upgrade(engine)
            self._by_package[package] = (database, engine)
        return self._by_package[package]

    def close(self) -> None:
        for database, engine in self._by_package.values():
            engine.dispose()
            database.drop()


@pytest.fixture(scope="session")
def package_databases(postgres_server_url: str) -> Iterator[PackageDatabases]:
    databases = PackageDatabases(postgres_server_url)
    yield databases
    databases.close()


def _package_of(request: pytest.FixtureRequest) -> str:
    return str(request.path.parent)


@pytest.fixture
def postgres_database(
    request: pytest.FixtureRequest, package_databases: PackageDatabases
) -> ThrowawayDatabase:
    """The migrated throwaway database of this test's package."""
    return package_databases.get(_package_of(request))[0]


@pytest.fixture
def pg_engine(request: pytest.FixtureRequest, package_databases: PackageDatabases) -> Engine:
    """Engine on this test package's throwaway database, migrated to head once."""
    return package_databases.get(_package_of(request))[1]


@pytest.fixture(scope="session")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("sqlite") / "k8smon.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _savepoint_session(engine: Engine) -> Iterator[Session]:
    """A session whose commits land in a SAVEPOINT of an outer transaction rolled back after."""
    connection = engine.connect()
    outer = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def db_session(pg_engine: Engine) -> Iterator[Session]:
    """A PostgreSQL session rolled back after the test."""
    yield from _savepoint_session(pg_engine)


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db_session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """The same test on PostgreSQL and on SQLite (the embedded default)."""
    fixture = "pg_engine" if request.param == "postgresql" else "sqlite_engine"
    engine = request.getfixturevalue(fixture)
    yield from _savepoint_session(engine)


@pytest.fixture(scope="session")
def redis_server_url(request: pytest.FixtureRequest) -> str:
    url = configured_redis_url()
    if url:
        return url
    if can_start_redis():
        proc = request.getfixturevalue("redis_proc")
        return f"redis://{proc.host}:{proc.port}/0"
    pytest.fail(REDIS_HINT, pytrace=False)


@pytest.fixture(scope="session")
def redis_url(redis_server_url: str) -> str:
    """Redis URL on the suite's own database number."""
    return redis_db_url(redis_server_url, TEST_REDIS_DB)


@pytest.fixture
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix for one test; its keys are deleted afterwards (only those)."""
    import redis  # noqa: PLC0415

    prefix = f"k8smon-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def test_settings(tmp_path: Path, postgres_database: ThrowawayDatabase) -> Settings:
    """Settings for a component under test: the session's PostgreSQL, no Redis, a temp folder."""
    return Settings(
        environment="embedded",
        database_url=postgres_database.url,
        secret_key="test-secret-key-" + "x" * 32,
        instance_path=tmp_path,
        # `#channel`s are registrable; deliveries to them are refused at once by a closed port
        # unless a test points the Slack API at its fake Slack.
        slack_bot_token="xoxb-test-token",
        slack_api_url="http://127.0.0.1:9/api/",
    )
