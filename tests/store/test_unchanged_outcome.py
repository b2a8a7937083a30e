"""store.findings.unchanged_outcome: it answers (without a query) exactly when
reconcile_findings would write nothing, with the counts that reconcile gives."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from contracts.resources import ResourceRef
from store.findings import (
    ObservedFinding,
    active_findings,
    fingerprint,
    reconcile_findings,
    unchanged_outcome,
)
from store.types import utcnow
from tests.support.factories import make_cluster, make_exemption
from tests.support.finding_rows import findings_and_events

RULES = ("KM-621", "KM-622")


def _seen(name: str, rule_id: str = "KM-621", **changes: Any) -> ObservedFinding:
    ref = ResourceRef("apps/v1", "Deployment", "shop", name)
    fields: dict[str, Any] = {
        "fingerprint": fingerprint(rule_id=rule_id, ref_key=ref.key, container="app", path="$.x"),
        "rule_id": rule_id,
        "ref": ref,
        "container": "app",
        "path": "$.x",
        "content_hash": "h",
        "severity": "low",
        "message": "m",
    }
    return ObservedFinding(**{**fields, **changes})


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("the same again", True),
        ("a second sighting of a new finding", False),
        ("one more observed", False),
        ("one fewer observed", False),
        ("an observation exempted", False),
        ("a stored one exempted", False),
        ("another severity", False),
        ("another message", False),
        ("another content hash", False),
        ("a resolved one back", False),
        ("nothing stored, nothing seen", True),
    ],
)
def test_unchanged_outcome_is_what_reconcile_would_do(
    any_db_session: Session, case: str, expected: bool
) -> None:
    session = any_db_session
    make_cluster(session, "rc")
    make_cluster(session, "other")
    exemption = make_exemption(session, rule_ids=["KM-621"], cluster_id="rc")
    at = utcnow()

    def reconcile(cluster_id: str, observed: list[ObservedFinding], minutes: int):
        return reconcile_findings(
            session,
            cluster_id,
            scan_id=None,
            observed=observed,
            evaluated=lambda _f: True,
            at=at + timedelta(minutes=minutes),
            rule_ids=RULES,
        )

    base = [_seen("a"), _seen("b", "KM-622")]
    exempted = [base[0]._replace(exempted=True, exemption_id=exemption.id), base[1]]
    reconcile("other", [_seen("a")], 0)  # another cluster's findings are not this one's
    if case != "nothing stored, nothing seen":
        reconcile("rc", base, 0)
        if case != "a second sighting of a new finding":
            reconcile("rc", base, 1)  # new -> open
    if case == "a stored one exempted":
        reconcile("rc", exempted, 2)
    if case == "a resolved one back":
        reconcile("rc", base[:1], 2)  # b resolved, seen again below
    observed = {
        "the same again": base,
        "a second sighting of a new finding": base,
        "one more observed": [*base, _seen("c")],
        "one fewer observed": base[:1],
        "an observation exempted": exempted,
        "a stored one exempted": exempted,  # exempted again: its last_seen is written
        "another severity": [base[0]._replace(severity="high"), base[1]],
        "another message": [base[0]._replace(message="m2"), base[1]],
        "another content hash": [base[0]._replace(content_hash="h2"), base[1]],
        "a resolved one back": base,
        "nothing stored, nothing seen": [],
    }[case]

    stored = active_findings(session, rule_ids=RULES)
    assert set(stored.get("other", {})) == {_seen("a").fingerprint}
    predicted = unchanged_outcome(stored.get("rc", {}), [*observed, *observed[:1]])
    before = findings_and_events(session)
    outcome = reconcile("rc", observed, 10)
    after = findings_and_events(session)
    assert (predicted is not None) is expected
    if predicted is not None:
        assert predicted.as_counts() == outcome.as_counts()
        assert after == before  # reconcile wrote nothing
    else:
        assert after != before  # reconcile wrote something: it could not be skipped
