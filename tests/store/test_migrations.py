"""The Alembic migrations go up from empty to head and back down to base, on both engines."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from store import migrate
from store.db import make_engine
from store.models import Base
from tests.support.services import ThrowawayDatabase


def _round_trip(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) is not None
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)  # and up again: downgrade left nothing behind
        assert migrate.current_revision(engine) is not None
    finally:
        engine.dispose()


def test_migrations_round_trip_on_sqlite(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")


def test_migrations_round_trip_on_postgresql(postgres_server_url: str) -> None:
    database = ThrowawayDatabase.create(postgres_server_url)
    try:
        _round_trip(database.url)
    finally:
        database.drop()


def test_models_and_migrations_agree(pg_engine) -> None:
    """Autogenerate finds nothing to do: the models and the migrations describe one schema."""
    from alembic.autogenerate import compare_metadata  # noqa: PLC0415
    from alembic.migration import MigrationContext  # noqa: PLC0415

    with pg_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_bodies_are_lz4_compressed_without_a_gin_index(pg_engine) -> None:
    """0009: new bodies compressed with lz4 (this server has it), no GIN index over them."""
    from sqlalchemy import text  # noqa: PLC0415

    body = "attrelid = 'manifest_bodies'::regclass AND attname = 'body'"
    with pg_engine.connect() as connection:
        compression = connection.scalar(
            text(f"SELECT attcompression FROM pg_attribute WHERE {body}")
        )
        indexes = set(
            connection.scalars(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'manifest_bodies'")
            )
        )
    assert (compression, indexes) == ("l", {"pk_manifest_bodies"})
