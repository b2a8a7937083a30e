"""Build a ClusterReport from the store: findings grouped per rule, new and resolved split out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.orm import Session

from contracts.states import FindingStatus
from reports.model import ClusterReport, RuleSection, ViolationLine, severity_rank
from store.clusters import get_cluster
from store.finding_rows import FindingRow, finding_rows
from store.scans import get_scan_run, latest_scan_run


def admin_link(public_url: str, cluster_id: str) -> str:
    return f"{public_url.rstrip('/')}/admin/clusters/{cluster_id}"


def _line(finding: FindingRow) -> ViolationLine:
    return ViolationLine(
        finding.api_version,
        finding.kind,
        finding.namespace,
        finding.name,
        finding.container,
        finding.path,
        finding.message,
        finding.status,
        finding.first_seen,
        finding.resolved_at,
    )


def _order(finding: FindingRow) -> tuple[str, str, str, str, str]:
    return (
        finding.namespace or "",
        finding.kind,
        finding.name,
        finding.container or "",
        finding.path or "",
    )


def group_by_rule(findings: Iterable[FindingRow]) -> tuple[RuleSection, ...]:
    """Sections per rule, most severe first; violations ordered by namespace, kind, name."""
    grouped: dict[str, list[FindingRow]] = {}
    for finding in findings:
        grouped.setdefault(finding.rule_id, []).append(finding)
    sections = []
    for rule_id, items in grouped.items():
        details = items[0].details or {}
        items.sort(key=_order)
        sections.append(
            RuleSection(
                rule_id=rule_id,
                title=str(details.get("title") or rule_id),
                severity=items[0].severity,
                cis=tuple(details.get("cis") or ()),
                pss=tuple(details.get("pss") or ()),
                violations=tuple(map(_line, items)),
            )
        )
    sections.sort(key=lambda s: (severity_rank(s.severity), s.rule_id))
    return tuple(sections)


def build_cluster_report(
    session: Session,
    cluster_id: str,
    *,
    public_url: str,
    scan_id: int | None = None,
    findings: Sequence[FindingRow] | None = None,
) -> ClusterReport:
    """The report of a cluster after a scan (the latest finished one by default).
    `findings`: the cluster's `finding_rows(..., resolved_in_scan=scan_id)`, when the
    caller read them already (a scan's delivery writes two reports of them), or the part of
    them the caller's sections need (a delivery's content reads only the news); the sections
    are built of what is given, the counts are the scan run's."""
    cluster = get_cluster(session, cluster_id)
    run = get_scan_run(session, scan_id) if scan_id else latest_scan_run(session, cluster_id)
    scan = run.id if run else None
    if findings is None:
        findings = finding_rows(session, cluster_id, resolved_in_scan=scan)
    unresolved = FindingStatus.unresolved()
    active = [f for f in findings if f.status in unresolved]
    new = [f for f in active if f.status == FindingStatus.NEW and f.last_scan_id == scan]
    resolved = [f for f in findings if f.status == FindingStatus.RESOLVED]
    exempted = [f for f in findings if f.status == FindingStatus.EXEMPTED]
    return ClusterReport(
        cluster_id=cluster.id,
        display_name=cluster.display_name,
        team=cluster.team,
        scan_id=scan,
        scanned_at=run.finished_at if run else None,
        admin_url=admin_link(public_url, cluster.id),
        counts=dict(run.counts) if run else {},
        rules=group_by_rule(active),
        exempted=group_by_rule(exempted),
        new=group_by_rule(new),
        resolved=group_by_rule(resolved),
    )
