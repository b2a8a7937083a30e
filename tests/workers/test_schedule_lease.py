"""The schedule lease: the first beat to send an entry holds it for its interval, less a slack."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from beat_schedule.schedule import lease_seconds
from settings import Settings
from workers.celery_app import BrokerOptions, celery_config
from workers.schedule_lease import ScheduleLeases


def test_a_lease_ends_before_its_holders_next_send() -> None:
    assert lease_seconds(3.6) == pytest.approx(3.24)  # a tenth of a short interval
    assert lease_seconds(300) == 295  # at most five seconds of slack
    assert lease_seconds(4 * 3600) == 4 * 3600 - 5


def test_celery_beat_runs_the_single_beat_scheduler(tmp_path: Path) -> None:
    settings = Settings(redis_url="redis://127.0.0.1:6379/0", instance_path=tmp_path)
    config = celery_config(settings, BrokerOptions())
    assert config["beat_scheduler"] == "workers.celery_app:SingleBeatScheduler"


@pytest.mark.redis
def test_the_second_claim_in_an_interval_is_refused(redis_url: str, redis_key_prefix: str) -> None:
    first = ScheduleLeases.from_url(redis_url, prefix=redis_key_prefix)
    second = ScheduleLeases(client=first.client, prefix=redis_key_prefix, holder="beat-b:2")
    assert first.claim("fleet-scan", interval_s=0.5)
    assert not second.claim("fleet-scan", interval_s=0.5)
    assert first.holder_of("fleet-scan").startswith(first.holder)
    assert second.claim("sweep-unprocessed", interval_s=0.5)  # one lease per entry
    time.sleep(lease_seconds(0.5) + 0.05)
    assert second.claim("fleet-scan", interval_s=0.5)  # the lease ended: the next interval
    assert second.holder_of("fleet-scan").startswith("beat-b:2 at ")
    first.client.close()
