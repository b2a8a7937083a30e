"""A cluster's findings as plain column rows for its reports (`FindingRow`), not ORM objects.

A scan's delivery renders every finding of the cluster (thousands) into its HTML report and
PolicyReports and needs none of the ORM's identity map or change tracking: read as rows with
the `details` documents decoded once per distinct text (a few dozen per cluster: one per
rule and exemption), the read costs about a third of loading `store.models.Finding` objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Text, cast, or_, select
from sqlalchemy.orm import Session

from contracts.states import FindingStatus
from store.db import load_json
from store.findings import ACTIVE_STATUSES
from store.models import Finding


class FindingRow(NamedTuple):
    """The columns of a stored finding that its reports read (`store.models.Finding`'s names).
    `details` may be shared with other rows of the same read: read it, never change it."""

    rule_id: str
    fingerprint: str  # the finding's identity (`contracts.findings.finding_fingerprint`)
    api_version: str
    kind: str
    namespace: str | None
    name: str
    container: str | None
    path: str | None
    severity: str
    message: str
    status: FindingStatus
    exemption_id: int | None
    first_seen: datetime | None
    resolved_at: datetime | None
    last_scan_id: int | None
    details: dict[str, Any]


_COLUMNS = (
    Finding.rule_id,
    Finding.fingerprint,
    Finding.api_version,
    Finding.kind,
    Finding.namespace,
    Finding.name,
    Finding.container,
    Finding.path,
    Finding.severity,
    Finding.message,
    Finding.status,
    Finding.exemption_id,
    Finding.first_seen,
    Finding.resolved_at,
    Finding.last_scan_id,
    cast(Finding.details, Text),  # decoded below, once per distinct document
)


def finding_rows(
    session: Session,
    cluster_id: str,
    *,
    statuses: Sequence[str] = ACTIVE_STATUSES,
    resolved_in_scan: int | None = None,
) -> list[FindingRow]:
    """Findings of a cluster with the given statuses (plus those a given scan resolved),
    ordered by rule, namespace, kind, name and id."""
    condition: ColumnElement[bool] = Finding.status.in_(list(statuses))
    if resolved_in_scan is not None:
        condition = or_(
            condition,
            (Finding.status == FindingStatus.RESOLVED) & (Finding.last_scan_id == resolved_in_scan),
        )
    rows = session.connection().execute(  # Core: column rows need nothing of the ORM's
        select(*_COLUMNS)
        .where(Finding.cluster_id == cluster_id, condition)
        .order_by(Finding.rule_id, Finding.namespace, Finding.kind, Finding.name, Finding.id)
    )
    documents: dict[str | None, Any] = {}
    found = []
    for row in rows:
        text = row[-1]
        if text in documents:
            details = documents[text]
        else:
            details = documents[text] = None if text is None else load_json(text)
        found.append(_new(FindingRow, (*row[:-1], details)))
    return found


_new = tuple.__new__  # FindingRow's own __new__ without its Python frame (a tenth of a read)
