"""Findings and their events as plain rows: what a test compares before and after a write."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Finding, FindingEvent

FLEET_RULES = ("KM-621", "KM-622")


def findings_and_events(session: Session, *, refreshed: bool = True) -> list[tuple[object, ...]]:
    """Every finding, then every event. Without `refreshed`, not the columns an evaluation
    that writes nothing leaves as they were (`last_seen`, `last_scan_id`: a skipped fleet
    evaluation does not refresh an exempted finding's, as no evaluation refreshes an open
    one's)."""
    session.expire_all()
    columns = [
        Finding.cluster_id,
        Finding.fingerprint,
        Finding.status,
        Finding.severity,
        Finding.message,
        Finding.content_hash,
        Finding.exemption_id,
        Finding.first_seen,
        Finding.resolved_at,
    ]
    if refreshed:
        columns += [Finding.last_seen, Finding.last_scan_id]
    rows = session.execute(select(*columns).order_by(Finding.cluster_id, Finding.fingerprint))
    events = session.execute(
        select(FindingEvent.cluster_id, FindingEvent.event, FindingEvent.at).order_by(
            FindingEvent.id
        )
    )
    return [tuple(r) for r in rows] + [tuple(r) for r in events]


def fleet_findings(session: Session) -> list[tuple[object, ...]]:
    """The fleet rules' findings: cluster, workload name, status, message, first seen and
    resolved."""
    session.expire_all()
    rows = session.execute(
        select(
            Finding.cluster_id,
            Finding.name,
            Finding.status,
            Finding.message,
            Finding.first_seen,
            Finding.resolved_at,
        )
        .where(Finding.rule_id.in_(FLEET_RULES))
        .order_by(Finding.cluster_id, Finding.fingerprint)
    )
    return [tuple(r) for r in rows]
