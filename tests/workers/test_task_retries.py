"""Tasks on a real Celery worker retry what the error table (store.failures) calls retryable and
give up with the reason otherwise: a private PostgreSQL made read-only (SQLSTATE 25006, an
`InternalError`, which the old autoretry list did not retry), and a permanent error in a scan's
task, which notes the reason in the scan's error list and leaves the scan to the watchdog."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from contracts import tasks as names
from contracts.states import ErrorClass, ScanState
from settings import Settings
from store import migrate
from store.db import make_engine, make_session_factory, unit_of_work
from store.failures import classify
from store.models import ScanRun
from tests.support.factories import make_cluster, make_scan_run
from tests.support.private_postgres import private_postgres, read_only
from tests.support.throwaway_postgres import ThrowawayPostgres
from tests.workers.celery_rig import CeleryRig, running, wait_for
from workers.context import WorkerContext
from workers.retries import RetryPolicy, give_up

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def private() -> Iterator[tuple[ThrowawayPostgres, Engine]]:
    with private_postgres() as pg:
        engine = make_engine(pg.url)
        migrate.upgrade(engine)
        yield pg, engine
        engine.dispose()


def _rig(pg: ThrowawayPostgres, redis_url: str, tmp: Path, **env: str) -> CeleryRig:
    return CeleryRig.create(
        database_url=pg.url,
        redis_url=redis_url,
        tmp=tmp,
        K8SMON_SCAN_ON_PUSH="false",
        K8SMON_TASK_RETRY_BACKOFF_CAP_SECONDS="1",
        **env,
    )


def _logs(rig: CeleryRig) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(rig.log_dir.glob("*.log")))


@contextmanager
def _worker(pg: ThrowawayPostgres, redis_url: str, tmp: Path, *, window_s: int) -> Iterator[Any]:
    """One worker on the private database; yields (producer app, the rig)."""
    with running(_rig(pg, redis_url, tmp, K8SMON_TASK_RETRY_WINDOW_SECONDS=str(window_s))) as rig:
        rig.start_worker()
        yield rig.client(), rig


def test_a_task_retries_through_a_read_only_spell(
    private: tuple[ThrowawayPostgres, Engine], redis_url: str, tmp_path: Path
) -> None:
    pg, _engine = private
    with _worker(pg, redis_url, tmp_path, window_s=120) as (client, rig):
        # The purge writes (DELETE) from its first statement, so a read-only database fails it.
        assert client.send_task(names.PURGE_EXPIRED).get(timeout=90)["complete"]  # warm
        with read_only(pg):
            result = client.send_task(names.PURGE_EXPIRED)
            wait_for(lambda: "retry 2/" in _logs(rig), timeout=60, what="the task to retry twice")
        purged = result.get(timeout=90)
        assert purged["complete"] is True and not any(purged["deleted"].values())
        logs = _logs(rig)
    assert "unavailable: the database is read-only" in logs
    assert "task_gave_up" not in logs


def test_a_task_gives_up_with_the_reason_after_the_retry_window(
    private: tuple[ThrowawayPostgres, Engine], redis_url: str, tmp_path: Path
) -> None:
    pg, _engine = private
    with _worker(pg, redis_url, tmp_path, window_s=3) as (client, rig), read_only(pg):
        result = client.send_task(names.PURGE_EXPIRED)
        started = time.monotonic()
        with pytest.raises(Exception) as gave_up:
            result.get(timeout=90)
        waited = time.monotonic() - started
        logs = _logs(rig)
    assert type(gave_up.value).__name__ == "TaskGaveUp"
    assert str(gave_up.value).startswith("unavailable: the database is read-only")
    assert waited >= 3 * 0.75  # it kept retrying for (at least) the window
    assert "task_gave_up" in logs


def _scan(sessions: sessionmaker[Session], state: ScanState) -> tuple[str, int]:
    with unit_of_work(sessions) as session:
        cluster_id = make_cluster(session).id
        return cluster_id, make_scan_run(session, cluster_id, state=state).id


def test_a_permanent_error_fails_at_once_and_notes_the_scan(
    private: tuple[ThrowawayPostgres, Engine], redis_url: str, tmp_path: Path
) -> None:
    pg, engine = private
    sessions = make_session_factory(engine)
    cluster_id, scan_id = _scan(sessions, ScanState.RUNNING)
    with _worker(pg, redis_url, tmp_path, window_s=600) as (client, rig):
        result = client.send_task(
            names.FINALIZE_SCAN,
            args=[["not a shard outcome"]],
            kwargs={"scan_id": scan_id, "cluster_id": cluster_id},
        )
        with pytest.raises(Exception) as gave_up:
            result.get(timeout=60)  # at once, though the retry window is 10 minutes
        logs = _logs(rig)
    assert str(gave_up.value).startswith("permanent:")
    assert "retry 1/" not in logs
    with unit_of_work(sessions) as session:
        run = session.get(ScanRun, scan_id)
        assert run is not None
        assert run.state == ScanState.RUNNING  # not finished: the watchdog's to re-drive
        (noted,) = run.errors
        assert noted["stage"] == names.FINALIZE_SCAN and noted["class"] == "permanent"
        assert "AttributeError" in noted["error"]


def test_give_up_notes_nothing_on_a_finished_scan(
    private: tuple[ThrowawayPostgres, Engine], tmp_path: Path
) -> None:
    pg, engine = private
    sessions = make_session_factory(engine)
    _cluster_id, scan_id = _scan(sessions, ScanState.DONE)
    ctx = WorkerContext(
        settings=Settings(database_url=pg.url, instance_path=tmp_path),
        sessions_override=sessions,
    )
    failure = classify(KeyError("x"))
    give_up(ctx, names.EVALUATE_SHARD, failure=failure, kwargs={"scan_id": scan_id}, retries=0)
    with unit_of_work(sessions) as session:
        run = session.get(ScanRun, scan_id)
        assert run is not None and run.state == ScanState.DONE and run.errors == []


def test_the_retry_policy_outlasts_its_window_with_capped_waits() -> None:
    policy = RetryPolicy(window_s=900, cap_s=60)
    rng = random.Random(7)
    waits = [policy.delay(n, rng) for n in range(policy.max_retries)]
    assert sum(waits) >= 900  # rides out a 15-minute failover even with the shortest jitter
    assert max(waits) <= 60 and waits[0] <= 1
    assert waits[:4] == sorted(waits[:4])  # doubling at first
    settings = Settings(database_url="sqlite://")
    default = RetryPolicy.from_settings(settings)
    assert default.window_s >= 300  # several minutes by default
    assert classify(KeyError("x")).error_class is ErrorClass.PERMANENT
    assert not default.should_retry(classify(KeyError("x")), 0)
