"""A fleet evaluation whose inputs are those the last one judged, before its results could
change with time, is skipped (`store.fleet_state`, `workers.services.fleet`): on both engines,
every evaluation here is checked against a full one at the same instant (run first, rolled
back), and each change of an input (an image, an exemption made, revoked or expired, an
advisory, a cluster disabled, a day passing, the purge of a version) is evaluated in full."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from contracts.advisories import parse_advisories
from contracts.states import ClusterStatus
from store import fleet_state
from store.advisories import load_advisories
from store.clusters import update_cluster
from store.db import unit_of_work
from store.exemptions import revoke_exemption
from store.images import cached_inventory_uses, inventory_digests
from store.models import Finding, FleetEvaluation, RuleResultCache
from store.purge import purge_versions
from store.rule_cache import INVENTORY_CACHE
from store.snapshots import apply_pending, stage_snapshot
from store.types import utcnow
from tests.support.factories import make_cluster, make_exemption, make_scan_run
from tests.support.finding_rows import findings_and_events, fleet_findings
from tests.support.manifests import deployment, full_envelope
from tests.workers.conftest import Pipeline
from workers.engine import EngineHandle
from workers.services import fleet_rules as fleet_rules_module
from workers.services.fleet import FleetOutcome, evaluate_fleet

T0 = datetime(2026, 10, 1, tzinfo=UTC)
LOG4J = {
    "id": "TEST-LOG4J-1",
    "severity": "critical",
    "affected": [{"repository": "*/log4j-app", "introduced": "2.0.0", "fixed": "2.15.0"}],
}


def _push(session: Session, cluster_id: str, objects: list[dict[str, Any]], at: datetime) -> None:
    stage_snapshot(session, cluster_id, envelope=full_envelope(objects), received_at=at)
    apply_pending(session, cluster_id)


def _app(version: str, **labels: str) -> dict[str, Any]:
    made = deployment("app", namespace="shop", image=f"r.example/log4j-app:{version}")
    made["metadata"]["labels"].update(labels)
    return made


class Evaluations:
    """`evaluate_fleet` at a given instant, each checked against a full evaluation at the
    same instant that reads everything (run first and rolled back): the same findings and
    events whether it was skipped or not."""

    def __init__(
        self, session: Session, rules: EngineHandle, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.session = session
        self.rules = rules
        self.monkeypatch = monkeypatch

    def at(self, moment: datetime) -> FleetOutcome:
        session = self.session
        with self.monkeypatch.context() as patched, session.begin_nested() as nested:
            patched.setattr(fleet_state.LastEvaluation, "covers", lambda *_a, **_k: False)
            full = evaluate_fleet(session, rules=self.rules, timeout_seconds=60, now=moment)
            expected = findings_and_events(session, refreshed=False)
            nested.rollback()
        assert not full.skipped
        outcome = evaluate_fleet(session, rules=self.rules, timeout_seconds=60, now=moment)
        assert findings_and_events(session, refreshed=False) == expected
        if outcome.skipped:
            assert (outcome.images, outcome.clusters, outcome.counts) == (0, 0, {})
        return outcome

    def skipped(self, moment: datetime) -> bool:
        return self.at(moment).skipped


@pytest.fixture
def fleet(
    any_db_session: Session, rules_engine: EngineHandle, monkeypatch: pytest.MonkeyPatch
) -> Evaluations:
    """eu runs log4j-app 2.10.0, us 2.17.1 (eu's KM-621 drift and, with the advisory, KM-622),
    both since T0."""
    session = any_db_session
    for cluster_id in ("eu", "us"):
        make_cluster(session, cluster_id)
    _push(session, "eu", [_app("2.10.0")], T0)
    _push(session, "us", [_app("2.17.1")], T0)
    return Evaluations(session, rules_engine, monkeypatch)


def test_unchanged_inputs_are_skipped_once_the_findings_are_settled(fleet: Evaluations) -> None:
    day = T0 + timedelta(days=1, hours=1)
    assert not fleet.skipped(day)  # new findings
    assert not fleet.skipped(day + timedelta(minutes=1))  # they turn open: written
    assert fleet.skipped(day + timedelta(minutes=2))  # what it would leave is there
    assert fleet.skipped(day + timedelta(hours=22))
    messages = fleet.session.scalars(
        select(Finding.message).where(Finding.rule_id == "KM-621")
    ).all()
    assert len(messages) == 1 and "running in the fleet since 2026-10-01 (1 days)" in messages[0]


def test_a_day_passing_changes_the_day_count_and_is_evaluated(fleet: Evaluations) -> None:
    day = T0 + timedelta(days=1, hours=1)
    fleet.at(day)
    fleet.at(day)
    assert fleet.skipped(T0 + timedelta(days=2) - timedelta(microseconds=1))
    assert not fleet.skipped(T0 + timedelta(days=2))  # 2 days since T0 now
    message = fleet.session.scalar(select(Finding.message).where(Finding.rule_id == "KM-621"))
    assert "(2 days)" in str(message)
    assert fleet.skipped(T0 + timedelta(days=2, hours=1))


def _settled(fleet: Evaluations, moment: datetime) -> None:
    fleet.at(moment)
    fleet.at(moment)
    assert fleet.skipped(moment)


def test_a_redeploy_elsewhere_leaves_a_drift_finding_unwritten(fleet: Evaluations) -> None:
    """A third cluster, ap, runs the newest version too, then moves to a tag that is not a
    version, then back: the fleet changed (evaluated in full each time), but eu is as far
    behind the same newest version, running since the same day, so its finding is not
    written again (its message does not count the containers running the newest version)."""
    moment = T0 + timedelta(days=1, hours=1)
    make_cluster(fleet.session, "ap")
    _push(fleet.session, "ap", [_app("2.17.1")], T0)
    _settled(fleet, moment)

    def eu_drift() -> tuple[Any, ...]:
        row = fleet.session.execute(
            select(Finding.message, Finding.last_seen, Finding.status).where(
                Finding.cluster_id == "eu", Finding.rule_id == "KM-621"
            )
        ).one()
        return tuple(row)

    before = eu_drift()
    for later, version in (
        (moment + timedelta(hours=1), "canary"),
        (moment + timedelta(hours=2), "2.17.1"),
    ):
        _push(fleet.session, "ap", [_app(version)], later)
        assert not fleet.skipped(later)
        assert eu_drift() == before


def test_an_image_change_is_evaluated_and_coming_back_is_not_skipped(
    fleet: Evaluations,
) -> None:
    """A -> B -> A: B's evaluation wrote findings, so A's record is gone: coming back to A's
    uses is evaluated in full, though its inputs are A's again."""
    moment = T0 + timedelta(days=1, hours=1)
    _settled(fleet, moment)
    _push(fleet.session, "eu", [_app("2.17.1")], moment)  # eu catches up: drift resolved
    assert not fleet.skipped(moment)
    assert fleet.session.scalars(
        select(Finding.status).where(Finding.cluster_id == "eu", Finding.rule_id == "KM-621")
    ).all() == ["resolved"]
    _push(fleet.session, "eu", [_app("2.10.0")], moment)
    assert not fleet.skipped(moment)
    assert not fleet.skipped(moment)  # reopened (new) -> open
    assert fleet.skipped(moment)


def test_a_relabelled_workload_whose_uses_did_not_change_is_skipped_once_cached(
    fleet: Evaluations,
) -> None:
    moment = T0 + timedelta(days=1, hours=1)
    _settled(fleet, moment)
    before = inventory_digests(fleet.session, ["eu", "us"])
    _push(fleet.session, "eu", [_app("2.10.0", tier="front")], moment)
    assert inventory_digests(fleet.session, ["eu", "us"]) == {"us": before["us"]}  # not cached
    assert not fleet.skipped(moment)  # eu worked out again: the same uses, nothing written
    assert inventory_digests(fleet.session, ["eu", "us"]) == before
    assert fleet.skipped(moment)


@pytest.mark.parametrize("change", ["exemption", "advisory", "disabled", "created again"])
def test_a_changed_input_is_evaluated(fleet: Evaluations, change: str) -> None:
    moment = T0 + timedelta(days=1, hours=1)
    _settled(fleet, moment)
    session = fleet.session
    if change == "exemption":
        made = make_exemption(session, rule_ids=["KM-621"], cluster_id="eu")
        assert not fleet.skipped(moment)  # eu's drift exempted
        assert fleet.skipped(moment)
        revoke_exemption(session, made.id, at=moment)
        assert not fleet.skipped(moment)  # open again
    elif change == "advisory":
        load_advisories(session, parse_advisories(LOG4J), loaded_by="test")
        assert not fleet.skipped(moment)
        assert session.scalar(select(Finding.status).where(Finding.rule_id == "KM-622")) == "new"
    elif change == "disabled":
        update_cluster(session, "us", status=ClusterStatus.DISABLED)
        assert not fleet.skipped(moment)  # no newer version in the fleet: eu's drift resolved
        assert session.scalar(select(Finding.status).where(Finding.rule_id == "KM-621")) == (
            "resolved"
        )
    else:  # eu deleted (its findings with it) and created again, its uses cached as before
        before = inventory_digests(session, ["eu"])["eu"]
        session.execute(text("DELETE FROM clusters WHERE id = 'eu'"))
        make_cluster(session, "eu")
        _push(session, "eu", [_app("2.10.0")], T0)
        list(cached_inventory_uses(session, ["eu"], deadline=1e12, timeout_seconds=60))
        assert inventory_digests(session, ["eu", "us"])["eu"] == before
        assert not fleet.skipped(moment)
        assert session.scalar(select(Finding.status).where(Finding.rule_id == "KM-621")) == "new"


def test_an_exemption_expiring_ends_the_skip(fleet: Evaluations) -> None:
    # An exemption expires in the future (the store refuses any other): noon, two days on.
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    expires = midnight + timedelta(days=2, hours=12)
    moment = expires - timedelta(hours=2)  # no day boundary of T0's in between
    make_exemption(session=fleet.session, rule_ids=["KM-621"], cluster_id="eu", expires_at=expires)
    _settled(fleet, moment)
    assert fleet.session.scalar(select(Finding.status).where(Finding.rule_id == "KM-621")) == (
        "exempted"
    )
    assert fleet.skipped(expires - timedelta(microseconds=1))
    assert not fleet.skipped(expires)  # expired: open again
    assert fleet.session.scalar(select(Finding.status).where(Finding.rule_id == "KM-621")) == (
        "open"
    )


def test_the_purge_of_a_version_ends_the_skip(fleet: Evaluations) -> None:
    """ap has run 2.17.1 since a year before T0 and was relabelled a day later: the newest
    version runs in the fleet since then. The purge deletes ap's first version (superseded
    before its cutoff), so ap's run of 2.17.1 starts at its relabelled version: the history
    epoch moves in the purge's transaction and the next evaluation reads the history again
    (eu's message names the later date)."""
    session = fleet.session
    make_cluster(session, "ap")
    year_before = T0 - timedelta(days=365)
    _push(session, "ap", [_app("2.17.1")], year_before)
    _push(session, "ap", [_app("2.17.1", tier="front")], year_before + timedelta(days=1))
    moment = T0 + timedelta(days=1, hours=1)
    _settled(fleet, moment)

    def since() -> str:
        message = str(
            session.scalar(
                select(Finding.message).where(
                    Finding.cluster_id == "eu", Finding.rule_id == "KM-621"
                )
            )
        )
        return message.split("running in the fleet since ")[1][:10]

    assert since() == "2025-10-01"
    epoch = session.scalar(select(FleetEvaluation.history_epoch))
    assert purge_versions(session, cutoff=T0) == 1
    assert session.scalar(select(FleetEvaluation.history_epoch)) == (epoch or 0) + 1
    assert not fleet.skipped(moment)
    assert since() == "2025-10-02"
    assert fleet.skipped(moment)


def test_workload_facts_read_are_never_skipped(fleet: Evaluations) -> None:
    """A label-selected exemption reads the workloads' labels, which no input names: an
    evaluation that read them is not recorded."""
    make_exemption(
        session=fleet.session,
        rule_ids=["KM-621"],
        cluster_id="eu",
        selector={"labels": "tier in (legacy)"},
    )
    moment = T0 + timedelta(days=1, hours=1)
    for _ in range(3):
        assert not fleet.skipped(moment)
    _push(fleet.session, "eu", [_app("2.10.0", tier="legacy")], moment)
    assert not fleet.skipped(moment)
    assert fleet.session.scalar(select(Finding.status).where(Finding.rule_id == "KM-621")) == (
        "exempted"
    )


def test_a_failing_fleet_rule_is_never_recorded(
    fleet: Evaluations, monkeypatch: pytest.MonkeyPatch
) -> None:
    moment = T0 + timedelta(days=1, hours=1)
    _settled(fleet, moment)
    assert fleet.session.scalar(select(FleetEvaluation.inputs)) is not None
    real = fleet_rules_module.fleet_results

    def failing(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        found.errors.append("KM-622 raised")
        return found

    monkeypatch.setattr("workers.services.fleet.fleet_results", failing)
    load_advisories(fleet.session, parse_advisories(LOG4J), loaded_by="test")
    for _ in range(2):
        outcome = evaluate_fleet(fleet.session, rules=fleet.rules, timeout_seconds=60, now=moment)
        assert not outcome.skipped and outcome.errors == ["KM-622 raised"]
        assert fleet.session.scalar(select(FleetEvaluation.inputs)) is None


def test_the_inventory_row_carries_the_digest_of_its_uses(
    any_db_session: Session, rules_engine: EngineHandle
) -> None:
    """Each cluster's row holds the digest of its uses: equal uses (another workload name
    aside), equal digests; the row of a state left behind is not the cluster's."""
    session = any_db_session
    for cluster_id in ("a", "b", "c"):
        make_cluster(session, cluster_id)
    _push(session, "a", [_app("2.10.0")], T0)
    _push(session, "b", [_app("2.10.0", tier="front")], T0)  # a label: the same uses
    _push(session, "c", [_app("2.11.0")], T0)
    evaluate_fleet(session, rules=rules_engine, timeout_seconds=60, now=T0)
    digests = inventory_digests(session, ["a", "b", "c"])
    assert digests["a"] == digests["b"] != digests["c"]
    stored = session.scalars(
        select(RuleResultCache.uses_digest).where(
            RuleResultCache.catalogue_version.startswith(INVENTORY_CACHE)
        )
    ).all()
    assert sorted(str(d) for d in stored) == sorted(digests.values())  # none is None
    assert None not in stored
    _push(session, "c", [_app("2.12.0")], T0 + timedelta(hours=1))
    assert set(inventory_digests(session, ["a", "b", "c"])) == {"a", "b"}


@pytest.mark.postgres
def test_a_second_evaluation_waits_for_the_first(pg_engine: Any) -> None:
    """The record's row is held until the evaluation's transaction ends: another evaluation
    (here, its first statement) waits for it rather than judging beside it."""
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    from store.db import make_session_factory  # noqa: PLC0415

    factory = make_session_factory(pg_engine)
    with unit_of_work(factory) as first:
        fleet_state.hold_last_evaluation(first)
    with unit_of_work(factory) as first:
        fleet_state.hold_last_evaluation(first)
        with pytest.raises(OperationalError, match="lock timeout"), unit_of_work(factory) as second:
            second.execute(text("SET LOCAL lock_timeout = '300ms'"))
            fleet_state.hold_last_evaluation(second)


def test_a_label_round_through_the_fleet_scan_skips_the_evaluation(
    make_pipeline: Callable[..., Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task path: a fleet scan after a label-only change carries the cluster's inventory
    row over (the same uses, the same digest), and the fleet evaluation it sends is skipped
    (no inventory read, no fleet rule run); the fleet findings stay what they were."""
    pipeline = make_pipeline()
    app = _app("2.10.0")
    pipeline.push_and_process("eu", [app, deployment("db", namespace="shop", image="pg:16")])
    pipeline.push_and_process("us", [_app("2.17.1")])
    from contracts.tasks import EVALUATE_FLEET, SCAN_FLEET  # noqa: PLC0415

    for _ in range(3):
        pipeline.run.run(SCAN_FLEET)
    assert pipeline.run.run(EVALUATE_FLEET)["skipped"]
    session = pipeline.session
    session.commit()
    before = fleet_findings(session)
    relabelled = copy.deepcopy(app)
    relabelled["metadata"]["labels"]["tier"] = "front"
    pipeline.push_and_process("eu", [relabelled, deployment("db", namespace="shop", image="pg:16")])

    def unread(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the fleet evaluation judged the fleet again")

    with monkeypatch.context() as patched:
        patched.setattr("workers.services.fleet.fleet_results", unread)
        pipeline.run.run(SCAN_FLEET)
        assert pipeline.run.run(EVALUATE_FLEET)["skipped"]
    session.commit()
    assert fleet_findings(session) == before
    assert [row[2] for row in before] == ["open"]  # eu's drift


def test_the_evaluation_a_fleet_scan_sends_waits_for_its_scans(
    make_pipeline: Callable[..., Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several worker processes the evaluation may start while the fleet scan's last
    scans run: it waits until each cluster it scans has a run that ended after the fleet scan
    began (at most `FLEET_SCAN_WAIT_S`, then it goes on with what it finds)."""
    from contracts.tasks import RESCAN  # noqa: PLC0415
    from workers import jobs  # noqa: PLC0415

    pipeline = make_pipeline()
    pipeline.push_and_process("eu", [_app("2.10.0")])
    pipeline.push_and_process("us", [_app("2.17.1")])
    after = jobs.scan_id_before_fleet_scan(pipeline.ctx)
    monkeypatch.setattr(jobs, "FLEET_SCAN_WAIT_S", 0.2)
    assert not jobs.await_fleet_scan(pipeline.ctx, ["eu", "us"], after_scan_id=after)
    pipeline.run.run(RESCAN, "eu")
    assert not jobs.await_fleet_scan(pipeline.ctx, ["eu", "us"], after_scan_id=after)
    pipeline.run.run(RESCAN, "us")
    assert jobs.await_fleet_scan(pipeline.ctx, ["eu", "us"], after_scan_id=after)
    # A scan of several shards still running is not waited for (its step tasks may be queued
    # behind the evaluation); one of a single shard is (it runs in a batch, on some process).
    pipeline.push_and_process("ap", [_app("2.17.1")])
    after = jobs.scan_id_before_fleet_scan(pipeline.ctx)
    make_scan_run(pipeline.session, "ap", state="running", shard_count=2)
    pipeline.session.commit()
    assert jobs.await_fleet_scan(pipeline.ctx, ["ap"], after_scan_id=after)
    make_scan_run(pipeline.session, "us", state="running", shard_count=1)
    pipeline.session.commit()
    assert not jobs.await_fleet_scan(pipeline.ctx, ["ap", "us"], after_scan_id=after)


def test_results_nothing_changes_with_time_hold_for_ever(
    any_db_session: Session, rules_engine: EngineHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet of one cluster registered but not pushed yet (no objects, so no image, no
    since value) and no exemption: the record holds until an input changes, however late
    the next evaluation; the cluster's first push is such a change."""
    session = any_db_session
    make_cluster(session, "empty")
    fleet = Evaluations(session, rules_engine, monkeypatch)
    assert not fleet.skipped(T0)  # nothing recorded yet
    assert session.scalar(select(FleetEvaluation.valid_until)) is None
    assert fleet.skipped(T0 + timedelta(days=10_000))
    _push(session, "empty", [_app("2.10.0")], T0)
    assert not fleet.skipped(T0 + timedelta(days=10_000))
