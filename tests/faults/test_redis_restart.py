"""Redis restarted during a fleet scan of 10 clusters, empty or with its data: every scan
reaches a final state within 5 minutes of Redis returning, and each cluster is rescanned.

Real processes on private servers (tests/faults/rig.py): the Procfile's gunicorn, one worker
(concurrency 2) and beat, which runs the scan watchdog. The fleet scan is split into many small
shards (K8SMON_SHARD_SIZE) so that it is still in flight when Redis goes; the watchdog's
interval and staleness are shortened through their settings (K8SMON_WATCHDOG_INTERVAL_SECONDS,
K8SMON_SCAN_STALE_SECONDS: 10 s and 20 s instead of 60 s and 90 s, docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.states import ScanState
from tests.faults.rig import FaultRig

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

CLUSTERS = 10
OBJECTS = 300
REQUIRED_S = 300  # the bound: final states and rescans within 5 minutes
SETTINGS = {
    "K8SMON_SHARD_SIZE": "20",  # 15 shards per cluster: 150 chord members in flight
    "K8SMON_SCAN_ON_PUSH": "false",  # only the fleet scan scans
    "K8SMON_WATCHDOG_INTERVAL_SECONDS": "10",
    "K8SMON_SCAN_STALE_SECONDS": "20",
}


def restart_redis_mid_scan(
    tmp_path: Path, record_property: Callable[[str, object], None], *, persistent: bool
) -> None:
    with FaultRig.start(tmp_path, persistent=persistent, **SETTINGS) as rig:
        rig.start_web()
        rig.start_worker(concurrency=2)
        rig.start_beat()
        feeds = rig.load_fleet(CLUSTERS, objects=OBJECTS)
        rig.scan_fleet()
        in_flight = rig.scans_in_flight(CLUSTERS)
        rig.restart_redis(persistent=persistent)
        back = datetime.now(UTC)
        recovery_s = rig.wait_until(
            lambda: rig.scans_recovered([f.cluster_id for f in feeds], since=back),
            timeout=REQUIRED_S,
            what="every scan final and every cluster rescanned after Redis returned",
        )
        runs = rig.scan_runs()
        mode = "with its data" if persistent else "empty"
        record_property("recovery_s", round(recovery_s, 1))
        record_property("scans_in_flight_at_fault", len(in_flight))
        print(
            f"Redis restarted {mode} with {len(in_flight)}/{CLUSTERS} scans in flight: every scan "
            f"final and every cluster rescanned {recovery_s:.1f} s after Redis returned"
        )
    assert len(in_flight) >= CLUSTERS // 2, "the fault must hit a fleet scan in flight"
    assert all(r.state in (ScanState.DONE, ScanState.FAILED) for r in runs)
    # A scan that failed says why (the watchdog's reason), never silently.
    assert all(r.failure_reason for r in runs if r.state == ScanState.FAILED), [
        (r.id, r.errors) for r in runs if r.state == ScanState.FAILED
    ]
    assert recovery_s <= REQUIRED_S


def test_redis_restarted_empty_during_a_fleet_scan(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    restart_redis_mid_scan(tmp_path, record_property, persistent=False)


def test_redis_restarted_with_persistence_during_a_fleet_scan(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    restart_redis_mid_scan(tmp_path, record_property, persistent=True)
