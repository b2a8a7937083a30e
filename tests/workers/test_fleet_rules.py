"""Fleet rules on the server (KM-621 drift, KM-622 advisories): the service on both engines,
and the task path: a loaded advisory's findings appear at once, scans keep them, deleting it
resolves them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.advisories import parse_advisories
from contracts.tasks import EVALUATE_FLEET, RESCAN, SCAN_FLEET
from store.advisories import delete_advisory, load_advisories
from store.models import Finding
from store.snapshots import apply_pending, stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import deployment, full_envelope
from tests.workers.conftest import Pipeline
from workers.engine import EngineHandle
from workers.services.fleet import evaluate_fleet

T0 = datetime(2026, 10, 1, tzinfo=UTC)
LOG4J = {
    "id": "TEST-LOG4J-1",
    "severity": "critical",
    "summary": "test advisory",
    "url": "https://advisories.example/TEST-LOG4J-1",
    "affected": [{"repository": "*/log4j-app", "introduced": "2.0.0", "fixed": "2.15.0"}],
}


def _findings(session: Session, rule_id: str) -> list[tuple[str, str, str, str, str]]:
    rows = session.execute(
        select(Finding.cluster_id, Finding.name, Finding.status, Finding.severity, Finding.path)
        .where(Finding.rule_id == rule_id)
        .order_by(Finding.cluster_id, Finding.name)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _push(session: Session, cluster_id: str, objects: list, at: datetime) -> None:
    stage_snapshot(session, cluster_id, envelope=full_envelope(objects), received_at=at)
    apply_pending(session, cluster_id)


def test_fleet_evaluation_on_both_engines(
    any_db_session: Session, rules_engine: EngineHandle
) -> None:
    session = any_db_session
    for cluster_id in ("eu", "us", "dev"):
        make_cluster(session, cluster_id)
    _push(
        session, "eu", [deployment("app", namespace="shop", image="r.example/log4j-app:2.14.1")], T0
    )
    _push(
        session, "us", [deployment("app", namespace="shop", image="r.example/log4j-app:2.17.1")], T0
    )
    _push(
        session,
        "dev",
        [deployment("app", namespace="shop", image="r.example/log4j-app:latest")],
        T0,
    )
    now = T0 + timedelta(days=1)

    outcome = evaluate_fleet(session, rules=rules_engine, timeout_seconds=60, now=now)
    assert (outcome.images, outcome.advisories, outcome.errors) == (3, 0, [])
    # 2.14.1 is 3 minor releases behind 2.17.1 (the default allows 2); `latest` is unordered
    assert _findings(session, "KM-621") == [
        ("eu", "app", "new", "low", "spec.template.spec.containers[0].image")
    ]
    assert _findings(session, "KM-622") == []

    load_advisories(session, parse_advisories(LOG4J), loaded_by="test")
    evaluate_fleet(session, rules=rules_engine, timeout_seconds=60, now=now)
    assert _findings(session, "KM-622") == [
        ("dev", "app", "new", "medium", "spec.template.spec.containers[0].image"),  # latest
        ("eu", "app", "new", "critical", "spec.template.spec.containers[0].image"),
    ]
    message = session.scalar(
        select(Finding.message).where(Finding.cluster_id == "eu", Finding.rule_id == "KM-622")
    )
    assert "TEST-LOG4J-1 (critical, fixed in 2.15.0)" in str(message)

    # eu upgrades: its findings resolve at the next evaluation, the others stay
    _push(
        session,
        "eu",
        [deployment("app", namespace="shop", image="r.example/log4j-app:2.17.1")],
        now,
    )
    again = evaluate_fleet(session, rules=rules_engine, timeout_seconds=60, now=now)
    assert again.counts["resolved"] == 2
    assert [(c, s) for c, _n, s, _v, _p in _findings(session, "KM-622")] == [
        ("dev", "open"),
        ("eu", "resolved"),
    ]
    assert delete_advisory(session, "TEST-LOG4J-1")
    evaluate_fleet(session, rules=rules_engine, timeout_seconds=60, now=now)
    assert {s for _c, _n, s, _v, _p in _findings(session, "KM-622")} == {"resolved"}


def test_advisory_task_path_scans_keep_fleet_findings(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_pipeline()
    pipeline.push_and_process(
        "prod", [deployment("app", namespace="shop", image="r.example/log4j-app:2.14.1")]
    )
    pipeline.push_and_process(
        "stage", [deployment("app", namespace="shop", image="r.example/log4j-app:2.16.0")]
    )
    session = pipeline.session
    load_advisories(session, parse_advisories(LOG4J), loaded_by="test")
    session.commit()
    result = pipeline.run.run(EVALUATE_FLEET)
    assert result["advisories"] == 1 and result["counts"]["new"] >= 1
    assert [(c, s) for c, _n, s, _v, _p in _findings(session, "KM-622")] == [("prod", "new")]

    # a cluster scan does not resolve what the fleet evaluation owns
    pipeline.run.run(RESCAN, "prod")
    assert [(c, s) for c, _n, s, _v, _p in _findings(session, "KM-622")] == [("prod", "open")]
    # a fleet scan re-evaluates the fleet: still there, and still once
    pipeline.run.run(SCAN_FLEET)
    assert [(c, s) for c, _n, s, _v, _p in _findings(session, "KM-622")] == [("prod", "open")]
