"""Redis restarted during a fleet scan of 10 clusters, empty or with its data: every scan
reaches a final state within 5 minutes of Redis returning, and each cluster is rescanned.

Real processes on private servers (tests/faults/rig.py): the Procfile's gunicorn, one worker
(concurrency 2) and beat, which runs the scan watchdog. The fleet scan is split into many small
shards (K8SMON_SHARD_SIZE) so that it is still in flight when Redis goes; the watchdog's
interval and staleness are shortened through their settings (K8SMON_WATCHDOG_INTERVAL_SECONDS,
K8SMON_SCAN_STALE_SECONDS: 10 s and 20 s instead of 60 s and 90 s, docs/operations.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from contracts.states import ScanState
from contracts.tasks import RESCAN
from tests.fakes.receiver import running_receiver
from tests.faults.deliveries import WEBHOOK_ENV, clusters_reporting_to
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
        try:
            recovery_s = rig.wait_until(
                lambda: rig.scans_recovered([f.cluster_id for f in feeds], since=back),
                timeout=REQUIRED_S,
                what="every scan final and every cluster rescanned after Redis returned",
            )
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}\n{rig.describe_scans()}\n{rig.all_logs()}") from None
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


def test_worker_outlives_redis_restarting_while_it_runs_a_task(tmp_path: Path) -> None:
    """The worker process outlives a Redis restart that comes while one of its processes runs a
    task and the other waits for the next, then takes new work: the moment Celery 5.7.0's own
    consumer exited at ("Unrecoverable error", workers/consumer.py). The running task is a
    report delivery held 8 s by a slow webhook receiver, so the restart always meets it."""
    with (
        running_receiver(delay_s=8.0) as receiver,
        FaultRig.start(tmp_path, persistent=True, **WEBHOOK_ENV) as rig,
    ):
        rig.start_web()
        worker = rig.start_worker(concurrency=2)
        (feed,) = clusters_reporting_to(rig, receiver.url, 1, prefix="held")
        rig.wait_until(lambda: receiver.requests, timeout=120, what="the delivery to be sent")
        assert unacknowledged(rig) >= 1  # the held delivery's message, kept across the restart
        rig.restart_redis(persistent=True)
        back = datetime.now(UTC)
        time.sleep(10)  # the held delivery ends and the consumer has reconnected, or exited
        assert worker.poll() is None, f"the worker exited:\n{rig.logs('worker')}"
        rig.send_task(RESCAN, cluster_id=feed.cluster_id)
        rig.wait_until(
            lambda: rig.scans_recovered([feed.cluster_id], since=back),
            timeout=120,
            what="a rescan sent after Redis returned to be done",
        )
        assert worker.poll() is None, f"the worker exited:\n{rig.logs('worker')}"
        assert "Unrecoverable error" not in rig.logs("worker"), rig.logs("worker")
        # The held delivery acknowledged its message when it ended, through a new connection:
        # nothing waits in the broker's unacknowledged set to be delivered again.
        assert unacknowledged(rig) == 0, rig.logs("worker")


def unacknowledged(rig: FaultRig) -> int:
    """Messages in the rig broker's unacknowledged set (kombu's `unacked` hash, prefixed)."""
    client = redis.Redis.from_url(rig.redis_url)
    try:
        prefix = rig.env["K8SMON_REDIS_KEY_PREFIX"]
        return sum(int(client.hlen(key)) for key in client.scan_iter(f"{prefix}unacked"))
    finally:
        client.close()
