"""reconcile_findings on its own: every lifecycle transition and what it counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

import store.findings as findings_module
from contracts.resources import ResourceRef
from store.findings import ObservedFinding, fingerprint, reconcile_findings
from store.models import Finding, FindingEvent
from store.types import utcnow
from tests.support.factories import make_cluster, make_exemption


def _seen(name: str, *, exempted: bool = False, exemption_id: int | None = None, message="m"):
    ref = ResourceRef("apps/v1", "Deployment", "shop", name)
    return ObservedFinding(
        fingerprint=fingerprint(rule_id="KM-101", ref_key=ref.key, container="app", path="$.x"),
        rule_id="KM-101",
        ref=ref,
        container="app",
        path="$.x",
        content_hash="h",
        severity="high",
        message=message,
        exempted=exempted,
        exemption_id=exemption_id,
    )


def _statuses(session: Session) -> dict[str, str]:
    session.expire_all()  # reconcile writes in bulk, past the identity map
    rows = session.scalars(select(Finding).where(Finding.cluster_id == "rc")).all()
    return {row.name: row.status for row in rows}


def test_every_lifecycle_transition(db_session: Session) -> None:
    session = db_session
    make_cluster(session, "rc")
    exemption = make_exemption(session, cluster_id="rc")
    at = utcnow()

    def scan(scan_id: int, observed, evaluated=lambda _f: True):
        return reconcile_findings(
            session,
            "rc",
            scan_id=scan_id,
            observed=observed,
            evaluated=evaluated,
            at=at + timedelta(minutes=scan_id),
        )

    first = scan(1, [_seen("a"), _seen("b"), _seen("c", exempted=True, exemption_id=exemption.id)])
    assert (first.new, first.exempted, first.open, first.resolved) == (2, 1, 0, 0)
    assert _statuses(session) == {"a": "new", "b": "new", "c": "exempted"}
    row_c = session.scalars(select(Finding).where(Finding.name == "c")).one()
    assert row_c.exemption_id == exemption.id

    # b is gone from an evaluated object: resolved; c lost its exemption: open again.
    second = scan(2, [_seen("a"), _seen("c")])
    assert (second.open, second.resolved, second.unexempted) == (2, 1, 1)
    assert _statuses(session) == {"a": "open", "b": "resolved", "c": "open"}

    # a's object could not be evaluated: its finding is kept untouched, not resolved.
    third = scan(3, [_seen("c"), _seen("b")], evaluated=lambda f: f.ref.name != "a")
    assert third.kept_unevaluated == 1 and third.resolved == 0
    assert third.reopened == 1 and third.new == 1  # b came back: new again
    assert _statuses(session) == {"a": "open", "b": "new", "c": "open"}

    # A changed message is written; the same fingerprint twice counts once.
    fourth = scan(4, [_seen("a", message="changed"), _seen("a"), _seen("b"), _seen("c")])
    assert fourth.open == 3 and fourth.new == 0
    session.expire_all()
    row_a = session.scalars(select(Finding).where(Finding.name == "a")).one()
    assert row_a.message == "changed" and row_a.last_scan_id == 4


def _seen_rule(rule_id: str, name: str) -> ObservedFinding:
    ref = ResourceRef("apps/v1", "Deployment", "shop", name)
    return ObservedFinding(
        fingerprint=fingerprint(rule_id=rule_id, ref_key=ref.key, container=None, path=None),
        rule_id=rule_id,
        ref=ref,
        container=None,
        path=None,
        content_hash=None,
        severity="high",
        message="m",
    )


def test_scoped_to_rules_leaves_other_findings_unread(db_session: Session) -> None:
    """`rule_ids`: findings of other rules are neither read, resolved nor counted, and the
    scoped rules' findings go through the same lifecycle as unscoped (a resolved one that
    comes back is found by its fingerprint and reopened)."""
    session = db_session
    make_cluster(session, "rc")
    at = utcnow()
    first = reconcile_findings(
        session,
        "rc",
        scan_id=1,
        observed=[_seen_rule("KM-101", "a"), _seen_rule("KM-900", "f"), _seen_rule("KM-900", "g")],
        evaluated=lambda _f: True,
        at=at,
    )
    assert first.new == 3
    asked: list[str] = []

    def evaluated(finding) -> bool:
        asked.append(finding.rule_id)
        return True

    # Only KM-900 findings are the caller's: g is no longer seen (resolved), a is not read.
    second = reconcile_findings(
        session,
        "rc",
        scan_id=None,
        observed=[_seen_rule("KM-900", "f")],
        evaluated=evaluated,
        at=at + timedelta(minutes=1),
        rule_ids={"KM-900"},
    )
    assert (second.open, second.resolved, second.kept_unevaluated) == (1, 1, 0)
    assert asked == ["KM-900"]
    assert _statuses(session) == {"a": "new", "f": "open", "g": "resolved"}
    third = reconcile_findings(
        session,
        "rc",
        scan_id=None,
        observed=[_seen_rule("KM-900", "f"), _seen_rule("KM-900", "g")],
        evaluated=evaluated,
        at=at + timedelta(minutes=2),
        rule_ids={"KM-900"},
    )
    assert (third.reopened, third.new, third.open) == (1, 1, 1)
    assert _statuses(session) == {"a": "new", "f": "open", "g": "new"}


TRICKY = "tab\there\nnew line\r\\N back\\slash \\t é \U0001f600 \x01"


def test_new_findings_and_their_events_stored_exactly_without_reading_them_back(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan's new findings (PostgreSQL) are COPYed with ids taken from the sequence first,
    so their opening events name them without a query reading the new rows back; every
    value is stored exactly (COPY's special characters, NULLs, JSON, times). Should one of
    the fingerprints have been stored meanwhile by another transaction, the rows go the
    general way and only the findings this reconciliation inserted get an event."""
    session = db_session
    make_cluster(session, "rc")
    at = utcnow()
    items = [
        _seen("a", message=TRICKY),
        _seen("b")._replace(container=None, path=None, content_hash=None),
        _seen_rule("KM-900", "c")._replace(details={"title": TRICKY, "cis": ["5.1"]}),
    ]
    versions = {items[0].ref.key: 41, items[2].ref.key: 43}
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    engine = session.get_bind().engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        result = reconcile_findings(
            session,
            "rc",
            scan_id=7,
            observed=items,
            evaluated=lambda _f: True,
            at=at,
            versions=versions,
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert result.new == 3
    assert not [s for s in statements if "findings.last_scan_id =" in s], statements
    session.expire_all()
    rows = {f.name: f for f in session.scalars(select(Finding).where(Finding.cluster_id == "rc"))}
    assert rows["a"].message == TRICKY and rows["a"].container == "app"
    assert rows["a"].path == "$.x" and rows["a"].content_hash == "h"
    assert rows["b"].container is None and rows["b"].path is None and rows["b"].content_hash is None
    assert rows["c"].details == {"title": TRICKY, "cis": ["5.1"]} and rows["c"].rule_id == "KM-900"
    for name, item in zip("abc", items, strict=True):
        row = rows[name]
        assert (row.fingerprint, row.status, row.last_scan_id) == (item.fingerprint, "new", 7)
        assert row.first_seen == at and row.last_seen == at and row.resolved_at is None
    events = session.execute(
        select(FindingEvent.finding_id, FindingEvent.event, FindingEvent.version_id)
        .where(FindingEvent.cluster_id == "rc", FindingEvent.scan_id == 7, FindingEvent.at == at)
        .order_by(FindingEvent.id)
    ).all()
    assert events == [
        (rows["a"].id, "opened", 41),
        (rows["b"].id, "opened", None),
        (rows["c"].id, "opened", 43),
    ]

    # Another transaction stored d's fingerprint after this one looked (`_existing` saw none).
    raced = _seen("d")
    session.add(
        Finding(
            cluster_id="rc",
            fingerprint=raced.fingerprint,
            rule_id="KM-101",
            api_version="apps/v1",
            kind="Deployment",
            namespace="shop",
            name="d",
            severity="high",
            message="theirs",
            status="new",
            last_scan_id=99,
            details={},
        )
    )
    session.flush()
    monkeypatch.setattr(findings_module, "_existing", lambda *_a, **_k: {})
    second = reconcile_findings(
        session,
        "rc",
        scan_id=8,
        observed=[raced, _seen("e")],
        evaluated=lambda _f: True,
        at=at + timedelta(minutes=1),
    )
    assert second.new == 2  # as it saw them
    session.expire_all()
    rows = {f.name: f for f in session.scalars(select(Finding).where(Finding.cluster_id == "rc"))}
    assert rows["d"].message == "theirs" and rows["e"].last_scan_id == 8
    opened = session.scalars(select(FindingEvent.finding_id).where(FindingEvent.scan_id == 8)).all()
    assert opened == [rows["e"].id]


def test_findings_of_a_changed_body_move_to_it_as_a_full_update_would(
    any_db_session: Session,
) -> None:
    """Findings seen again, open, on an object whose body changed and nothing else (a label
    change) get the new content hash, status open, last_seen, last scan and the observed
    details (each distinct mapping sent once on PostgreSQL), and keep every other column;
    a finding whose message changed as well goes the general way."""
    session = any_db_session
    make_cluster(session, "rc")
    at = utcnow()
    shared = {"title": TRICKY, "cis": ["5.1"], "source": "object"}
    first = [_seen(name)._replace(details={"old": name}) for name in "abc"]
    reconcile_findings(session, "rc", scan_id=1, observed=first, evaluated=lambda _f: True, at=at)
    before = {
        f.name: (f.id, f.first_seen, f.severity, f.exemption_id, f.resolved_at)
        for f in session.scalars(select(Finding).where(Finding.cluster_id == "rc"))
    }
    later = at + timedelta(minutes=5)
    moved = [
        _seen("a")._replace(content_hash="h2", details=shared),
        _seen("b")._replace(content_hash=None, details=shared),
        _seen("c", message="changed")._replace(content_hash="h3", details={"own": 1}),
    ]
    result = reconcile_findings(
        session, "rc", scan_id=2, observed=moved, evaluated=lambda _f: True, at=later
    )
    assert (result.open, result.new, result.resolved) == (3, 0, 0)
    session.expire_all()
    rows = {f.name: f for f in session.scalars(select(Finding).where(Finding.cluster_id == "rc"))}
    for name, item in zip("abc", moved, strict=True):
        row = rows[name]
        assert (row.status, row.content_hash, row.message) == (
            "open",
            item.content_hash,
            item.message,
        )
        assert (row.last_seen, row.last_scan_id, row.details) == (later, 2, item.details)
        assert (row.id, row.first_seen, row.severity, row.exemption_id, row.resolved_at) == before[
            name
        ]
