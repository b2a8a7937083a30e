"""Storage tests count rows exactly, so they get a PostgreSQL database of their own.

Other suites run live servers that commit for real into the shared session database; counting
"exactly 1,000 bodies" there would count their rows too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from store import migrate
from store.db import make_engine
from tests.conftest import _savepoint_session
from tests.support.services import ThrowawayDatabase


@pytest.fixture(scope="session")
def store_pg_engine(postgres_server_url: str) -> Iterator[Engine]:
    database = ThrowawayDatabase.create(postgres_server_url)
    engine = make_engine(database.url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()
    database.drop()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db_session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """The same test on PostgreSQL and on SQLite (the embedded default), isolated databases."""
    fixture = "store_pg_engine" if request.param == "postgresql" else "sqlite_engine"
    yield from _savepoint_session(request.getfixturevalue(fixture))
