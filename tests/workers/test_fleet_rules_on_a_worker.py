"""On a real Celery worker (real Redis, real PostgreSQL), with scan on push as deployed: a
push's own scan names the cluster's image drift (KM-621) and advisory (KM-622) findings, and
the push with the image updated resolves them — no fleet scan in between."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contracts.advisories import parse_advisories
from store.advisories import load_advisories
from store.db import unit_of_work
from store.models import Finding
from tests.support.manifests import deployment
from tests.workers.celery_rig import CeleryRig, wait_for
from tests.workers.test_celery_worker import (  # noqa: F401 - fixtures
    pg_engine,
    process_all,
    push_rig,
    push_runs,
    register,
    register_push,
    sessions,
    worker_database,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def fleet_findings(factory: sessionmaker[Session], cluster_id: str) -> list[tuple[str, str, str]]:
    with unit_of_work(factory) as session:
        rows = session.execute(
            select(Finding.rule_id, Finding.name, Finding.status)
            .where(Finding.cluster_id == cluster_id, Finding.rule_id.in_(("KM-621", "KM-622")))
            .order_by(Finding.rule_id, Finding.name)
        )
        return [(r, n, str(s)) for r, n, s in rows]


def test_a_push_scan_on_a_worker_names_and_resolves_fleet_findings(
    push_rig: CeleryRig,  # noqa: F811 - fixture
    sessions: sessionmaker[Session],  # noqa: F811 - fixture
) -> None:
    suffix = uuid.uuid4().hex[:6]
    app = f"registry.example/{suffix}/log4j-app"
    advisory_id = f"TEST-WORKER-{suffix}"
    with unit_of_work(sessions) as session:
        load_advisories(
            session,
            parse_advisories(
                {
                    "id": advisory_id,
                    "severity": "critical",
                    "affected": [{"repository": app, "introduced": "2.0.0", "fixed": "2.15.0"}],
                }
            ),
            loaded_by="test",
        )
    ahead, behind = f"ahead-{suffix}", f"behind-{suffix}"
    push_rig.start_worker(concurrency=2)
    process_all(
        push_rig,
        sessions,
        [register(sessions, ahead, [deployment("app", namespace="shop", image=f"{app}:2.17.1")])],
    )
    wait_for(lambda: push_runs(sessions, ahead), timeout=90, what="ahead's push scan")
    process_all(
        push_rig,
        sessions,
        [register(sessions, behind, [deployment("app", namespace="shop", image=f"{app}:2.14.1")])],
    )
    runs = wait_for(lambda: push_runs(sessions, behind), timeout=90, what="behind's push scan")
    assert [r.trigger for r in runs] == ["push"]
    assert fleet_findings(sessions, behind) == [("KM-621", "app", "new"), ("KM-622", "app", "new")]
    assert fleet_findings(sessions, ahead) == []

    updated = [deployment("app", namespace="shop", image=f"{app}:2.17.1")]
    process_all(push_rig, sessions, [register_push(sessions, behind, updated)])
    wait_for(
        lambda: len(push_runs(sessions, behind)) == 2, timeout=90, what="the updated push's scan"
    )
    assert fleet_findings(sessions, behind) == [
        ("KM-621", "app", "resolved"),
        ("KM-622", "app", "resolved"),
    ]
