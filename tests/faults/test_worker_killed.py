"""Fault row: the whole worker SIGKILLed in the middle of a fleet scan, default visibility timeout.

Real processes on the fault rig's private PostgreSQL and Redis (tests/faults/rig.py): gunicorn,
a worker and a beat as the Procfile runs them, ten clusters pushed through the signed ingest,
and a fleet scan of several shards per cluster. The shards' writes are held (a table lock) so
the worker is surely mid-shard, and the worker and
its pool are SIGKILLed: the messages it held stay unacknowledged in Redis for the visibility
timeout (3,900 s). A new worker starts. The scan watchdog, on its default settings, must find
the scans whose chord lost a member and re-send what was lost, so that every scan ends within
five minutes of the kill with exactly the offline scan's findings, none doubled.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from contracts.states import ScanState
from store.models import Finding, ScanStep
from tests.faults.rig import FaultRig
from tests.workers.test_scan_lifecycle import offline
from tests.workers.test_watchdog import ref
from tests.workers.workloads import cluster_state

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

CLUSTERS = 10
OBJECTS = 24
SHARD_SIZE = 6  # four shards and the cluster rules per cluster: 50 steps in all
BOUND_S = 300.0  # the bound: every scan final, lost members re-driven, in 5 minutes
REDRIVEN = re.compile(
    r"^\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): WARNING/[^\]]*\] "
    r'\{"event": "scan_redriven", "scan_id": (?P<scan>\d+)',
    re.MULTILINE,
)


def finished_steps(rig: FaultRig) -> int:
    with rig.session() as session:
        done = select(func.count()).select_from(ScanStep).where(ScanStep.finished_at.is_not(None))
        return int(session.scalar(done) or 0)


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
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    with FaultRig.start(
        tmp_path, K8SMON_SHARD_SIZE=str(SHARD_SIZE), K8SMON_SCAN_ON_PUSH="false"
    ) as rig:
        rig.start_web()
        rig.start_worker("worker", concurrency=2)
        rig.start_beat()  # the watchdog runs on its default interval and staleness
        feeds = rig.register_clusters(CLUSTERS, objects=0, prefix="killed")
        for n, feed in enumerate(feeds):  # bodies nobody evaluated yet, distinct per cluster
            feed.objects = cluster_state(f"wk{n}", OBJECTS)
        assert all(o.status == 202 for o in rig.push_full(feeds))
        rig.wait_until(lambda: rig.snapshots_processed(feeds), timeout=300, what="pushes applied")
        # The shards' writes are held from the start (on a quiet machine the whole scan can end
        # between two polls), so the worker is surely mid-shard when it is killed.
        blocker = rig.engine.connect()
        transaction = blocker.begin()
        blocker.execute(text("LOCK TABLE rule_result_cache IN SHARE ROW EXCLUSIVE MODE"))
        try:
            rig.scan_fleet()
            rig.wait_until(lambda: shard_blocked(rig.engine), timeout=60, what="a shard blocked")
            rig.kill("worker")  # SIGKILL to the worker and its pool children
            killed_at = datetime.now(UTC)
        finally:
            transaction.rollback()
            blocker.close()
        lost = [r.id for r in rig.scan_runs() if r.state == ScanState.RUNNING]
        assert lost, "the kill must leave scans running"
        rig.start_worker("worker-2", concurrency=2)

        def all_final() -> bool:
            runs = rig.scan_runs()
            return len(runs) >= CLUSTERS and all(r.state != ScanState.RUNNING for r in runs)

        try:
            rig.wait_until(all_final, timeout=BOUND_S + 60, what="every scan to end")
        except AssertionError:
            print(rig.all_logs())
            raise
        runs = rig.scan_runs()
        log = rig.logs("worker-2")
        with rig.session() as session:
            found = {
                feed.cluster_id: [
                    (f.rule_id, ref(f), f.container, f.path or "")
                    for f in session.scalars(
                        select(Finding).where(Finding.cluster_id == feed.cluster_id)
                    )
                ]
                for feed in feeds
            }

    redrives = {
        int(m["scan"]): datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
        for m in REDRIVEN.finditer(log)
    }
    ended = max(r.finished_at for r in runs if r.finished_at)
    recovery_s = (ended - killed_at).total_seconds()
    redrive_s = max(((at - killed_at).total_seconds() for at in redrives.values()), default=-1)
    record_property("scans_in_flight_at_kill", len(lost))
    record_property("scans_redriven", len(redrives))
    record_property("last_redrive_after_kill_s", round(redrive_s, 1))
    record_property("all_scans_final_after_kill_s", round(recovery_s, 1))
    print(
        f"worker SIGKILLed with {len(lost)} scans running; {len(redrives)} re-driven, the last "
        f"{redrive_s:.1f} s after the kill; every scan final {recovery_s:.1f} s after the kill"
    )

    assert len(runs) == CLUSTERS  # one run per cluster: nothing failed and rescanned
    assert all(r.state == ScanState.DONE for r in runs), [(r.id, r.failure_reason) for r in runs]
    assert all(r.counts["unevaluated"] == 0 for r in runs)
    # Only what the killed worker held (prefetch 1 x 2 processes) was lost and re-sent; the
    # scans whose steps waited in the queue were left to run.
    assert 1 <= len(redrives) <= 2 and set(redrives) <= set(lost), redrives
    assert all(r.redrives >= 1 for r in runs if r.id in redrives)
    assert 0 < redrive_s <= BOUND_S and recovery_s <= BOUND_S
    for n, feed in enumerate(feeds):
        assert len(found[feed.cluster_id]) == len(set(found[feed.cluster_id])), feed.cluster_id
        assert set(found[feed.cluster_id]) == offline(feed.objects, feed.cluster_id), n
