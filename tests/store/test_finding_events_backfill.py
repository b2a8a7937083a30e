"""Migration 0006 backfills finding_events from the findings stored before it, with the
version of each finding's object current at its first sighting and at its resolution."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import select
from sqlalchemy.orm import Session

from store import migrate
from store.db import make_engine
from store.models import Cluster, Finding, KubeObject, ManifestBody, ManifestVersion
from store.types import utcnow
from tests.support.services import ThrowawayDatabase

REVISION = "0006"


def _before() -> str:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    previous = script.get_revision(REVISION).down_revision
    assert isinstance(previous, str)
    return previous


def _seed_and_upgrade(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine, _before())
        t0 = utcnow() - timedelta(days=3)
        with Session(engine) as session:
            session.add(Cluster(id="old", display_name="old"))
            for n in (1, 2, 3):
                session.add(ManifestBody(content_hash=f"h{n}", body={"v": n}, size_bytes=8))
            session.flush()
            web = KubeObject(
                cluster_id="old",
                ref_key="apps/v1|Deployment|shop|web",
                api_version="apps/v1",
                kind="Deployment",
                namespace="shop",
                name="web",
                current_hash="h3",
                first_seen=t0,
            )
            gone = KubeObject(
                cluster_id="old",
                ref_key="v1|Node||n1",
                api_version="v1",
                kind="Node",
                namespace="",
                name="n1",
                current_hash="h1",
                first_seen=t0,
                deleted_at=t0 + timedelta(hours=5),
            )
            session.add_all([web, gone])
            session.flush()
            versions = [
                ManifestVersion(
                    object_id=web.id, content_hash=f"h{n}", first_seen=t0 + timedelta(hours=n)
                )
                for n in (1, 2, 3)
            ]
            session.add_all(
                [*versions, ManifestVersion(object_id=gone.id, content_hash="h1", first_seen=t0)]
            )
            session.flush()
            common = {"cluster_id": "old", "severity": "high", "message": "m", "rule_id": "KM-1"}
            session.add_all(
                [
                    Finding(
                        fingerprint="a",
                        api_version="apps/v1",
                        kind="Deployment",
                        namespace="shop",
                        name="web",
                        status="resolved",
                        first_seen=t0 + timedelta(hours=2, minutes=1),
                        resolved_at=t0 + timedelta(hours=3, minutes=1),
                        **common,
                    ),
                    Finding(
                        fingerprint="b",
                        api_version="v1",
                        kind="Node",
                        namespace=None,
                        name="n1",
                        status="resolved",
                        first_seen=t0 + timedelta(minutes=1),
                        resolved_at=t0 + timedelta(hours=6),
                        **common,
                    ),
                ]
            )
            session.commit()
            ids = [v.id for v in versions]
            node_version = session.scalar(
                select(ManifestVersion.id).where(ManifestVersion.object_id == gone.id)
            )
        migrate.upgrade(engine)
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT f.fingerprint, e.event, e.version_id FROM finding_events e "
                "JOIN findings f ON f.id = e.finding_id ORDER BY f.fingerprint, e.at"
            ).all()
        assert rows == [
            ("a", "opened", ids[1]),  # first seen while version 2 was current
            ("a", "resolved", ids[2]),  # resolved while version 3 was current
            ("b", "opened", node_version),
            ("b", "resolved", None),  # the node was gone by then
        ]
    finally:
        engine.dispose()


def test_backfill_on_sqlite(tmp_path: Path) -> None:
    _seed_and_upgrade(f"sqlite:///{tmp_path / 'old.sqlite3'}")


def test_backfill_on_postgresql(postgres_server_url: str) -> None:
    database = ThrowawayDatabase.create(postgres_server_url)
    try:
        _seed_and_upgrade(database.url)
    finally:
        database.drop()
