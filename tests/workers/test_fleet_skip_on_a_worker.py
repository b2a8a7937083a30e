"""On a real Celery worker (real Redis, real PostgreSQL): the fleet scan after a label-only
change carries the cluster's inventory row over, and the fleet evaluation it sends is skipped
(nothing evaluated in full since the last one, the fleet findings as they were); after an
image change the evaluation runs in full and resolves the drift."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.db import unit_of_work
from store.models import FleetEvaluation, ScanRun
from tests.support.finding_rows import fleet_findings
from tests.support.manifests import deployment
from tests.workers.celery_rig import CeleryRig, wait_for
from tests.workers.test_celery_worker import (  # noqa: F401 - fixtures
    pg_engine,
    process_all,
    register,
    register_push,
    rig,
    sessions,
    worker_database,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def _app(repository: str, version: str, **labels: str) -> dict[str, Any]:
    made = deployment("app", namespace="shop", image=f"{repository}:{version}")
    made["metadata"]["labels"].update(labels)
    return made


def _fleet_findings(factory: sessionmaker[Session]) -> list[tuple[object, ...]]:
    with unit_of_work(factory) as session:
        return fleet_findings(session)


def _evaluated_at(factory: sessionmaker[Session]) -> datetime | None:
    with unit_of_work(factory) as session:
        return session.scalar(select(FleetEvaluation.evaluated_at))


def _fleet_scan(celery: CeleryRig, factory: sessionmaker[Session], *, clusters: int) -> None:
    """A fleet scan, waited for: every cluster's run finished, then the evaluation it sent
    (an evaluation sent after it, on the one worker process, runs after it)."""
    with unit_of_work(factory) as session:
        before = session.scalar(select(func.count()).where(ScanRun.state == "done")) or 0
    celery.client().send_task("k8smon.scan_fleet", args=["test"]).get(timeout=90)

    def finished() -> bool:
        with unit_of_work(factory) as session:
            done = session.scalar(select(func.count()).where(ScanRun.state == "done")) or 0
        return done >= before + clusters

    wait_for(finished, timeout=90, what="the fleet scan's runs")


def test_a_label_round_on_a_worker_skips_the_fleet_evaluation(
    rig: CeleryRig,  # noqa: F811 - fixture
    sessions: sessionmaker[Session],  # noqa: F811 - fixture
) -> None:
    repository = f"registry.example/{uuid.uuid4().hex[:6]}/shop-app"
    eu = [_app(repository, "2.10.0"), deployment("db", namespace="shop", image="pg:16")]
    ids = [
        register(sessions, "skip-eu", eu),
        register(sessions, "skip-us", [_app(repository, "2.17.1")]),
    ]
    rig.start_worker(concurrency=1)
    process_all(rig, sessions, ids)

    def evaluate() -> dict[str, Any]:
        result: dict[str, Any] = rig.client().send_task("k8smon.evaluate_fleet").get(timeout=90)
        return result

    _fleet_scan(rig, sessions, clusters=2)  # cold: new findings
    assert not evaluate()["skipped"]  # they turn open
    assert evaluate()["skipped"]
    settled = _fleet_findings(sessions)
    assert [(c, n, s) for c, n, s, *_rest in settled] == [("skip-eu", "app", "open")]
    evaluated = _evaluated_at(sessions)

    relabelled = copy.deepcopy(eu)
    relabelled[0]["metadata"]["labels"]["tier"] = "front"
    process_all(rig, sessions, [register_push(sessions, "skip-eu", relabelled)])
    _fleet_scan(rig, sessions, clusters=2)
    assert evaluate()["skipped"]
    assert _evaluated_at(sessions) == evaluated  # the fleet scan's own evaluation skipped too
    assert _fleet_findings(sessions) == settled
    with unit_of_work(sessions) as session:
        run = session.scalars(
            select(ScanRun).where(ScanRun.cluster_id == "skip-eu").order_by(ScanRun.id.desc())
        ).first()
        assert run is not None and run.counts["incremental"] == 1

    caught_up = [_app(repository, "2.17.1", tier="front"), relabelled[1]]
    process_all(rig, sessions, [register_push(sessions, "skip-eu", caught_up)])
    _fleet_scan(rig, sessions, clusters=2)
    evaluated_again = _evaluated_at(sessions)
    assert evaluated is not None and evaluated_again is not None
    assert evaluated_again > evaluated  # judged in full
    assert [(c, n, s) for c, n, s, *_rest in _fleet_findings(sessions)] == [
        ("skip-eu", "app", "resolved")
    ]
