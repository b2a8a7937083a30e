"""The pipeline on real Celery workers (subprocesses), real Redis and real PostgreSQL."""

from __future__ import annotations

import ast
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from ingest.dispatch import CeleryDispatcher, enqueue_after_commit
from store import migrate
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import Cluster, Finding, RuleResultCache, ScanRun, Snapshot
from store.rule_cache import INVENTORY_CACHE, cluster_inventory_key
from store.snapshots import stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import deployment, full_envelope
from tests.support.services import ThrowawayDatabase
from tests.workers.celery_rig import CeleryRig, free_port, running, wait_for
from tests.workers.test_scan_lifecycle import offline
from tests.workers.workloads import cluster_state, fixed
from workers.engine import load_engine
from workers.services.fleet import evaluate_fleet

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def worker_database(postgres_server_url: str) -> Iterator[tuple[ThrowawayDatabase, Engine]]:
    """A database of their own: workers commit for real, which must not leak into the
    SAVEPOINT-isolated tests sharing the session's database."""
    database = ThrowawayDatabase.create(postgres_server_url)
    engine = make_engine(database.url)
    migrate.upgrade(engine)
    yield database, engine
    engine.dispose()
    database.drop()


@pytest.fixture
def pg_engine(worker_database: tuple[ThrowawayDatabase, Engine]) -> Engine:
    return worker_database[1]


@pytest.fixture
def sessions(pg_engine: Engine) -> sessionmaker[Session]:
    """Sessions that really commit (workers in other processes must see the data)."""
    return make_session_factory(pg_engine)


@pytest.fixture
def rig(
    worker_database: tuple[ThrowawayDatabase, Engine], redis_url: str, tmp_path: Path
) -> Iterator[CeleryRig]:
    with running(
        CeleryRig.create(
            database_url=worker_database[0].url,
            redis_url=redis_url,
            tmp=tmp_path,
            K8SMON_SHARD_SIZE="5",
            K8SMON_VISIBILITY_TIMEOUT="6",
            # These tests start every scan themselves; test_a_push_is_scanned_on_a_worker
            # covers the scan a push starts on its own.
            K8SMON_SCAN_ON_PUSH="false",
        )
    ) as rig:
        yield rig


@pytest.fixture
def push_rig(
    worker_database: tuple[ThrowawayDatabase, Engine], redis_url: str, tmp_path: Path
) -> Iterator[CeleryRig]:
    """The deployment default: a push that changes a cluster's state starts its scan."""
    with running(
        CeleryRig.create(database_url=worker_database[0].url, redis_url=redis_url, tmp=tmp_path)
    ) as rig:
        yield rig


def _arguments(task: dict) -> str:
    """A Flower task's arguments as Flower shows them (positional and named)."""
    return f"{task.get('args')} {task.get('kwargs')}"


def register(sessions: sessionmaker[Session], cluster_id: str, objects: list[dict]) -> int:
    with unit_of_work(sessions) as session:
        make_cluster(session, cluster_id)
        return stage_snapshot(session, cluster_id, envelope=full_envelope(objects)).snapshot_id


def register_push(sessions: sessionmaker[Session], cluster_id: str, objects: list[dict]) -> int:
    """Stage a new full snapshot of an already registered cluster."""
    with unit_of_work(sessions) as session:
        return stage_snapshot(session, cluster_id, envelope=full_envelope(objects)).snapshot_id


def committed_findings(
    sessions: sessionmaker[Session], cluster_id: str, *, active: bool = False
) -> list[tuple]:
    query = select(Finding).where(Finding.cluster_id == cluster_id)
    if active:
        query = query.where(Finding.status.in_(("new", "open", "exempted")))
    with unit_of_work(sessions) as session:
        return [
            (
                f.rule_id,
                f"{f.api_version}|{f.kind}|{f.namespace or ''}|{f.name}",
                f.container,
                f.path or "",
            )
            for f in session.scalars(query)
        ]


def finished_runs(sessions: sessionmaker[Session], cluster_ids: list[str]) -> list[ScanRun]:
    with unit_of_work(sessions) as session:
        return list(
            session.scalars(
                select(ScanRun).where(ScanRun.cluster_id.in_(cluster_ids), ScanRun.state == "done")
            )
        )


def process_all(rig: CeleryRig, sessions: sessionmaker[Session], snapshot_ids: list[int]) -> None:
    client = rig.client()
    for sid in snapshot_ids:
        client.send_task("k8smon.process_snapshot", args=[sid])

    def done() -> bool:
        with unit_of_work(sessions) as session:
            states = session.scalars(select(Snapshot.state).where(Snapshot.id.in_(snapshot_ids)))
            return all(s == "processed" for s in states)

    wait_for(done, timeout=60, what="snapshots processed")


def lock_waiters(pg_engine: Engine, table: str) -> int:
    """Queries of this database waiting on a lock whose text names `table`."""
    with pg_engine.connect() as probe:  # its own transaction: fresh statistics
        count = probe.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND query ILIKE :pattern"
            ),
            {"pattern": f"%{table}%"},
        ).scalar()
    return count or 0


def test_fleet_scan_of_three_clusters_on_a_worker(
    rig: CeleryRig, sessions: sessionmaker[Session]
) -> None:
    token = uuid.uuid4().hex[:6]
    states = {f"w3-{token}-{n}": cluster_state(f"w{n}", 11 + n) for n in range(3)}
    snapshot_ids = [register(sessions, cid, objs) for cid, objs in states.items()]
    rig.start_worker(concurrency=2)
    process_all(rig, sessions, snapshot_ids)

    rig.client().send_task("k8smon.scan_fleet", args=["test"])
    wait_for(
        lambda: len(finished_runs(sessions, list(states))) == 3,
        timeout=90,
        what="three scans finished",
    )

    for cluster_id, objects in states.items():
        found = committed_findings(sessions, cluster_id)
        assert len(found) == len(set(found))
        assert set(found) == offline(objects, cluster_id)
    for run in finished_runs(sessions, list(states)):
        assert run.shard_count >= 3 and run.errors == []
        assert run.counts["unevaluated"] == 0

    # One object changes in one cluster: the next fleet scan records the two unchanged
    # clusters without scanning them and rescans the changed one in a single task.
    changed_id = next(iter(states))
    states[changed_id] = [*states[changed_id][1:], fixed(states[changed_id][0])]
    process_all(rig, sessions, [register_push(sessions, changed_id, states[changed_id])])
    rig.client().send_task("k8smon.scan_fleet", args=["test"])
    wait_for(
        lambda: len(finished_runs(sessions, list(states))) == 6,
        timeout=90,
        what="the second fleet scan finished",
    )
    latest = {
        r.cluster_id: r for r in sorted(finished_runs(sessions, list(states)), key=lambda r: r.id)
    }
    for cluster_id, objects in states.items():
        assert set(committed_findings(sessions, cluster_id, active=True)) == offline(
            objects, cluster_id
        )
        run = latest[cluster_id]
        if cluster_id == changed_id:
            assert run.counts["incremental"] == 1 and run.counts["resolved"] >= 1
            assert run.shard_count == 1 and run.counts["evaluated"] == 1
        else:
            assert run.counts["unchanged"] == 1 and run.shard_count == 0


def test_a_fleet_scan_on_one_worker_evaluates_the_fleet_from_what_its_scans_cached(
    rig: CeleryRig, sessions: sessionmaker[Session]
) -> None:
    """The cluster scans of a cold fleet scan cache each cluster's image inventory from the
    bodies they decode (written while its scan ran, under the cluster's state), and the fleet
    evaluation, queued after them, finds it there and finds every fleet finding the bodies
    give (checked against an evaluation that reads every body)."""
    token = uuid.uuid4().hex[:6]
    states = {
        f"inv-{token}-{n}": [
            *cluster_state(f"v{n}{token}", 4),
            deployment("app", namespace="shop", image=f"r.example/app-{token}:1.{5 * n}.0"),
        ]
        for n in range(2)
    }
    snapshot_ids = [register(sessions, cid, objs) for cid, objs in states.items()]
    rig.start_worker(concurrency=1)
    process_all(rig, sessions, snapshot_ids)

    rig.client().send_task("k8smon.scan_fleet", args=["test"])
    runs = wait_for(
        lambda: (found := finished_runs(sessions, list(states))) and len(found) == 2 and found,
        timeout=90,
        what="two scans finished",
    )
    with unit_of_work(sessions) as session:
        digests = {
            cid: (digest, snapshot)
            for cid, digest, snapshot in session.execute(
                select(Cluster.id, Cluster.current_digest, Cluster.current_snapshot_id).where(
                    Cluster.id.in_(list(states))
                )
            )
        }
        written = dict(
            session.execute(
                select(RuleResultCache.content_hash, RuleResultCache.created_at).where(
                    RuleResultCache.catalogue_version.startswith(INVENTORY_CACHE)
                )
            ).all()
        )
    for run in runs:
        assert run.shard_count == 1 and run.counts["evaluated"] >= 1
        digest, snapshot = digests[run.cluster_id]
        at = written[cluster_inventory_key(run.cluster_id, digest, snapshot_id=snapshot)]
        assert run.started_at <= at <= run.finished_at  # by the scan, not the evaluation
    # Queued after the fleet scan's own evaluation: once it has run, that one has too.
    rig.client().send_task("k8smon.evaluate_fleet").get(timeout=90)

    def fleet_findings() -> set[tuple]:
        with unit_of_work(sessions) as session:
            rows = session.execute(
                select(Finding.cluster_id, Finding.rule_id, Finding.name, Finding.message).where(
                    Finding.cluster_id.in_(list(states)),
                    Finding.rule_id.in_(("KM-621", "KM-622")),
                )
            )
            return set(rows)

    evaluated = fleet_findings()
    assert {(c, r, n) for c, r, n, _m in evaluated} == {(f"inv-{token}-0", "KM-621", "app")}
    with unit_of_work(sessions) as session:
        session.execute(
            delete(RuleResultCache).where(
                RuleResultCache.catalogue_version.startswith(INVENTORY_CACHE)
            )
        )
        assert evaluate_fleet(session, rules=load_engine(None), timeout_seconds=60).errors == []
    assert fleet_findings() == evaluated


@pytest.mark.parametrize(
    "count", [15, 4], ids=["three-shards-in-a-chord", "one-shard-in-the-scan-task"]
)
def test_a_worker_killed_in_the_middle_of_a_shard_loses_nothing(
    rig: CeleryRig, sessions: sessionmaker[Session], pg_engine: Engine, count: int
) -> None:
    cluster_id = f"kill-{uuid.uuid4().hex[:6]}"
    objects = cluster_state(f"k{count}", count)  # bodies no other test has cached
    snapshot_id = register(sessions, cluster_id, objects)
    first = rig.start_worker(concurrency=1)
    process_all(rig, sessions, [snapshot_id])

    # Hold a lock that makes the shard block while writing its results: it is mid-shard.
    blocker = pg_engine.connect()
    transaction = blocker.begin()
    blocker.execute(text("LOCK TABLE rule_result_cache IN SHARE ROW EXCLUSIVE MODE"))
    try:
        rig.client().send_task("k8smon.rescan", args=[cluster_id])

        def shard_waiting() -> bool:
            return lock_waiters(pg_engine, "rule_result_cache") > 0

        try:
            wait_for(shard_waiting, timeout=30, what="a shard blocked mid-write")
        except AssertionError:
            print(rig.logs())
            raise
        rig.kill(first)  # SIGKILL to the worker and its pool child
    finally:
        transaction.rollback()
        blocker.close()
    assert not finished_runs(sessions, [cluster_id])

    rig.start_worker(concurrency=1)
    runs = wait_for(
        lambda: finished_runs(sessions, [cluster_id]),
        timeout=120,
        what="the scan to finish after redelivery",
    )
    assert len(runs) == 1 and runs[0].counts["unevaluated"] == 0
    assert runs[0].shard_count == -(-count // 5)
    found = committed_findings(sessions, cluster_id)
    assert len(found) == len(set(found))
    assert set(found) == offline(objects, cluster_id)


def test_a_worker_killed_in_the_middle_of_a_batch_of_scans_loses_nothing(
    rig: CeleryRig, sessions: sessionmaker[Session], pg_engine: Engine
) -> None:
    """A fleet scan's batch task (`k8smon.scan_clusters`) runs each finalize on a thread
    while it evaluates the next cluster: killed while a finalize is writing, with the next
    cluster evaluated meanwhile, the redelivered batch ends every scan exactly once."""
    token = uuid.uuid4().hex[:6]
    # One shard each (shards of 5): the batch evaluates them itself, one after another.
    states = {f"batch-{token}-{n}": cluster_state(f"b{token}{n}", 3 + n % 2) for n in range(3)}
    snapshot_ids = [register(sessions, cid, objs) for cid, objs in states.items()]
    first = rig.start_worker(concurrency=1)
    process_all(rig, sessions, snapshot_ids)

    # Hold a lock that blocks the first finalize's writes: it waits in the lane while the
    # worker goes on to evaluate the next cluster.
    blocker = pg_engine.connect()
    transaction = blocker.begin()
    blocker.execute(text("LOCK TABLE findings IN SHARE ROW EXCLUSIVE MODE"))
    try:
        # What a fleet scan sends for these clusters (a fleet scan here would also take in
        # the other tests' clusters).
        rig.client().send_task(
            "k8smon.scan_clusters",
            kwargs={"cluster_ids": list(states), "trigger": "test", "in_fleet_scan": True},
        )

        def finalize_waiting_after_the_next_evaluation() -> bool:
            waiting = lock_waiters(pg_engine, "findings")
            with pg_engine.connect() as probe:  # its own transaction: fresh statistics
                evaluated = probe.execute(
                    text(
                        "SELECT count(*) FROM scan_steps s JOIN scan_runs r ON r.id = s.scan_id "
                        "WHERE s.finished_at IS NOT NULL AND s.step = -1 AND r.cluster_id LIKE :c"
                    ),
                    {"c": f"batch-{token}-%"},
                ).scalar()
            return bool(waiting) and (evaluated or 0) >= 2

        try:
            wait_for(
                finalize_waiting_after_the_next_evaluation, timeout=60, what="a finalize blocked"
            )
        except AssertionError:
            print(rig.logs())
            raise
        with unit_of_work(sessions) as session:
            planned = session.scalars(
                select(ScanRun.task_id).where(ScanRun.cluster_id.in_(list(states)))
            ).all()
        # Every scan of the batch was recorded before any ran, under the batch's task id.
        assert len(planned) == 3 and len(set(planned)) == 1
        rig.kill(first)  # SIGKILL to the worker and its pool child
    finally:
        transaction.rollback()
        blocker.close()
    assert not finished_runs(sessions, list(states))

    rig.start_worker(concurrency=1)
    runs = wait_for(
        lambda: len(done := finished_runs(sessions, list(states))) == 3 and done,
        timeout=120,
        what="the batch's scans to finish after redelivery",
    )
    assert all(r.counts["unevaluated"] == 0 and r.errors == [] for r in runs)
    with unit_of_work(sessions) as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(ScanRun)
                .where(ScanRun.cluster_id.in_(list(states)))
            )
            == 3
        )  # one run per cluster: resumed, not started again
    for cluster_id, objects in states.items():
        found = committed_findings(sessions, cluster_id)
        assert len(found) == len(set(found))
        assert set(found) == offline(objects, cluster_id)


def test_snapshots_stored_while_redis_was_down_are_processed_by_the_sweep(
    rig: CeleryRig, sessions: sessionmaker[Session]
) -> None:
    cluster_id = f"sweep-{uuid.uuid4().hex[:6]}"
    snapshot_id = register(sessions, cluster_id, cluster_state("s", 4))
    dead_broker = CeleryDispatcher(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.3)
    assert (
        enqueue_after_commit(
            dead_broker, "k8smon.process_snapshot", kwargs={"snapshot_id": snapshot_id}
        )
        is False
    )

    rig.start_worker(concurrency=1)
    rig.client().send_task("k8smon.sweep_unprocessed")

    def processed() -> bool:
        with unit_of_work(sessions) as session:
            return session.get(Snapshot, snapshot_id).state == "processed"

    wait_for(processed, timeout=60, what="the swept snapshot to be processed")


def test_flower_lists_a_fleet_scans_tasks_with_cluster_and_shard(
    rig: CeleryRig, sessions: sessionmaker[Session]
) -> None:
    cluster_id = f"flower-{uuid.uuid4().hex[:6]}"
    snapshot_id = register(sessions, cluster_id, cluster_state("fl", 12))
    port = free_port()
    rig.start_flower(port)
    rig.start_worker(concurrency=1)
    process_all(rig, sessions, [snapshot_id])
    rig.client().send_task("k8smon.scan_fleet", args=["test"])
    wait_for(lambda: finished_runs(sessions, [cluster_id]), timeout=90, what="scan finished")

    def tasks() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks", timeout=5) as r:
            listed = json.load(r)
        names = {t.get("name") for t in listed.values()}
        wanted = {
            "k8smon.scan_fleet",
            "k8smon.scan_clusters",
            "k8smon.evaluate_shard",
            "k8smon.evaluate_cluster_rules",
            "k8smon.finalize_scan",
        }
        if not wanted <= names:
            return {}
        # Task events reach Flower a little after the database commit: wait until it has seen
        # every one of our tasks finish (the assertions below still demand SUCCESS).
        ours = [t for t in listed.values() if cluster_id in _arguments(t)]
        finished = all(t.get("state") in {"SUCCESS", "FAILURE", "REVOKED"} for t in ours)
        return listed if finished else {}

    listed = wait_for(tasks, timeout=30, what="flower to list the scan's tasks")
    ours = [t for t in listed.values() if cluster_id in _arguments(t)]
    shards = [t for t in ours if t["name"] == "k8smon.evaluate_shard"]
    assert len(shards) == 3  # 12 objects, shards of 5
    # Named arguments: Flower shows `scan_id=…, cluster_id='…', shard_index=…`.
    shard_kwargs = [ast.literal_eval(t["kwargs"]) for t in shards]
    assert all(k["cluster_id"] == cluster_id for k in shard_kwargs)
    shard_numbers = sorted(k["shard_index"] for k in shard_kwargs)
    assert shard_numbers == [0, 1, 2]
    assert any(t["name"] == "k8smon.scan_clusters" for t in ours)
    assert all(t["state"] == "SUCCESS" for t in ours)


def push_runs(sessions: sessionmaker[Session], cluster_id: str) -> list[ScanRun]:
    with unit_of_work(sessions) as session:
        return list(
            session.scalars(
                select(ScanRun)
                .where(ScanRun.cluster_id == cluster_id, ScanRun.state == "done")
                .order_by(ScanRun.id)
            )
        )


def test_a_push_is_scanned_on_a_worker(
    push_rig: CeleryRig, sessions: sessionmaker[Session]
) -> None:
    cluster_id = f"push-{uuid.uuid4().hex[:6]}"
    objects = cluster_state(cluster_id[-6:], 6)
    push_rig.start_worker(concurrency=2)
    process_all(push_rig, sessions, [register(sessions, cluster_id, objects)])
    # No rescan, no fleet scan: the processed first push is scanned on its own.
    runs = wait_for(
        lambda: push_runs(sessions, cluster_id), timeout=90, what="the first push's scan"
    )
    assert [r.trigger for r in runs] == ["push"]
    assert set(committed_findings(sessions, cluster_id, active=True)) == offline(
        objects, cluster_id
    )

    # A push that changes the state: scanned again, incrementally.
    changed = [fixed(objects[0]), *objects[1:]]
    process_all(push_rig, sessions, [register_push(sessions, cluster_id, changed)])
    wait_for(
        lambda: len(push_runs(sessions, cluster_id)) == 2,
        timeout=90,
        what="the changed push's scan",
    )
    runs = push_runs(sessions, cluster_id)
    assert [r.trigger for r in runs] == ["push", "push"]
    assert runs[1].counts["incremental"] == 1 and runs[1].counts["resolved"] >= 1
    assert set(committed_findings(sessions, cluster_id, active=True)) == offline(
        changed, cluster_id
    )
