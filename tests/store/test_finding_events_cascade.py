"""A finding's events go with it (migration 0013's trigger, which replaced the foreign keys),
and a cluster's findings with the cluster (migration 0016's): deleting findings (the purge of
resolved ones) or their cluster deletes their events, and nothing else's, on PostgreSQL and
SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from contracts.resources import ResourceRef
from contracts.timeline import FindingEventKind
from store.findings import ObservedFinding, reconcile_findings
from store.models import Cluster, Finding, FindingEvent


def _scanned(session: Session, cluster_id: str, names: list[str]) -> None:
    session.add(Cluster(id=cluster_id, display_name=cluster_id))
    session.flush()
    reconcile_findings(
        session,
        cluster_id,
        scan_id=None,
        observed=[
            ObservedFinding(
                fingerprint=f"{cluster_id}-{name}",
                rule_id="KM-001",
                ref=ResourceRef("v1", "Pod", "default", name),
                container=None,
                path=None,
                content_hash=None,
                severity="high",
                message="m",
            )
            for name in names
        ],
        evaluated=lambda _finding: True,
    )


def _events(session: Session, cluster_id: str) -> int:
    query = select(func.count()).select_from(FindingEvent)
    return int(session.scalar(query.where(FindingEvent.cluster_id == cluster_id)) or 0)


def test_deleting_findings_deletes_their_events_only(any_db_session: Session) -> None:
    session = any_db_session
    _scanned(session, "ev-a", ["p1", "p2", "p3"])
    _scanned(session, "ev-b", ["p1"])
    assert (_events(session, "ev-a"), _events(session, "ev-b")) == (3, 1)
    kinds = set(session.scalars(select(FindingEvent.event)))
    assert kinds == {FindingEventKind.OPENED}

    session.execute(delete(Finding).where(Finding.fingerprint.in_(["ev-a-p1", "ev-a-p2"])))
    assert (_events(session, "ev-a"), _events(session, "ev-b")) == (1, 1)
    kept = session.scalar(
        select(Finding.fingerprint)
        .join(FindingEvent, FindingEvent.finding_id == Finding.id)
        .where(FindingEvent.cluster_id == "ev-a")
    )
    assert kept == "ev-a-p3"


def test_deleting_a_cluster_deletes_its_findings_events(any_db_session: Session) -> None:
    session = any_db_session
    _scanned(session, "ev-c", ["p1", "p2"])
    _scanned(session, "ev-d", ["p1"])
    session.execute(delete(Cluster).where(Cluster.id == "ev-c"))
    assert (_events(session, "ev-c"), _events(session, "ev-d")) == (0, 1)
    assert session.scalar(select(func.count()).select_from(Finding)) == 1


def test_findings_of_a_missing_cluster_are_refused(any_db_session: Session) -> None:
    """Migration 0016 dropped `findings.cluster_id`'s foreign key: the writer checks (and
    key-share locks) the cluster once instead, so no finding outlives its cluster."""
    session = any_db_session
    with pytest.raises(LookupError, match="ev-gone"):
        reconcile_findings(
            session,
            "ev-gone",
            scan_id=None,
            observed=[
                ObservedFinding(
                    fingerprint="ev-gone-p1",
                    rule_id="KM-001",
                    ref=ResourceRef("v1", "Pod", "default", "p1"),
                    container=None,
                    path=None,
                    content_hash=None,
                    severity="high",
                    message="m",
                )
            ],
            evaluated=lambda _finding: True,
        )
    assert session.scalar(select(func.count()).select_from(Finding)) == 0
