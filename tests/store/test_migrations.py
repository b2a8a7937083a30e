"""The Alembic migrations go up from empty to head and back down to base, on both engines."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import inspect

from contracts.states import ClusterStatus
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


def _fill_from_0011(url: str) -> None:
    """0012 on a database whose `image_changes` 0011 filled: `image_present` holds each
    group's started - ended (groups with current slots only), values kept as JSON; then 0015
    moves both to rows keyed by a group id, the groups' columns (a JSON null, an object) kept."""
    from sqlalchemy import text  # noqa: PLC0415

    engine = make_engine(url)
    try:
        migrate.upgrade(engine, "0011")
        row = (
            "INSERT INTO image_changes (group_key, at, cluster_id, kind, namespace, shape, "
            "value, started, ended) VALUES (:key, :at, 'c1', 'Pod', 'ns', '.\"image\"', "
            ":value, :started, :ended)"
        )
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO clusters (id, display_name, labels, status, created_at) "
                    "VALUES ('c1', 'c1', '{}', :status, '2026-12-01T00:00:00+00:00')"
                ),
                {"status": ClusterStatus.ACTIVE.value},
            )
            for key, at, value, started, ended in (
                ("a" * 64, "2026-12-01T00:00:00+00:00", '"img:1"', 3, 0),
                ("a" * 64, "2026-12-02T00:00:00+00:00", '"img:1"', 0, 1),
                ("b" * 64, "2026-12-01T00:00:00+00:00", "null", 1, 0),
                ("b" * 64, "2026-12-03T00:00:00+00:00", "null", 0, 1),
                ("c" * 64, "2026-12-01T00:00:00+00:00", '{"x": [1, 2]}', 2, 0),
            ):
                connection.execute(
                    text(row),
                    {"key": key, "at": at, "value": value, "started": started, "ended": ended},
                )
        migrate.upgrade(engine, "0012")
        with engine.connect() as connection:
            present = connection.execute(
                text("SELECT group_key, value, slots FROM image_present ORDER BY group_key")
            ).all()
        # PostgreSQL reads jsonb back as the value, SQLite's JSON text is parsed here.
        postgres = engine.dialect.name == "postgresql"
        values = [(k[0], v if postgres else json.loads(v), n) for k, v, n in present]
        assert values == [("a", "img:1", 2), ("c", {"x": [1, 2]}, 2)]
        # 0015: the same rows, keyed by a group id; each group's columns once.
        migrate.upgrade(engine)
        with engine.connect() as connection:
            groups = connection.execute(
                text(
                    "SELECT key, cluster_id, kind, namespace, shape, value FROM image_groups "
                    "ORDER BY key"
                )
            ).all()
            changes = connection.execute(
                text(
                    "SELECT g.key, c.at, c.started, c.ended FROM image_changes c "
                    "JOIN image_groups g ON g.id = c.group_id ORDER BY g.key, c.at"
                )
            ).all()
            present = connection.execute(
                text(
                    "SELECT g.key, g.value, p.slots FROM image_present p "
                    "JOIN image_groups g ON g.id = p.group_id ORDER BY g.key"
                )
            ).all()
        decoded = [v if postgres else json.loads(v) for *_, v in groups]
        assert [(k[0], *rest) for k, *rest, _v in groups] == [
            ("a", "c1", "Pod", "ns", '."image"'),
            ("b", "c1", "Pod", "ns", '."image"'),
            ("c", "c1", "Pod", "ns", '."image"'),
        ]
        assert decoded == ["img:1", None, {"x": [1, 2]}]
        assert [(k[0], str(at)[:10], s, e) for k, at, s, e in changes] == [
            ("a", "2026-12-01", 3, 0),
            ("a", "2026-12-02", 0, 1),
            ("b", "2026-12-01", 1, 0),
            ("b", "2026-12-03", 0, 1),
            ("c", "2026-12-01", 2, 0),
        ]
        values = [(k[0], v if postgres else json.loads(v), n) for k, v, n in present]
        assert values == [("a", "img:1", 2), ("c", {"x": [1, 2]}, 2)]
    finally:
        engine.dispose()


def test_0012_fills_image_present_from_image_changes_on_sqlite(tmp_path: Path) -> None:
    _fill_from_0011(f"sqlite:///{tmp_path / 'at-0011.sqlite3'}")


def test_0012_fills_image_present_from_image_changes_on_postgresql(
    postgres_server_url: str,
) -> None:
    database = ThrowawayDatabase.create(postgres_server_url)
    try:
        _fill_from_0011(database.url)
    finally:
        database.drop()


def test_0019_cached_results_are_text_kept_warm(postgres_server_url: str) -> None:
    """0019: `rule_result_cache.results` is text (the server stores it unparsed), lz4, without
    the unread index on created_at; a row cached before the upgrade reads back the same, and
    the downgrade puts json and the index back."""
    from sqlalchemy import text  # noqa: PLC0415

    from store.db import make_session_factory, unit_of_work  # noqa: PLC0415
    from store.rule_cache import cached_results  # noqa: PLC0415

    database = ThrowawayDatabase.create(postgres_server_url)
    engine = make_engine(database.url)
    column = "attrelid = 'rule_result_cache'::regclass AND attname = 'results'"
    shape = (
        f"SELECT format_type(atttypid, atttypmod), attcompression FROM pg_attribute WHERE {column}"
    )
    indexes = "SELECT indexname FROM pg_indexes WHERE tablename = 'rule_result_cache'"
    document = [{"rule_id": "KM-1", "message": 'a "quoted" \\ tab\there', "n": 1.5}]
    try:
        migrate.upgrade(engine, "0018")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO rule_result_cache (content_hash, catalogue_version, results, "
                    "created_at) VALUES (:h, 'cv', :r, now())"
                ),
                {"h": "a" * 64, "r": json.dumps(document)},
            )
        migrate.upgrade(engine, "0019")
        with engine.connect() as connection:
            assert tuple(connection.execute(text(shape)).one()) == ("text", "l")
            assert set(connection.scalars(text(indexes))) == {"pk_rule_result_cache"}
        with unit_of_work(make_session_factory(engine)) as session:
            assert cached_results(session, ["a" * 64], catalogue_version="cv") == {
                "a" * 64: document
            }
        migrate.downgrade(engine, "0018")
        with engine.connect() as connection:
            assert connection.execute(text(shape)).one()[0] == "json"
            assert "ix_rule_result_cache_created_at" in set(connection.scalars(text(indexes)))
    finally:
        engine.dispose()
        database.drop()


def test_0020_indexes_the_inventory_rows_only(postgres_server_url: str) -> None:
    """0020: a partial index over the clusters' inventory rows (catalogue versions under
    `inventory/`), none other; the downgrade drops it."""
    from sqlalchemy import text  # noqa: PLC0415

    database = ThrowawayDatabase.create(postgres_server_url)
    engine = make_engine(database.url)
    indexes = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'rule_result_cache'"
    try:
        migrate.upgrade(engine, "0020")
        with engine.connect() as connection:
            found = dict(connection.execute(text(indexes)).all())
        assert set(found) == {"pk_rule_result_cache", "ix_rule_result_cache_inventory"}
        assert found["ix_rule_result_cache_inventory"].endswith(
            "(catalogue_version) WHERE ((catalogue_version)::text ~~ 'inventory/%'::text)"
        )
        migrate.downgrade(engine, "0019")
        with engine.connect() as connection:
            assert set(dict(connection.execute(text(indexes)).all())) == {"pk_rule_result_cache"}
    finally:
        engine.dispose()
        database.drop()
