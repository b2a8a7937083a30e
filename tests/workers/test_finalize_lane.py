"""The finalize lane of a batch of scans, and how a fleet scan is split into batches."""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from settings import Settings
from store import migrate
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import Finding, ScanRun
from store.snapshots import apply_pending, stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import full_envelope
from tests.support.services import ThrowawayDatabase
from tests.workers.test_scan_lifecycle import offline
from workers import jobs
from workers.context import WorkerContext
from workers.engine import EngineHandle
from workers.finalize_lane import FinalizeLane
from workers.inprocess import InProcessDispatcher
from workers.tasks import batches


@pytest.mark.parametrize("background", [True, False])
def test_each_finalize_runs_after_the_previous_one_and_its_follow_up_in_the_callers_thread(
    background: bool,
) -> None:
    caller = threading.get_ident()
    ran: list[tuple[str, int]] = []
    followed: list[tuple[str, bool]] = []

    def work(name: str) -> str:
        time.sleep(0.02)
        ran.append((name, threading.get_ident()))
        return name

    def then(name: str) -> None:
        followed.append((name, threading.get_ident() == caller))

    with FinalizeLane[str](background=background) as lane:
        for name in ("a", "b", "c"):
            lane.submit(functools.partial(work, name), then=then)
            # The previous one is committed (and followed up) before the next is handed over.
            assert [n for n, _ in followed] == [n for n, _ in ran][: len(followed)]
    assert [n for n, _ in ran] == ["a", "b", "c"]
    assert followed == [("a", True), ("b", True), ("c", True)]
    assert all((thread != caller) == background for _, thread in ran)


def test_a_failed_finalize_fails_the_next_hand_over() -> None:
    def fail() -> str:
        raise RuntimeError("constraint violated")

    lane = FinalizeLane[str](background=True)
    with pytest.raises(RuntimeError, match="constraint violated"), lane:
        lane.submit(fail, then=lambda _: None)
        lane.submit(lambda: "never", then=lambda _: None)


def test_the_lane_is_left_only_once_its_finalize_ended_even_when_the_caller_fails() -> None:
    finished = threading.Event()
    followed: list[str] = []

    def slow() -> str:
        time.sleep(0.2)
        finished.set()
        return "committed"

    with pytest.raises(KeyError), FinalizeLane[str](background=True) as lane:
        lane.submit(slow, then=followed.append)
        raise KeyError("the next cluster's evaluation failed")
    # No transaction is left running behind a task that returns (and is acknowledged), and
    # what follows a committed finalize (its report's delivery) is still sent.
    assert finished.is_set()
    assert followed == ["committed"]


@pytest.mark.parametrize(
    ("count", "size", "sizes"),
    [
        (0, 8, []),
        (1, 8, [1]),
        (6, 8, [1] * 6),  # a rescan of a few changed clusters: one task each
        (20, 8, [2, 2, 2] + [1] * 14),
        (80, 8, [8, 8, 8, 7, 6, 5, 4, 4, 3, 3, 3, 2, 2, 2] + [1] * 15),
        (80, 1, [1] * 80),
    ],
)
def test_a_fleet_scan_is_split_into_batches_that_shrink_toward_its_end(
    count: int, size: int, sizes: list[int]
) -> None:
    """Large batches first, then smaller ones, so the worker processes that take the last
    batches finish at about the same time; at most `size` clusters in any batch."""
    clusters = [f"c{n:02d}" for n in range(count)]
    split = batches(clusters, size=size)
    assert [len(batch) for batch in split] == sizes
    assert [c for batch in split for c in batch] == clusters  # in order


@pytest.mark.postgres
def test_a_batch_with_its_finalizes_in_the_lane_gives_the_offline_findings(
    postgres_server_url: str,
    rules_engine: EngineHandle,
    test_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The oracle on the lane's own path: pooled connections of a database that really
    commits (the SAVEPOINT sessions of the other in-process tests share one connection, so
    their batches finalize in the calling thread), the benchmark's mix in three clusters of a
    fleet scan's batch, every scan's bodies read ahead (`BodyPrefetch`): the first's while
    the batch's other scans are planned (`jobs.scan_batch`)."""
    from bench.corpus import generate  # noqa: PLC0415 - the benchmark's corpus
    from store.manifests import live_bodies_by_id  # noqa: PLC0415
    from workers import body_prefetch  # noqa: PLC0415
    from workers.services import scanning  # noqa: PLC0415

    read_ahead: list[str] = []
    events: list[tuple[str, str]] = []  # planned, or its bodies asked for ahead, in order

    def recorded(session: object, cluster_id: str) -> object:
        read_ahead.append(cluster_id)
        return live_bodies_by_id(session, cluster_id)  # type: ignore[arg-type]

    ahead, plan_scan = body_prefetch.BodyPrefetch.ahead, scanning.plan_scan

    def recorded_ahead(prefetch: body_prefetch.BodyPrefetch, cluster_id: str) -> None:
        events.append(("ahead", cluster_id))
        ahead(prefetch, cluster_id)

    def recorded_plan(session: Session, cluster_id: str, **kwargs: Any) -> scanning.ScanPlan:
        planned = plan_scan(session, cluster_id, **kwargs)
        events.append(("planned", cluster_id))
        return planned

    monkeypatch.setattr(body_prefetch, "live_bodies_by_id", recorded)
    monkeypatch.setattr(body_prefetch.BodyPrefetch, "ahead", recorded_ahead)
    monkeypatch.setattr(scanning, "plan_scan", recorded_plan)

    database = ThrowawayDatabase.create(postgres_server_url)
    engine = make_engine(database.url)
    try:
        migrate.upgrade(engine)
        ctx = WorkerContext(  # sessions from a pool, as a worker's are
            settings=test_settings.replace(database_url=database.url, scan_on_push=False),
            engine_factory=lambda: rules_engine,
            sessions_override=make_session_factory(engine),
        )
        run = InProcessDispatcher(ctx)
        states = {
            f"lane-{n}": [o for o in generate(300, seed=2000 + n) if o.get("kind") != "Secret"]
            for n in range(3)
        }
        with unit_of_work(ctx.sessions) as session:
            for cluster_id, objects in states.items():
                make_cluster(session, cluster_id)
                stage_snapshot(session, cluster_id, envelope=full_envelope(objects))
        for cluster_id in states:
            with unit_of_work(ctx.sessions) as session:
                apply_pending(session, cluster_id)
        assert jobs._lane_in_background(ctx)  # the path under test

        outcome = run.run(
            "k8smon.scan_clusters", cluster_ids=list(states), trigger="test", in_fleet_scan=True
        )
        assert [scan["cluster_id"] for scan in outcome["scans"]] == list(states)
        assert read_ahead == ["lane-0", "lane-1", "lane-2"]
        assert events == [
            ("planned", "lane-0"),
            ("ahead", "lane-0"),  # read while the others are planned
            ("planned", "lane-1"),
            ("planned", "lane-2"),
            ("ahead", "lane-1"),  # each next one while the one before is evaluated
            ("ahead", "lane-2"),
        ]
        # The fleet rules (image drift across the fleet's clusters) are the fleet
        # evaluation's, which an offline scan of one cluster cannot match: left out.
        fleet = rules_engine.fleet_rule_ids
        with unit_of_work(ctx.sessions) as session:
            for cluster_id, objects in states.items():
                found = [
                    (
                        f.rule_id,
                        f"{f.api_version}|{f.kind}|{f.namespace or ''}|{f.name}",
                        f.container,
                        f.path or "",
                    )
                    for f in session.scalars(
                        select(Finding).where(Finding.cluster_id == cluster_id)
                    )
                ]
                assert len(found) == len(set(found))
                assert set(found) == {f for f in offline(objects, cluster_id) if f[0] not in fleet}
                run_ = session.scalar(select(ScanRun).where(ScanRun.cluster_id == cluster_id))
                assert run_ is not None and run_.state == "done" and run_.errors == []
    finally:
        engine.dispose()
        database.drop()


def test_a_batch_is_planned_with_the_cyclic_collector_paused(
    test_settings: Settings, rules_engine: EngineHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`plan_scans` (each scan's ORM rows and uncached bodies) runs with the collector
    paused, as the steps after it do, and leaves it as it was."""
    import gc  # noqa: PLC0415

    from workers.services import scanning  # noqa: PLC0415

    seen: list[bool] = []

    def plan_scan(_session: object, cluster_id: str, **_kwargs: object) -> str:
        seen.append(gc.isenabled())
        return cluster_id

    class Session:
        def commit(self) -> None: ...
        def rollback(self) -> None: ...
        def close(self) -> None: ...

    monkeypatch.setattr(scanning, "plan_scan", plan_scan)
    ctx = WorkerContext(
        settings=test_settings,
        engine_factory=lambda: rules_engine,
        sessions_override=Session,  # type: ignore[arg-type] - a unit of work's whole use
    )
    assert gc.isenabled()
    assert jobs.plan_scans(ctx, ["a", "b"], trigger="test") == ["a", "b"]  # type: ignore[comparison-overlap]
    assert seen == [False, False]
    assert gc.isenabled()
