"""Fixtures for the pipeline: an in-process dispatcher on the test's SAVEPOINT session."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from settings import Settings
from store import migrate
from store.db import make_engine, make_session_factory
from store.models import Cluster, Finding
from store.snapshots import stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import full_envelope
from workers.context import WorkerContext
from workers.engine import EngineHandle, load_engine
from workers.inprocess import InProcessDispatcher


@dataclass
class Pipeline:
    session: Session
    ctx: WorkerContext
    run: InProcessDispatcher

    def push(self, cluster_id: str, objects: Sequence[dict[str, Any]], **cluster: Any) -> int:
        """Register the cluster if needed, stage a full snapshot, return its id (unprocessed)."""
        if self.session.get(Cluster, cluster_id) is None:
            make_cluster(self.session, cluster_id, **cluster)
        staged = stage_snapshot(self.session, cluster_id, envelope=full_envelope(objects))
        self.session.commit()
        return staged.snapshot_id

    def push_and_process(
        self, cluster_id: str, objects: Sequence[dict[str, Any]], **cluster: Any
    ) -> int:
        snapshot_id = self.push(cluster_id, objects, **cluster)
        self.run.run("k8smon.process_snapshot", snapshot_id)
        return snapshot_id

    def active_findings(self, cluster_id: str, *, exact: bool = True) -> set[tuple[Any, ...]]:
        """Active findings but the fleet rules' (drift compares with the other clusters); not
        `exact`: whether exempted, not whether new or open (a first scan finds everything new)."""
        rows = self.session.scalars(
            select(Finding).where(
                Finding.cluster_id == cluster_id,
                Finding.status.in_(("new", "open", "exempted")),
                Finding.rule_id.not_in(sorted(self.ctx.rules.fleet_rule_ids)),
            )
        )
        return {
            (
                f.fingerprint,
                f.severity,
                f.message,
                f.status if exact else f.status == "exempted",
                f.exemption_id,
                f.content_hash,
            )
            for f in rows
        }


def savepoint_sessions(session: Session) -> sessionmaker[Session]:
    """Sessions on the test's connection whose commits are SAVEPOINTs (rolled back after)."""
    return sessionmaker(
        bind=session.bind, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture(scope="session")
def rules_engine() -> EngineHandle:
    return load_engine(None)


@pytest.fixture
def make_pipeline(
    db_session: Session, test_settings: Settings, rules_engine: EngineHandle
) -> Callable[..., Pipeline]:
    def build(*, config_path: Path | None = None, **settings: Any) -> Pipeline:
        # These tests trigger each scan themselves (rescan, fleet scan); the scan a push starts
        # on its own is tested with scan_on_push=True (test_scan_on_push.py).
        settings.setdefault("scan_on_push", False)
        chosen = test_settings.replace(rules_config_path=config_path, **settings)
        engine = load_engine(config_path) if config_path else rules_engine
        ctx = WorkerContext(
            settings=chosen,
            engine_factory=lambda: engine,
            sessions_override=savepoint_sessions(db_session),
        )
        return Pipeline(session=db_session, ctx=ctx, run=InProcessDispatcher(ctx))

    return build


@pytest.fixture
def pipeline(make_pipeline: Callable[..., Pipeline]) -> Pipeline:
    return make_pipeline()


@pytest.fixture
def make_sqlite_pipeline(
    rules_engine: EngineHandle, tmp_path: Path
) -> Iterator[Callable[..., Pipeline]]:
    """The embedded default's pipeline on a SQLite file of its own (pysqlite's SAVEPOINT
    handling cannot roll back commits made through nested sessions, so these tests must not
    share the suite's SQLite engine); settings as keyword arguments."""
    engine = make_engine(f"sqlite:///{tmp_path / 'embedded.sqlite3'}")
    migrate.upgrade(engine)
    # The test's own session reads between pipeline runs and keeps that transaction open:
    # it begins deferred, so it never holds the write lock the pipeline's sessions take.
    observer = make_engine(str(engine.url), lock_on_begin=False)
    session = make_session_factory(observer)()

    def build(**settings: Any) -> Pipeline:
        settings.setdefault("scan_on_push", False)  # each scan is triggered by the test
        chosen = Settings(
            database_url=str(engine.url), secret_key="s" * 40, instance_path=tmp_path, **settings
        )
        ctx = WorkerContext(
            settings=chosen,
            engine_factory=lambda: rules_engine,
            sessions_override=make_session_factory(engine),
        )
        return Pipeline(session=session, ctx=ctx, run=InProcessDispatcher(ctx))

    try:
        yield build
    finally:
        session.close()
        observer.dispose()
        engine.dispose()


@pytest.fixture
def sqlite_pipeline(make_sqlite_pipeline: Callable[..., Pipeline]) -> Pipeline:
    """The embedded default's pipeline with the default settings."""
    return make_sqlite_pipeline()


@pytest.fixture(params=["postgresql", "sqlite"])
def make_any_pipeline(request: pytest.FixtureRequest) -> Callable[..., Pipeline]:
    """`make_pipeline` (PostgreSQL) or `make_sqlite_pipeline`: the same test on both engines
    (keyword settings only; a rules configuration file needs PostgreSQL's `make_pipeline`)."""
    name = "make_pipeline" if request.param == "postgresql" else "make_sqlite_pipeline"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def any_pipeline(make_any_pipeline: Callable[..., Pipeline]) -> Pipeline:
    """The pipeline with the default settings, on PostgreSQL and on SQLite."""
    return make_any_pipeline()
