"""PostgreSQL read-only for 45 s (as a standby after a failover answers writes) under push load
and during a fleet scan: every push is answered 503 `unavailable` with Retry-After (zero 500s,
nothing half-stored), tasks retry instead of failing, nothing is stuck afterwards, and every
push answered 202 is stored and applied.

Real processes on private servers (tests/faults/rig.py): gunicorn as the Procfile runs it, a
`worker` and a `snapshots` worker (`--lane snapshots`), all with default retry settings
(K8SMON_TASK_RETRY_WINDOW_SECONDS 900, backoff cap 60 s). Before issue 14 the same fault gave
220 pushes a 500 `internal_error` and failed 34 tasks without a retry (`InternalError` was not
treated as transient).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from agent.transport import Outcome
from contracts.states import ScanState, SnapshotState
from store.models import Snapshot
from tests.faults.rig import ClusterFeed, FaultRig
from tests.support.manifests import cluster_objects

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

CLUSTERS = 6
OBJECTS = 200
READ_ONLY_S = 45
PUSH_PAUSE_S = 0.2
REQUIRED_S = 300
SETTINGS = {"K8SMON_SHARD_SIZE": "20", "K8SMON_SCAN_ON_PUSH": "false"}


def _push_new_state(feed: ClusterFeed, generation: int) -> Outcome:
    """A full snapshot of a state the server has not seen (one more object each generation)."""
    feed.objects = cluster_objects(OBJECTS + generation)
    return feed.push_full()


def _stored_and_applied(rig: FaultRig, accepted: Sequence[Outcome]) -> bool:
    ids = {int((o.body or {})["snapshot_id"]) for o in accepted}
    with rig.session() as session:
        states = dict(
            session.execute(select(Snapshot.id, Snapshot.state).where(Snapshot.id.in_(ids))).all()
        )
    return set(states) == ids and all(s == SnapshotState.PROCESSED for s in states.values())


def _nothing_stuck(rig: FaultRig, accepted: Sequence[Outcome]) -> bool:
    runs = rig.scan_runs()
    return all(r.state != ScanState.RUNNING for r in runs) and _stored_and_applied(rig, accepted)


def test_postgres_read_only_45_s_under_push_load(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    with FaultRig.start(tmp_path, **SETTINGS) as rig:
        web = rig.start_web()
        worker = rig.start_worker(concurrency=2)
        snapshots = rig.start_worker("snapshots", lanes=["snapshots"])
        feeds = rig.load_fleet(CLUSTERS, objects=OBJECTS)
        rig.scan_fleet()
        in_flight = rig.scans_in_flight(CLUSTERS)
        rig.postgres_read_only(True)
        during: list[Outcome] = []
        started = time.monotonic()
        while time.monotonic() - started < READ_ONLY_S:
            during.append(_push_new_state(feeds[len(during) % CLUSTERS], len(during) + 1))
            time.sleep(PUSH_PAUSE_S)
        rig.postgres_read_only(False)
        back = datetime.now(UTC)
        after = [_push_new_state(feed, len(during) + 1) for feed in feeds]
        accepted = [o for o in (*during, *after) if o.status == 202]
        recovery_s = rig.wait_until(
            lambda: _nothing_stuck(rig, accepted),
            timeout=REQUIRED_S,
            what="every scan final and every accepted push applied after the database returned",
        )
        runs = rig.scan_runs()
        alive = all(p.poll() is None for p in (web, worker, snapshots))
        web_log = rig.logs("web")
        worker_logs = rig.logs("worker") + rig.logs("snapshots")
    retries = worker_logs.count(": retry ")
    statuses = sorted({o.status for o in during})
    record_property("read_only_s", READ_ONLY_S)
    record_property("pushes_during_read_only", len(during))
    record_property("statuses_during_read_only", statuses)
    record_property("task_retries", retries)
    record_property("recovery_s", round(recovery_s, 1))
    record_property("scans_in_flight_at_fault", len(in_flight))
    print(
        f"PostgreSQL read-only {READ_ONLY_S} s with {len(in_flight)}/{CLUSTERS} scans in flight: "
        f"{len(during)} pushes answered {statuses}, {retries} task retries; every scan final and "
        f"every accepted push applied {recovery_s:.1f} s after it became writable; "
        f"scans {sorted({str(r.state) for r in runs})}"
    )
    assert len(in_flight) >= CLUSTERS // 2, "the fault must hit a fleet scan in flight"
    assert len(during) >= READ_ONLY_S // 2
    refused = [(o.status, o.body, o.retry_after) for o in during if o.status != 202]
    assert refused, "writes must have been refused while read-only"
    assert all(status == 503 for status, _b, _r in refused), refused
    assert all((body or {}).get("reason") == "unavailable" for _s, body, _r in refused), refused
    assert all(retry_after and retry_after > 0 for _s, _b, retry_after in refused), refused
    assert not any(o.status >= 500 and o.status != 503 for o in (*during, *after))
    assert "internal_error" not in web_log
    assert all(o.status == 202 for o in after), [o.summary() for o in after]
    assert retries > 0 and "read-only" in worker_logs, "tasks must retry the read-only database"
    assert "task_gave_up" not in worker_logs, "45 s is well inside the retry window"
    assert alive, "gunicorn and the workers must ride it out without a restart"
    assert all(r.state in (ScanState.DONE, ScanState.FAILED) for r in runs)
    assert all(r.finished_at is not None for r in runs)
    assert any(r.state == ScanState.DONE and r.finished_at and r.finished_at > back for r in runs)
    assert recovery_s <= REQUIRED_S
