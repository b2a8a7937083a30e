"""The embedded default: the same pipeline on SQLite (lifecycle, incremental finalize, purge)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from settings import Settings
from store import migrate
from store.db import make_engine, make_session_factory
from store.models import Finding
from tests.workers.conftest import Pipeline
from tests.workers.test_scan_lifecycle import offline
from tests.workers.workloads import cluster_state, fixed, privileged
from workers.context import WorkerContext
from workers.engine import EngineHandle
from workers.inprocess import InProcessDispatcher


@pytest.fixture
def sqlite_pipeline(rules_engine: EngineHandle, tmp_path: Path) -> Iterator[Pipeline]:
    """A database file of its own: pysqlite's SAVEPOINT handling cannot roll back commits
    made through nested sessions, so this test must not share the suite's SQLite engine."""
    engine = make_engine(f"sqlite:///{tmp_path / 'embedded.sqlite3'}")
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    settings = Settings(
        database_url=str(engine.url),
        secret_key="s" * 40,
        instance_path=tmp_path,
        scan_on_push=False,  # each scan here is triggered by the test itself
    )
    ctx = WorkerContext(
        settings=settings, engine_factory=lambda: rules_engine, sessions_override=sessions
    )
    # The test's own session reads between pipeline runs and keeps that transaction open:
    # it begins deferred, so it never holds the write lock the pipeline's sessions take.
    observer = make_engine(str(engine.url), lock_on_begin=False)
    session = make_session_factory(observer)()
    try:
        yield Pipeline(session=session, ctx=ctx, run=InProcessDispatcher(ctx))
    finally:
        session.close()
        observer.dispose()
        engine.dispose()


def active(pipeline: Pipeline, cluster_id: str) -> set[tuple]:
    return {
        (
            f.rule_id,
            f"{f.api_version}|{f.kind}|{f.namespace or ''}|{f.name}",
            f.container,
            f.path or "",
        )
        for f in pipeline.session.scalars(
            select(Finding).where(
                Finding.cluster_id == cluster_id, Finding.status.in_(("new", "open", "exempted"))
            )
        )
    }


def test_lifecycle_and_incremental_scans_on_sqlite(sqlite_pipeline: Pipeline) -> None:
    objects = cluster_state("lite", 9)
    sqlite_pipeline.push_and_process("lite", objects)
    first = sqlite_pipeline.run.run("k8smon.rescan", "lite")
    assert active(sqlite_pipeline, "lite") == offline(objects, "lite")
    assert first["counts"]["new"] == len(offline(objects, "lite"))

    again = sqlite_pipeline.run.run("k8smon.rescan", "lite")
    assert again["counts"]["unchanged"] == 1

    changed = [fixed(objects[0]), *objects[1:], privileged("lite-new", namespace="x")]
    sqlite_pipeline.push_and_process("lite", changed)
    third = sqlite_pipeline.run.run("k8smon.rescan", "lite")
    assert third["counts"]["incremental"] == 1 and third["counts"]["resolved"] >= 1
    assert active(sqlite_pipeline, "lite") == offline(changed, "lite")


def test_purge_runs_on_sqlite(sqlite_pipeline: Pipeline) -> None:
    sqlite_pipeline.push_and_process("lite-purge", cluster_state("lp", 3))
    sqlite_pipeline.run.run("k8smon.rescan", "lite-purge")
    outcome = sqlite_pipeline.run.run("k8smon.purge_expired")
    assert outcome["complete"] is True
    deleted = outcome["deleted"]
    assert deleted["manifest_versions"] == 0 and deleted["rule_result_cache"] == 0
    assert active(sqlite_pipeline, "lite-purge")
