"""The fault rig itself: it starts everything, takes signed pushes, finishes a fleet scan, and
its faults do what they say (Redis restarted empty or with its data, PostgreSQL stopped and
started, PostgreSQL read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import sqlalchemy.exc
from sqlalchemy import create_engine, text

from contracts.states import ScanState
from tests.faults.rig import FaultRig, final

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def test_the_rig_takes_pushes_and_finishes_a_fleet_scan(tmp_path: Path) -> None:
    with FaultRig.start(tmp_path, K8SMON_SHARD_SIZE="40", K8SMON_SCAN_ON_PUSH="false") as rig:
        rig.start_web()
        rig.start_worker(concurrency=2)
        feeds = rig.register_clusters(3, objects=100)
        outcomes = rig.push_full(feeds)
        assert [o.status for o in outcomes] == [202, 202, 202], [o.summary() for o in outcomes]
        rig.wait_until(
            lambda: rig.snapshots_processed(feeds), timeout=120, what="the pushes to be applied"
        )
        rig.scan_fleet()
        took = rig.wait_until(
            lambda: len(runs := rig.scan_runs()) == 3 and all(final(r) for r in runs),
            timeout=180,
            what="the fleet scan to finish",
        )
        runs = rig.scan_runs()
        logs = rig.all_logs()
    assert sorted(r.cluster_id for r in runs) == sorted(f.cluster_id for f in feeds)
    assert all(r.state == ScanState.DONE for r in runs), [(r.state, r.errors) for r in runs]
    assert all(r.shard_count == 3 for r in runs), logs  # 100 objects, 40 per shard: a chord
    assert all(r.object_count == 100 for r in runs)
    assert took < 180


def test_the_faults_do_what_they_say(tmp_path: Path) -> None:
    with FaultRig.start(tmp_path, persistent=True) as rig:
        client = redis.Redis.from_url(rig.redis_url)
        client.set("kept", "1")
        rig.restart_redis(persistent=True)
        assert client.get("kept") == b"1"
        rig.restart_redis(persistent=False)
        assert client.get("kept") is None
        client.close()

        rig.stop_postgres()
        with pytest.raises(sqlalchemy.exc.OperationalError), rig.session() as session:
            session.execute(text("SELECT 1"))
        rig.start_postgres()
        with rig.session() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1

        rig.postgres_read_only(True)
        writer = create_engine(rig.database_url, pool_pre_ping=True)
        with (
            pytest.raises(sqlalchemy.exc.InternalError, match="read-only transaction"),
            writer.begin() as conn,
        ):
            conn.execute(text("CREATE TABLE fault_probe (n int)"))
        rig.postgres_read_only(False)
        with writer.begin() as conn:
            conn.execute(text("CREATE TABLE fault_probe (n int)"))
        writer.dispose()
