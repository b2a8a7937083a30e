"""Fleet rules on the server (KM-621 drift, KM-622 advisories): the service on both engines,
and the task path: a loaded advisory's findings appear at once, scans keep them, deleting it
resolves them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.advisories import parse_advisories
from contracts.tasks import EVALUATE_FLEET, RESCAN, SCAN_FLEET
from store.advisories import delete_advisory, load_advisories
from store.db import unit_of_work
from store.models import Finding
from store.snapshots import apply_pending, stage_snapshot
from tests.support.factories import make_cluster, make_exemption
from tests.support.finding_rows import findings_and_events
from tests.support.manifests import deployment, full_envelope
from tests.workers.conftest import Pipeline
from workers.engine import EngineHandle
from workers.services import fleet as fleet_module
from workers.services import fleet_rules as fleet_rules_module
from workers.services.fleet import FleetOutcome, evaluate_fleet

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


def _fleet_state(session: Session) -> list[tuple[str, str, str, str, str | None, str]]:
    session.expire_all()
    rows = session.execute(
        select(
            Finding.cluster_id,
            Finding.rule_id,
            Finding.name,
            Finding.severity,
            Finding.path,
            Finding.message,
        )
        .where(Finding.rule_id.in_(("KM-621", "KM-622")), Finding.status.in_(("new", "open")))
        .order_by(Finding.cluster_id, Finding.rule_id, Finding.name)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _forget_inventories(session: Session) -> None:
    from sqlalchemy import delete  # noqa: PLC0415

    from store.models import RuleResultCache  # noqa: PLC0415
    from store.rule_cache import INVENTORY_CACHE  # noqa: PLC0415

    session.execute(
        delete(RuleResultCache).where(RuleResultCache.catalogue_version.startswith(INVENTORY_CACHE))
    )


def test_fleet_evaluation_from_cached_inventories_follows_changes_elsewhere(
    any_db_session: Session, rules_engine: EngineHandle
) -> None:
    """The fleet evaluation reads an unchanged cluster's inventory from the cache: a change in
    another cluster still changes its findings (a newer release there, then that workload
    deleted), a relabelled workload moves in and out of a label-selected exemption, and every
    evaluation's findings are those of an evaluation that reads every body again."""
    session = any_db_session
    for cluster_id in ("eu", "us"):
        make_cluster(session, cluster_id)
    make_exemption(
        session, rule_ids=["KM-621"], cluster_id="eu", selector={"labels": "tier in (legacy)"}
    )
    app = deployment("app", namespace="shop", image="r.example/shop-app:2.14.1")
    _push(session, "eu", [app], T0)
    _push(
        session, "us", [deployment("app", namespace="shop", image="r.example/shop-app:2.15.0")], T0
    )
    now = T0 + timedelta(days=1)

    def evaluate() -> list[tuple[str, str, str, str, str | None, str]]:
        evaluate_fleet(session, rules=rules_engine, timeout_seconds=60, now=now)
        cached = _fleet_state(session)
        _forget_inventories(session)
        evaluate_fleet(session, rules=rules_engine, timeout_seconds=60, now=now)
        assert _fleet_state(session) == cached  # the same from the bodies
        evaluate_fleet(session, rules=rules_engine, timeout_seconds=60, now=now)  # cached again
        return cached

    assert evaluate() == []  # one minor release behind: within the default drift
    us_newer = deployment("app", namespace="shop", image="r.example/shop-app:2.17.1")
    _push(session, "us", [us_newer], now)  # eu unchanged: its inventory from the cache
    drift = evaluate()
    assert [(c, r, n) for c, r, n, _s, _p, _m in drift] == [("eu", "KM-621", "app")]

    legacy = copy.deepcopy(app)
    legacy["metadata"]["labels"]["tier"] = "legacy"
    _push(session, "eu", [legacy], now)  # the exemption's selector now matches
    assert evaluate() == []
    statuses = {s for _c, _n, s, _v, _p in _findings(session, "KM-621")}
    assert statuses == {"exempted"}
    _push(session, "eu", [app], now)  # label gone: open again
    assert [(c, r, n) for c, r, n, _s, _p, _m in evaluate()] == [("eu", "KM-621", "app")]

    _push(session, "us", [deployment("db", namespace="shop", image="postgres:16")], now)
    assert evaluate() == []  # the newer release is gone from the fleet: eu's drift resolved
    assert {s for _c, _n, s, _v, _p in _findings(session, "KM-621")} == {"resolved"}


def test_a_cluster_whose_fleet_findings_are_unchanged_is_not_reconciled_again(
    any_db_session: Session, rules_engine: EngineHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An evaluation reconciles only the clusters whose fleet findings it would change, and
    leaves every finding, event and count as reconciling every cluster would (checked against
    that evaluation, run first and rolled back, at every step)."""
    session = any_db_session
    for cluster_id in ("eu", "us", "dev"):
        make_cluster(session, cluster_id)
    make_exemption(
        session, rule_ids=["KM-622"], cluster_id="dev", selector={"labels": "tier in (legacy)"}
    )
    legacy = deployment("old", namespace="shop", image="r.example/log4j-app:2.14.0")
    legacy["metadata"]["labels"]["tier"] = "legacy"
    _push(
        session, "eu", [deployment("app", namespace="shop", image="r.example/log4j-app:2.14.1")], T0
    )
    _push(
        session, "us", [deployment("app", namespace="shop", image="r.example/log4j-app:2.17.1")], T0
    )
    _push(session, "dev", [legacy], T0)
    load_advisories(session, parse_advisories(LOG4J), loaded_by="test")
    reconciled: list[str] = []
    real = fleet_module.reconcile_findings

    def spy(session: Session, cluster_id: str, **kwargs: Any) -> Any:
        reconciled.append(cluster_id)
        return real(session, cluster_id, **kwargs)

    monkeypatch.setattr(fleet_module, "reconcile_findings", spy)

    def evaluate(minutes: int) -> tuple[list[str], dict[str, int]]:
        outcome = _evaluated_as_with(
            session,
            rules_engine,
            monkeypatch,
            now=T0 + timedelta(days=1, minutes=minutes),
            patch=(fleet_module, "unchanged_outcome", lambda *_args: None),
            then=reconciled.clear,
        )
        return sorted(reconciled), outcome.counts

    assert evaluate(0)[0] == ["dev", "eu"]  # new findings (dev's exempted)
    assert evaluate(1)[0] == ["dev", "eu"]  # new -> open; an exempted one is seen again
    reconciled_now, counts = evaluate(2)
    assert reconciled_now == ["dev"] and counts["open"] == 3  # eu's findings: as stored
    _push(
        session, "eu", [deployment("app", namespace="shop", image="r.example/log4j-app:2.17.1")], T0
    )
    reconciled_now, counts = evaluate(3)
    assert reconciled_now == ["dev", "eu"] and counts["resolved"] == 2  # eu upgraded
    assert evaluate(4)[0] == ["dev"]  # nothing active left in eu: not even read


def _evaluated_as_with(
    session: Session,
    rules_engine: EngineHandle,
    monkeypatch: pytest.MonkeyPatch,
    *,
    now: datetime,
    patch: tuple[Any, str, Any],
    then: Callable[[], None],
) -> FleetOutcome:
    """`evaluate_fleet` at `now`, checked against the same evaluation with `patch` (module,
    name, replacement) in place, run first and rolled back: the same counts, clusters and
    stored fleet findings. `then` runs between the two (a spy's reset)."""
    with monkeypatch.context() as patched, session.begin_nested() as nested:
        patched.setattr(*patch)
        expected = evaluate_fleet(session, rules=rules_engine, timeout_seconds=60, now=now)
        expected_rows = findings_and_events(session)
        nested.rollback()
    then()
    outcome = evaluate_fleet(session, rules=rules_engine, timeout_seconds=60, now=now)
    assert (outcome.counts, outcome.clusters) == (expected.counts, expected.clusters)
    assert findings_and_events(session) == expected_rows
    return outcome


def test_workload_facts_are_read_once_and_only_when_configuration_reads_them(
    any_db_session: Session, rules_engine: EngineHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The facts of every cluster come from one `current_metadata` read, made only when an
    exemption that applies has a label selector (or annotations are honoured), and only for
    those clusters; every finding is what reading every cluster's facts gives (checked
    against that evaluation, run first and rolled back)."""
    session = any_db_session
    for cluster_id in ("eu", "us", "dev"):
        make_cluster(session, cluster_id)
    legacy = deployment("app", namespace="shop", image="r.example/log4j-app:2.14.0")
    legacy["metadata"]["labels"]["tier"] = "legacy"
    _push(session, "eu", [legacy], T0)
    _push(session, "dev", [legacy], T0)
    _push(
        session, "us", [deployment("app", namespace="shop", image="r.example/log4j-app:2.17.1")], T0
    )
    load_advisories(session, parse_advisories(LOG4J), loaded_by="test")
    reads: list[list[str]] = []
    real = fleet_rules_module.current_metadata

    def spy(session: Session, wanted: Any, **kwargs: Any) -> Any:
        if wanted:  # asked for nothing, it reads nothing
            reads.append(sorted(wanted))
        return real(session, wanted, **kwargs)

    monkeypatch.setattr(fleet_rules_module, "current_metadata", spy)

    def evaluate(minutes: int) -> list[list[str]]:
        _evaluated_as_with(
            session,
            rules_engine,
            monkeypatch,
            now=T0 + timedelta(days=1, minutes=minutes),
            patch=(fleet_rules_module, "reads_facts", lambda *_a, **_k: True),
            then=reads.clear,
        )
        return list(reads)

    assert evaluate(0) == []  # no exemption: no facts read
    make_exemption(session, rule_ids=["KM-622"], cluster_id="dev", selector={"namespace": "shop"})
    assert evaluate(1) == []  # no label selector
    make_exemption(
        session, rule_ids=["KM-622"], cluster_id="eu", selector={"labels": "tier in (legacy)"}
    )
    assert evaluate(2) == [["eu"]]  # eu's exemption reads labels, in one read
    statuses = dict(
        session.execute(
            select(Finding.cluster_id, Finding.status).where(Finding.rule_id == "KM-622")
        ).all()
    )
    assert statuses == {"eu": "exempted", "dev": "exempted"}
    make_exemption(session, rule_ids=["KM-621"], selector={"labels": "tier=front"})
    assert evaluate(3) == [["dev", "eu"]]  # a global one: every cluster with results


@pytest.mark.parametrize("shard_size", [2000, 1], ids=["one-shard", "shards-and-cluster-step"])
@pytest.mark.parametrize("engine", ["postgresql", "sqlite"])
def test_a_fleet_scan_evaluates_the_fleet_from_the_inventories_its_scans_cached(
    request: pytest.FixtureRequest,
    engine: str,
    shard_size: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cold fleet scan's cluster scans decode every body, and cache each cluster's
    inventory of them (a one-shard scan's inline step, or the cluster step of a scan of
    several shards): the fleet evaluation after them reads no body, and its findings are
    those of an evaluation that reads every body."""
    import store.images  # noqa: PLC0415

    fixture = "make_pipeline" if engine == "postgresql" else "make_sqlite_pipeline"
    pipeline = request.getfixturevalue(fixture)(shard_size=shard_size)
    old = deployment("app", namespace="shop", image="r.example/log4j-app:2.14.1")
    pipeline.push_and_process("prod", [old, deployment("db", namespace="shop", image="pg:16")])
    pipeline.push_and_process(
        "stage", [deployment("app", namespace="shop", image="r.example/log4j-app:2.17.1")]
    )
    with unit_of_work(pipeline.ctx.sessions) as writing:  # SQLite: the pipeline's writer
        load_advisories(writing, parse_advisories(LOG4J), loaded_by="test")
    session = pipeline.session

    def unread(*_args: object) -> None:
        raise AssertionError("the fleet evaluation read a scanned cluster's bodies")

    with monkeypatch.context() as patched:
        patched.setattr(store.images, "_postgres_cluster_rows", unread)
        patched.setattr(store.images, "_python_cluster_rows", unread)
        pipeline.run.run(SCAN_FLEET)
    session.commit()  # read what the pipeline committed since
    scanned = _fleet_state(session)
    assert [(c, r, n) for c, r, n, _s, _p, _m in scanned] == [
        ("prod", "KM-621", "app"),
        ("prod", "KM-622", "app"),
    ]
    with unit_of_work(pipeline.ctx.sessions) as writing:
        _forget_inventories(writing)
    pipeline.run.run(EVALUATE_FLEET)  # from every body
    session.commit()
    assert _fleet_state(session) == scanned
