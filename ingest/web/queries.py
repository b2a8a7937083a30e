"""Read models of the admin pages: a few grouped queries per page, never one query per row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from contracts.severity import Severity
from store.models import Cluster, Finding, KubeObject, ScanRun, TelemetryPing
from store.telemetry import latest_ping_id

OPEN_STATUSES = ("new", "open")
SEVERITIES = tuple(s.value for s in Severity)
TREND_SCANS = 8


@dataclass(slots=True)
class FleetRow:
    """One cluster on the fleet overview (plain values: no ORM objects to hydrate)."""

    cluster_id: str
    team: str | None
    status: str
    received_at: datetime | None
    agent_version: str | None
    kubernetes_version: str | None
    collection_errors: int
    health: str  # healthy | stale | errors | never | disabled
    open_by_severity: dict[str, int]
    trend: list[int] = field(default_factory=list)
    age_minutes: int | None = None

    @property
    def open_total(self) -> int:
        return sum(self.open_by_severity.values())

    @property
    def severity_counts(self) -> list[int]:
        return [self.open_by_severity.get(s, 0) for s in SEVERITIES]

    @property
    def sparkline(self) -> str:
        return sparkline(self.trend)


def health_of(
    *, status: str, received_at: datetime | None, errors: int, now: datetime, stale_after: timedelta
) -> str:
    if status != "active":
        return "disabled"
    if received_at is None:
        return "never"
    if now - received_at > stale_after:
        return "stale"
    if errors:
        return "errors"
    return "healthy"


def open_counts_by_cluster(session: Session) -> dict[str, dict[str, int]]:
    """Open findings per cluster and severity: one row per cluster (FILTER aggregates)."""
    open_findings = Finding.status.in_(OPEN_STATUSES)
    rows = session.execute(
        select(
            Finding.cluster_id,
            *(func.count().filter(Finding.severity == severity) for severity in SEVERITIES),
        )
        .where(open_findings)
        .group_by(Finding.cluster_id)
    )
    return {
        cluster_id: dict(zip(SEVERITIES, (int(n) for n in counts), strict=True))
        for cluster_id, *counts in rows
    }


def open_after_scan(counts: dict[str, Any]) -> int:
    """Open findings a finished scan left (its new plus still-open findings)."""
    return int(counts.get("new", 0) or 0) + int(counts.get("open", 0) or 0)


def recent_trends(session: Session, *, scans: int = TREND_SCANS) -> dict[str, list[int]]:
    """Per cluster, open findings after each of its last `scans` finished scans, oldest first.

    The count is read inside the database (JSON field access works on both engines), so only
    integers cross the wire.
    """
    open_count = func.coalesce(ScanRun.counts["new"].as_integer(), 0) + func.coalesce(
        ScanRun.counts["open"].as_integer(), 0
    )
    ranked = (
        select(
            ScanRun.cluster_id,
            ScanRun.id,
            open_count.label("open_count"),
            func.row_number()
            .over(partition_by=ScanRun.cluster_id, order_by=ScanRun.id.desc())
            .label("rank"),
        )
        .where(ScanRun.state == "done")
        .subquery()
    )
    recent = select(ranked).where(ranked.c.rank <= scans)
    trends: dict[str, list[int]] = defaultdict(list)
    if session.get_bind().dialect.name == "postgresql":
        # One row per cluster: fetching 8 rows per cluster costs more than the query.
        latest = recent.subquery()
        series = session.execute(
            select(
                latest.c.cluster_id,
                func.array_agg(aggregate_order_by(latest.c.open_count, latest.c.id)),
            ).group_by(latest.c.cluster_id)
        )
        for cluster_id, values in series:
            trends[cluster_id] = [int(v or 0) for v in values]
        return trends
    for cluster_id, _id, value, _rank in session.execute(
        recent.order_by(ranked.c.cluster_id, ranked.c.id)
    ):
        trends[cluster_id].append(int(value or 0))
    return trends


def _latest_pings(session: Session) -> list[Any]:
    """Each cluster with the columns the overview shows from its latest ping (one index
    lookup per cluster through (cluster_id, received_at))."""
    latest = latest_ping_id()
    return list(
        session.execute(
            select(
                Cluster.id,
                Cluster.team,
                Cluster.status,
                TelemetryPing.received_at,
                TelemetryPing.agent_version,
                TelemetryPing.kubernetes_version,
                TelemetryPing.errors,
            )
            .outerjoin(TelemetryPing, TelemetryPing.id == latest)
            .order_by(Cluster.id)
        )
    )


def fleet_overview(session: Session, *, now: datetime, stale_after: timedelta) -> list[FleetRow]:
    counts = open_counts_by_cluster(session)
    trends = recent_trends(session)
    rows = []
    for cid, team, status, received_at, agent, kubernetes, errors in _latest_pings(session):
        error_count = len(errors or {})
        rows.append(
            FleetRow(
                cluster_id=cid,
                team=team,
                status=status,
                received_at=received_at,
                agent_version=agent,
                kubernetes_version=kubernetes,
                collection_errors=error_count,
                health=health_of(
                    status=status,
                    received_at=received_at,
                    errors=error_count,
                    now=now,
                    stale_after=stale_after,
                ),
                open_by_severity=counts.get(cid) or dict.fromkeys(SEVERITIES, 0),
                trend=trends.get(cid, []),
                age_minutes=int((now - received_at).total_seconds() // 60) if received_at else None,
            )
        )
    return rows


def sparkline(values: Sequence[int]) -> str:
    """Unicode block sparkline of a short series (no scripts, no images)."""
    if not values:
        return ""
    blocks = "▁▂▃▄▅▆▇█"
    top = max(values) or 1
    return "".join(blocks[min(len(blocks) - 1, round(v / top * (len(blocks) - 1)))] for v in values)


@dataclass(slots=True)
class RuleGroup:
    rule_id: str
    severity: str
    findings: list[Finding]


def group_by_rule(findings: Sequence[Finding]) -> list[RuleGroup]:
    """Findings grouped by rule, most severe rule first."""
    groups: dict[str, RuleGroup] = {}
    for finding in findings:
        group = groups.setdefault(finding.rule_id, RuleGroup(finding.rule_id, finding.severity, []))
        group.findings.append(finding)
        if Severity(finding.severity).rank > Severity(group.severity).rank:
            group.severity = finding.severity
    return sorted(
        groups.values(), key=lambda g: (-Severity(g.severity).rank, -len(g.findings), g.rule_id)
    )


def object_ids_by_ref(session: Session, cluster_id: str, ref_keys: Sequence[str]) -> dict[str, int]:
    """Live object id of each reference key (for links from findings to manifests)."""
    found: dict[str, int] = {}
    keys = sorted(set(ref_keys))
    for start in range(0, len(keys), 500):
        rows = session.execute(
            select(KubeObject.ref_key, KubeObject.id).where(
                KubeObject.cluster_id == cluster_id,
                KubeObject.ref_key.in_(keys[start : start + 500]),
                KubeObject.deleted_at.is_(None),
            )
        )
        found.update({key: oid for key, oid in rows})
    return found


def object_findings(session: Session, cluster_id: str, obj: KubeObject) -> Sequence[Finding]:
    return session.scalars(
        select(Finding)
        .where(
            Finding.cluster_id == cluster_id,
            Finding.api_version == obj.api_version,
            Finding.kind == obj.kind,
            Finding.name == obj.name,
            Finding.namespace.is_(None)
            if not obj.namespace
            else Finding.namespace == obj.namespace,
            Finding.status.in_((*OPEN_STATUSES, "exempted")),
        )
        .order_by(Finding.rule_id, Finding.path)
    ).all()


def rule_findings(session: Session, rule_id: str, *, limit: int = 500) -> Sequence[Finding]:
    return session.scalars(
        select(Finding)
        .where(Finding.rule_id == rule_id, Finding.status.in_((*OPEN_STATUSES, "exempted")))
        .order_by(Finding.cluster_id, Finding.namespace, Finding.kind, Finding.name)
        .limit(limit)
    ).all()


def rule_counts_by_cluster(session: Session, rule_id: str) -> list[tuple[str, str, int]]:
    """(cluster, status, count) of a rule's active findings across the fleet."""
    rows = session.execute(
        select(Finding.cluster_id, Finding.status, func.count())
        .where(Finding.rule_id == rule_id, Finding.status.in_((*OPEN_STATUSES, "exempted")))
        .group_by(Finding.cluster_id, Finding.status)
        .order_by(Finding.cluster_id, Finding.status)
    )
    return [(c, s, int(n)) for c, s, n in rows]


def rule_sample(session: Session, rule_id: str) -> Finding | None:
    """Any finding of the rule (its title and severity when no catalogue is wired in)."""
    return session.scalar(select(Finding).where(Finding.rule_id == rule_id).limit(1))
