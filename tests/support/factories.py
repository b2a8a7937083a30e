"""Test factories: clusters, findings, exemptions and scan runs with sensible defaults.

Each factory adds one row through the store's own functions where one exists (so its checks
run), flushes, and returns the ORM object. Only what a test cares about needs to be given.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from contracts.findings import finding_fingerprint
from contracts.states import FindingStatus, ScanState
from store.clusters import create_cluster
from store.exemptions import create_exemption
from store.models import Cluster, Exemption, Finding, ScanRun
from store.types import utcnow

_numbers = itertools.count(1)


def make_cluster(
    session: Session,
    cluster_id: str | None = None,
    *,
    team: str | None = None,
    display_name: str | None = None,
    channel: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Cluster:
    """A registered, active cluster (a unique id when none is given)."""
    return create_cluster(
        session,
        cluster_id or f"c-{uuid.uuid4().hex[:10]}",
        team=team,
        display_name=display_name,
        channel=channel,
        labels=labels,
    )


def make_finding(
    session: Session,
    cluster_id: str,
    *,
    rule_id: str = "KM-101",
    name: str | None = None,
    kind: str = "Deployment",
    api_version: str = "apps/v1",
    namespace: str | None = "ns",
    container: str | None = None,
    path: str | None = None,
    severity: str = "high",
    status: str = FindingStatus.NEW,
    message: str = "m",
    fingerprint: str | None = None,
    **fields: Any,
) -> Finding:
    """A finding row; its fingerprint is the real one for its rule and resource."""
    name = name or f"obj-{next(_numbers)}"
    if fingerprint is None:
        ref_key = f"{api_version}|{kind}|{namespace or ''}|{name}"
        fingerprint = finding_fingerprint(
            rule_id=rule_id, ref_key=ref_key, container=container, path=path
        )
    finding = Finding(
        cluster_id=cluster_id,
        fingerprint=fingerprint,
        rule_id=rule_id,
        api_version=api_version,
        kind=kind,
        namespace=namespace,
        name=name,
        container=container,
        path=path,
        severity=severity,
        message=message,
        status=status,
        details=fields.pop("details", {}),
        **fields,
    )
    session.add(finding)
    session.flush()
    return finding


def make_exemption(
    session: Session,
    *,
    rule_ids: Sequence[str] = ("KM-101",),
    reason: str = "accepted risk",
    created_by: str = "tests",
    cluster_id: str | None = None,
    selector: Mapping[str, Any] | None = None,
    expires_at: datetime | None = None,
) -> Exemption:
    """A database exemption, created through `store.exemptions` (so its checks apply)."""
    return create_exemption(
        session,
        rule_ids=list(rule_ids),
        reason=reason,
        created_by=created_by,
        cluster_id=cluster_id,
        selector=selector or {},
        expires_at=expires_at,
    )


def make_scan_run(
    session: Session,
    cluster_id: str,
    *,
    state: str = ScanState.DONE,
    counts: Mapping[str, int] | None = None,
    errors: Sequence[Mapping[str, Any]] = (),
    **fields: Any,
) -> ScanRun:
    """A scan run row (finished by default)."""
    run = ScanRun(
        cluster_id=cluster_id,
        state=state,
        counts=dict(counts or {}),
        errors=[dict(e) for e in errors],
        **fields,
    )
    session.add(run)
    session.flush()
    return run


def make_failed_scan(session: Session, cluster_id: str, *, reason: str, redrives: int = 0) -> int:
    """A scan run the watchdog failed with `reason`, committed; its id."""
    now = utcnow()
    run = make_scan_run(
        session,
        cluster_id,
        state=ScanState.FAILED,
        started_at=now,
        finished_at=now,
        failure_reason=reason,
        redrives=redrives,
    )
    session.commit()
    return run.id
