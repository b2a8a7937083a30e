"""Fault row: the whole worker SIGKILLed in the middle of a fleet scan, default visibility timeout.

Real processes on a private PostgreSQL and a private Redis: a worker and a beat as the Procfile
runs them, a fleet scan of ten clusters of several shards each. Once part of the scan is done,
the shards' writes are held (a table lock) so the worker is surely mid-shard, and the worker and
its pool are SIGKILLed: the messages it held stay unacknowledged in Redis for the visibility
timeout (3,900 s). A new worker starts. The scan watchdog, on its default settings, must find
the scans whose chord lost a member and re-send what was lost, so that every scan ends within
five minutes of the kill with exactly the offline scan's findings, none doubled.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from contracts.states import ScanState
from contracts.tasks import SCAN_FLEET
from store import migrate
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import Finding, ScanRun, ScanStep
from store.snapshots import apply_pending, stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import full_envelope
from tests.support.services import can_start_postgres, can_start_redis, port_open
from tests.support.throwaway_postgres import ThrowawayPostgres
from tests.workers.celery_rig import CeleryRig, free_port, running, wait_for
from tests.workers.test_scan_lifecycle import offline
from tests.workers.test_watchdog import ref
from tests.workers.workloads import cluster_state

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (can_start_postgres() and can_start_redis()),
        reason="needs the PostgreSQL and Redis server binaries",
    ),
]

CLUSTERS = 10
OBJECTS = 24
SHARD_SIZE = 6  # four shards and the cluster rules per cluster: 50 steps in all
BOUND_S = 300.0  # the bound: every scan final, lost members re-driven, in 5 minutes
REDRIVEN = re.compile(
    r"^\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): WARNING/[^\]]*\] "
    r'\{"event": "scan_redriven", "scan_id": (?P<scan>\d+)',
    re.MULTILINE,
)


@pytest.fixture
def private_postgres() -> Iterator[Engine]:
    base = Path(tempfile.mkdtemp(prefix="k8smon-fault-pg-"))
    base.chmod(0o755)
    server = ThrowawayPostgres.start(base)
    engine = make_engine(server.url)
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: port_open("127.0.0.1", port), timeout=20, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=20)


def register_fleet(sessions: sessionmaker[Session]) -> dict[str, list[dict]]:
    """Ten clusters with bodies nobody evaluated yet, their snapshots applied."""
    states = {}
    with unit_of_work(sessions) as session:
        for n in range(CLUSTERS):
            cluster_id = f"killed-{n}"
            states[cluster_id] = cluster_state(f"wk{n}", OBJECTS)
            make_cluster(session, cluster_id)
            stage_snapshot(session, cluster_id, envelope=full_envelope(states[cluster_id]))
            apply_pending(session, cluster_id)
    return states


def fleet_runs(sessions: sessionmaker[Session]) -> list[ScanRun]:
    with unit_of_work(sessions) as session:
        runs = list(session.scalars(select(ScanRun).order_by(ScanRun.id)))
        session.expunge_all()
        return runs


def finished_steps(sessions: sessionmaker[Session]) -> int:
    with unit_of_work(sessions) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(ScanStep).where(ScanStep.finished_at.is_not(None))
            )
            or 0
        )


def shard_blocked(engine: Engine) -> bool:
    with engine.connect() as probe:
        waiting = probe.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE '%rule_result_cache%'"
            )
        ).scalar()
    return bool(waiting)


def test_a_worker_killed_mid_fleet_scan_is_recovered_within_five_minutes(
    private_postgres: Engine,
    private_redis: str,
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    engine = private_postgres
    sessions = make_session_factory(engine)
    states = register_fleet(sessions)
    with running(
        CeleryRig.create(
            database_url=engine.url.render_as_string(hide_password=False),
            redis_url=private_redis,
            tmp=tmp_path,
            K8SMON_SHARD_SIZE=str(SHARD_SIZE),
            K8SMON_SCAN_ON_PUSH="false",
        )
    ) as rig:
        first = rig.start_worker(concurrency=2)
        rig.start_beat(tmp_path / "beat" / "celerybeat-schedule")
        rig.client().send_task(SCAN_FLEET, kwargs={"trigger": "schedule"})
        # Part of the scan done: a few steps finished.
        wait_for(lambda: finished_steps(sessions) >= 8, timeout=120, what="some steps done")
        blocker = engine.connect()
        transaction = blocker.begin()
        blocker.execute(text("LOCK TABLE rule_result_cache IN SHARE ROW EXCLUSIVE MODE"))
        try:
            wait_for(lambda: shard_blocked(engine), timeout=60, what="a shard blocked mid-write")
            rig.kill(first)  # SIGKILL to the worker and its pool children
            killed_at = datetime.now(UTC)
        finally:
            transaction.rollback()
            blocker.close()
        lost = [r.id for r in fleet_runs(sessions) if r.state == ScanState.RUNNING]
        assert lost, "the kill must leave scans running"
        second = rig.start_worker(concurrency=2)

        def all_final() -> list[ScanRun]:
            runs = fleet_runs(sessions)
            done = len(runs) >= CLUSTERS and all(r.state != ScanState.RUNNING for r in runs)
            return runs if done else []

        try:
            runs = wait_for(all_final, timeout=BOUND_S + 60, what="every scan to end")
        except AssertionError:
            print(rig.logs())
            raise
        log = (rig.log_dir / f"worker-{rig.processes.index(second)}.log").read_text(
            errors="replace"
        )
        rig.kill(second, signal.SIGTERM)

    redrives = {
        int(m["scan"]): datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
        for m in REDRIVEN.finditer(log)
    }
    ended = max(r.finished_at for r in runs if r.finished_at)
    recovery_s = (ended - killed_at).total_seconds()
    redrive_s = max((at - killed_at).total_seconds() for at in redrives.values())
    record_property("scans_in_flight_at_kill", len(lost))
    record_property("scans_redriven", len(redrives))
    record_property("last_redrive_after_kill_s", round(redrive_s, 1))
    record_property("all_scans_final_after_kill_s", round(recovery_s, 1))
    print(
        f"worker SIGKILLed with {len(lost)} scans running; {len(redrives)} re-driven, the last "
        f"{redrive_s:.1f} s after the kill; every scan final {recovery_s:.1f} s after the kill"
    )

    assert len(runs) == CLUSTERS  # one run per cluster: nothing rescanned, nothing doubled
    assert all(r.state == ScanState.DONE for r in runs), [(r.id, r.failure_reason) for r in runs]
    assert all(r.counts["unevaluated"] == 0 for r in runs)
    # Only what the killed worker held (prefetch 1 x 2 processes) was lost and re-sent; the
    # scans whose steps waited in the queue were left to run.
    assert 1 <= len(redrives) <= 2 and set(redrives) <= set(lost), redrives
    assert all(r.redrives >= 1 for r in runs if r.id in redrives)
    assert redrive_s <= BOUND_S and recovery_s <= BOUND_S
    with unit_of_work(sessions) as session:
        for cluster_id, objects in states.items():
            rows = session.scalars(select(Finding).where(Finding.cluster_id == cluster_id))
            found = [(f.rule_id, ref(f), f.container, f.path or "") for f in rows]
            assert len(found) == len(set(found)), cluster_id
            assert set(found) == offline(objects, cluster_id), cluster_id
