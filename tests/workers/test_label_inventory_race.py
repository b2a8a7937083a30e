"""A label-only rescan's carried inventory row against a fleet evaluation writing the same
cluster's row at the same moment (PostgreSQL, two transactions that really commit).

The carry moves the cluster's row to its new state (an UPDATE of the state before's row); the
evaluation, finding no row for the new state yet, works the cluster out and replaces the
cluster's row (a DELETE of whatever row it has, then an INSERT). Whichever writes first, the
other waits for its row lock, and the cluster ends with one row: the uncached computation's
for its current state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from settings import Settings
from store import images, migrate
from store.db import make_engine, make_session_factory, unit_of_work
from store.images import image_uses
from store.models import Cluster, RuleResultCache
from store.rule_cache import INVENTORY_CACHE, cluster_inventory_key
from store.snapshots import stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import full_envelope
from tests.support.services import ThrowawayDatabase
from tests.support.workloads import workloads
from tests.workers.test_label_inventory import CHANGED, _relabelled
from workers import jobs
from workers.context import WorkerContext
from workers.engine import EngineHandle
from workers.inprocess import InProcessDispatcher
from workers.services import scanning

pytestmark = pytest.mark.postgres

Objects = list[dict[str, Any]]
WAIT_S = 30.0
BLOCKED_S = 1.0  # how long the second writer is watched waiting for the first's row lock


@pytest.fixture
def committed(
    postgres_server_url: str, rules_engine: EngineHandle, test_settings: Settings
) -> Iterator[tuple[InProcessDispatcher, Objects]]:
    """A cluster scanned twice (its inventory row cached) on a database whose sessions come
    from a pool and really commit, as a worker's do."""
    database = ThrowawayDatabase.create(postgres_server_url)
    engine = make_engine(database.url)
    try:
        migrate.upgrade(engine)
        ctx = WorkerContext(
            settings=test_settings.replace(database_url=database.url, scan_on_push=False),
            engine_factory=lambda: rules_engine,
            sessions_override=make_session_factory(engine),
        )
        run = InProcessDispatcher(ctx)
        objects = workloads()
        for metadata in (o["metadata"] for o in objects):
            metadata.setdefault("labels", {"team": "ops"})
        with unit_of_work(ctx.sessions) as session:
            make_cluster(session, "c")
        _push(run, objects)
        run.run("k8smon.rescan", "c")
        run.run("k8smon.rescan", "c")
        yield run, objects
    finally:
        engine.dispose()
        database.drop()


def _push(run: InProcessDispatcher, objects: Objects) -> None:
    with unit_of_work(run.ctx.sessions) as session:
        snapshot_id = stage_snapshot(session, "c", envelope=full_envelope(objects)).snapshot_id
    run.run("k8smon.process_snapshot", snapshot_id)


def _rows(run: InProcessDispatcher) -> list[tuple[str, Any]]:
    with unit_of_work(run.ctx.sessions) as session:
        return [
            (row.content_hash, row.results)
            for row in session.execute(
                select(RuleResultCache.content_hash, RuleResultCache.results).where(
                    RuleResultCache.catalogue_version == INVENTORY_CACHE + "c"
                )
            )
        ]


def _current_key(run: InProcessDispatcher) -> str:
    with unit_of_work(run.ctx.sessions) as session:
        cluster = session.get(Cluster, "c")
        assert cluster is not None and cluster.current_digest and cluster.current_snapshot_id
        return cluster_inventory_key(
            "c", cluster.current_digest, snapshot_id=cluster.current_snapshot_id
        )


def _recomputed(run: InProcessDispatcher) -> list[tuple[str, Any]]:
    """The row the uncached computation stores for the current state."""
    with unit_of_work(run.ctx.sessions) as session:
        session.execute(
            delete(RuleResultCache).where(
                RuleResultCache.catalogue_version == INVENTORY_CACHE + "c"
            )
        )
        image_uses(session, timeout_seconds=30, cluster_ids=["c"], cached=True)
    return _rows(run)


class _Paused:
    """Wraps a function: once it has returned (inside its caller's open transaction), the
    call waits until `resume` is set; `done` is set when it has returned."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.done = threading.Event()
        self.resume = threading.Event()
        self.results: list[Any] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.function(*args, **kwargs)
        self.results.append(result)
        self.done.set()
        assert self.resume.wait(WAIT_S)
        return result


class _Thread(threading.Thread):
    """A thread whose failure the test sees (`outcome` raises it)."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._call = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._call()
        except BaseException as problem:  # handed to the test's thread
            self.error = problem

    def outcome(self) -> None:
        self.join(WAIT_S)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error


def test_a_fleet_evaluation_waits_for_the_carry_then_replaces_the_carried_row(
    committed: tuple[InProcessDispatcher, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, objects = committed
    carry = _Paused(scanning.carry_cluster_inventory)
    monkeypatch.setattr(scanning, "carry_cluster_inventory", carry)
    _push(run, _relabelled(objects, *CHANGED))
    rescan = _Thread(lambda: run.run("k8smon.rescan", "c"))
    rescan.start()
    assert carry.done.wait(WAIT_S)  # the row is carried, its transaction still open
    assert carry.results == [True]
    evaluation = _Thread(lambda: jobs.evaluate_fleet(run.ctx))
    evaluation.start()
    evaluation.join(BLOCKED_S)
    assert evaluation.is_alive()  # waiting for the carried row's lock
    carry.resume.set()
    rescan.outcome()
    evaluation.outcome()
    rows = _rows(run)
    assert [key for key, _results in rows] == [_current_key(run)]
    assert rows == _recomputed(run)


def test_a_carry_waits_for_a_fleet_evaluation_that_replaced_the_row_first(
    committed: tuple[InProcessDispatcher, Objects], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, objects = committed
    _push(run, _relabelled(objects, *CHANGED))
    store = _Paused(images._store_uses)
    monkeypatch.setattr(images, "_store_uses", store)
    evaluation = _Thread(lambda: jobs.evaluate_fleet(run.ctx))
    evaluation.start()
    assert store.done.wait(WAIT_S)  # the cluster's row replaced, not yet committed
    monkeypatch.setattr(images, "_store_uses", store.function)
    carried: list[bool] = []
    carry = scanning.carry_cluster_inventory

    def carrying(*args: Any, **kwargs: Any) -> bool:
        carried.append(carry(*args, **kwargs))
        return carried[-1]

    monkeypatch.setattr(scanning, "carry_cluster_inventory", carrying)
    rescan = _Thread(lambda: run.run("k8smon.rescan", "c"))
    rescan.start()
    rescan.join(BLOCKED_S)
    assert rescan.is_alive()  # its carry waits for the evaluation's row lock
    store.resume.set()
    evaluation.outcome()
    rescan.outcome()
    # It carried nothing over: the row it read was replaced (its UPDATE found no row, and
    # says so: `carry_cluster_inventory` returns whether a row moved).
    assert carried == [False]
    rows = _rows(run)
    assert [key for key, _results in rows] == [_current_key(run)]
    assert rows == _recomputed(run)
