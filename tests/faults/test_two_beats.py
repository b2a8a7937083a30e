"""Two `celery beat` processes (a common misdeployment): each scheduled job runs once per interval.

Real processes, as the Procfile runs them: two beats (each with its own schedule file, as on two
hosts) started out of phase, and one worker, on a private queue and key prefix of the test Redis
and a database of their own. Intervals are shortened only through documented settings
(K8SMON_SCAN_INTERVAL_HOURS, K8SMON_SWEEP_INTERVAL_MINUTES).
"""

from __future__ import annotations

import itertools
import re
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from beat_schedule.schedule import lease_seconds
from store import migrate
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import ScanRun
from tests.support.factories import make_cluster
from tests.support.services import ThrowawayDatabase
from tests.workers.celery_rig import CeleryRig, running, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

INTERVAL_S = 3.6  # 0.001 hours and 0.06 minutes
INTERVALS = 7  # how long both beats run together
ENTRIES = ("fleet-scan", "sweep-unprocessed")
LINE = re.compile(
    r"^\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): .*?"
    r"(?:Sending due task (?P<sent>[\w-]+) |beat: skipped (?P<skipped>[\w-]+):)",
    re.MULTILINE,
)


@pytest.fixture
def database(postgres_server_url: str) -> Iterator[tuple[ThrowawayDatabase, Engine]]:
    database = ThrowawayDatabase.create(postgres_server_url)
    engine = make_engine(database.url)
    migrate.upgrade(engine)
    yield database, engine
    engine.dispose()
    database.drop()


def beat_events(log: str) -> list[tuple[datetime, str, str]]:
    """(time, "sent" or "skipped", entry) for every send decision in one beat's log."""
    events = []
    for match in LINE.finditer(log):
        at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f")
        if match["sent"]:
            events.append((at, "sent", match["sent"]))
        else:
            events.append((at, "skipped", match["skipped"]))
    return events


def test_two_beats_send_each_entry_once_per_interval(
    database: tuple[ThrowawayDatabase, Engine], redis_url: str, tmp_path: Path
) -> None:
    throwaway, engine = database
    with unit_of_work(make_session_factory(engine)) as session:
        cluster_id = make_cluster(session).id
    with running(
        CeleryRig.create(
            database_url=throwaway.url,
            redis_url=redis_url,
            tmp=tmp_path,
            K8SMON_SCAN_INTERVAL_HOURS=str(INTERVAL_S / 3600),
            K8SMON_SWEEP_INTERVAL_MINUTES=str(INTERVAL_S / 60),
            K8SMON_SCAN_ON_PUSH="false",
        )
    ) as rig:
        worker = rig.start_worker()
        beats = [rig.start_beat(tmp_path / "beat-a" / "celerybeat-schedule")]
        time.sleep(INTERVAL_S * 0.4)  # out of phase: the harder case for a lock
        beats.append(rig.start_beat(tmp_path / "beat-b" / "celerybeat-schedule"))
        time.sleep(INTERVAL_S * INTERVALS)
        for beat in beats:
            rig.kill(beat, signal.SIGTERM)
        logs = [
            (rig.log_dir / f"beat-{i}.log").read_text(errors="replace")
            for i in (rig.processes.index(b) for b in beats)
        ]
        per_beat = [beat_events(log) for log in logs]
        events = sorted(e for beat in per_beat for e in beat)
        sent = {
            name: [at for at, what, e in events if e == name and what == "sent"] for name in ENTRIES
        }
        skipped = {
            name: sum(1 for _, what, e in events if e == name and what == "skipped")
            for name in ENTRIES
        }

        def scheduled_scans() -> int:
            with unit_of_work(make_session_factory(engine)) as session:
                return int(
                    session.scalar(
                        select(func.count())
                        .select_from(ScanRun)
                        .where(ScanRun.cluster_id == cluster_id, ScanRun.trigger == "schedule")
                    )
                    or 0
                )

        worker_log = rig.log_dir / f"worker-{rig.processes.index(worker)}.log"

        def sweeps() -> int:
            text = worker_log.read_text(errors="replace")
            return len(re.findall(r"Task k8smon\.sweep_unprocessed\[[^\]]+\] succeeded", text))

        # Every send ran exactly once on the worker: the database holds one scan run per
        # fleet-scan send, the worker log one sweep per sweep send.
        wait_for(
            lambda: (
                scheduled_scans() >= len(sent["fleet-scan"])
                and sweeps() >= len(sent["sweep-unprocessed"])
            ),
            timeout=60,
            what="the worker to run every job sent",
        )
        time.sleep(2)  # a duplicate, had one been sent, would have run by now
        diagnostics = "\n".join(logs)

    assert all(len(beat) >= 2 for beat in per_beat), f"both beats must decide:\n{diagnostics}"
    for name in ENTRIES:
        times = sent[name]
        # Both beats were due about INTERVALS times each (without the lease: twice the sends,
        # 1.4 s and 2.2 s apart); the lease let one send per interval through.
        assert len(times) >= INTERVALS - 3, (name, len(times), diagnostics)
        assert skipped[name] >= 2, (name, skipped[name], diagnostics)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert min(gaps) >= lease_seconds(INTERVAL_S) - 0.05, (name, gaps, diagnostics)
        span = (times[-1] - times[0]).total_seconds()
        assert len(times) <= span / lease_seconds(INTERVAL_S) + 1, (name, len(times), span)
    assert scheduled_scans() == len(sent["fleet-scan"])
    assert sweeps() == len(sent["sweep-unprocessed"])
