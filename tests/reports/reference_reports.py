"""The reports a scan's delivery writes, as they were written before they were made fast
(2026-12: ORM rows, `html.escape` per cell, `json.dumps`): the reference that
`workers.services.delivery.write_cluster_html` must match: the HTML byte for byte, the
PolicyReports as the same JSON document (now written as UTF-8 rather than escaped to ASCII).
An intended change of the reports' content changes this copy with it."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from html import escape
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from contracts.findings import finding_fingerprint
from contracts.resources import resource_key
from contracts.severity import Severity
from contracts.states import FindingStatus
from reports.formats.policyreport import API_VERSION, MANAGED_BY, SOURCE, _name
from reports.html import _CSS
from reports.model import ClusterReport, RuleSection, ViolationLine, severity_rank
from reports.wording import count_summary
from store.clusters import get_cluster
from store.findings import ACTIVE_STATUSES
from store.models import Finding
from store.scans import get_scan_run


def reference_files(
    session: Session, cluster_id: str, *, scan_id: int, public_url: str, now: dt.datetime
) -> tuple[bytes, dict[str, Any]]:
    """The HTML report of the scan, as bytes, and its PolicyReports' JSON `List` document."""
    findings = cluster_findings(session, cluster_id, resolved_in_scan=scan_id)
    html = _render_html(_build(session, cluster_id, scan_id=scan_id, public_url=public_url))
    active = [f for f in findings if f.status in FindingStatus.active()]
    documents = _policy_reports([_finding_dict(f) for f in active], now=now)
    listing = {"apiVersion": "v1", "kind": "List", "items": documents}
    return html.encode("utf-8"), listing


def reference_content(
    session: Session, cluster_id: str, *, scan_id: int, public_url: str
) -> dict[str, Any]:
    """A delivery's content: the scan's report without its open and exempted sections."""
    report = _build(session, cluster_id, scan_id=scan_id, public_url=public_url)
    return replace(report, rules=(), exempted=()).to_dict()


def _line(finding: Finding) -> ViolationLine:
    return ViolationLine(
        api_version=finding.api_version,
        kind=finding.kind,
        namespace=finding.namespace,
        name=finding.name,
        container=finding.container,
        path=finding.path,
        message=finding.message,
        status=finding.status,
        first_seen=finding.first_seen,
        resolved_at=finding.resolved_at,
    )


def _group_by_rule(findings: list[Finding]) -> tuple[RuleSection, ...]:
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.rule_id, []).append(finding)
    sections = []
    for rule_id, items in grouped.items():
        details = items[0].details or {}
        items.sort(
            key=lambda f: (f.namespace or "", f.kind, f.name, f.container or "", f.path or "")
        )
        sections.append(
            RuleSection(
                rule_id=rule_id,
                title=str(details.get("title") or rule_id),
                severity=items[0].severity,
                cis=tuple(details.get("cis") or ()),
                pss=tuple(details.get("pss") or ()),
                violations=tuple(_line(f) for f in items),
            )
        )
    sections.sort(key=lambda s: (severity_rank(s.severity), s.rule_id))
    return tuple(sections)


def _build(session: Session, cluster_id: str, *, scan_id: int, public_url: str) -> ClusterReport:
    cluster = get_cluster(session, cluster_id)
    run = get_scan_run(session, scan_id)
    scan = run.id if run else None
    findings = cluster_findings(session, cluster_id, resolved_in_scan=scan)
    active = [f for f in findings if f.status in FindingStatus.unresolved()]
    new = [f for f in active if f.status == FindingStatus.NEW and f.last_scan_id == scan]
    resolved = [f for f in findings if f.status == FindingStatus.RESOLVED]
    exempted = [f for f in findings if f.status == FindingStatus.EXEMPTED]
    return ClusterReport(
        cluster_id=cluster.id,
        display_name=cluster.display_name,
        team=cluster.team,
        scan_id=scan,
        scanned_at=run.finished_at if run else None,
        admin_url=f"{public_url.rstrip('/')}/admin/clusters/{cluster.id}",
        counts=dict(run.counts) if run else {},
        rules=_group_by_rule(active),
        exempted=_group_by_rule(exempted),
        new=_group_by_rule(new),
        resolved=_group_by_rule(resolved),
    )


def _rule_table(section: RuleSection) -> str:
    cis = ", ".join(section.cis) or "-"
    rows = "".join(
        "<tr>"
        f"<td>{escape(v.kind)}</td><td>{escape(v.namespace or '-')}</td>"
        f"<td>{escape(v.name)}</td><td>{escape(v.container or '-')}</td>"
        f"<td><code>{escape(v.path or '-')}</code></td><td>{escape(v.message)}</td>"
        f"<td>{escape(v.status)}</td></tr>"
        for v in section.violations
    )
    return (
        f"<h3><span class='sev {escape(section.severity)}'>{escape(section.severity)}</span> "
        f"{escape(section.rule_id)} {escape(section.title)} "
        f"<small>CIS {escape(cis)}</small></h3>"
        "<table><tr><th>Kind</th><th>Namespace</th><th>Name</th><th>Container</th>"
        f"<th>Path</th><th>Message</th><th>Status</th></tr>{rows}</table>"
    )


def _render_html(report: ClusterReport) -> str:
    counts = report.counts
    summary = (
        f"<td><b>{escape(count_summary(counts))}</b></td>"
        f"<td><b>{escape(str(counts.get('objects', 0)))}</b> objects</td>"
    )
    when = report.scanned_at.isoformat() if report.scanned_at else "never"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>k8s-monitor: {escape(report.display_name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Cluster {escape(report.display_name)} <small>({escape(report.cluster_id)})</small>"
        "</h1>",
        f"<p>Team: {escape(report.team or '-')} &middot; scan #{report.scan_id} at "
        f"{escape(when)} &middot; <a href='{escape(report.admin_url)}'>admin page</a></p>",
        f"<table class='summary'><tr>{summary}</tr></table>",
    ]
    for title, sections in (
        ("New", report.new),
        ("Open findings", report.rules),
        ("Resolved by this scan", report.resolved),
        ("Exempted", report.exempted),
    ):
        if sections:
            parts.append(f"<h2>{escape(title)}</h2>")
            parts.extend(_rule_table(s) for s in sections)
    parts.append("</body></html>")
    return "".join(parts)


def _finding_dict(finding: Finding) -> dict[str, Any]:
    details = finding.details or {}
    exemption = details.get("exemption")
    ref_key = resource_key(finding.api_version, finding.kind, finding.namespace, finding.name)
    return {
        "rule_id": finding.rule_id,
        "title": str(details.get("title") or finding.rule_id),
        "severity": finding.severity,
        "category": str(details.get("category") or ""),
        "cis": list(details.get("cis") or []),
        "pss": list(details.get("pss") or []),
        "resource": {
            "apiVersion": finding.api_version,
            "kind": finding.kind,
            "namespace": finding.namespace,
            "name": finding.name,
        },
        "container": finding.container,
        "path": finding.path or "",
        "message": finding.message,
        "status": "exempted" if finding.status == FindingStatus.EXEMPTED else "open",
        "exemption": exemption
        if isinstance(exemption, dict)
        else (
            {
                "source": "config",
                "index": None,
                "reason": f"exemption #{finding.exemption_id}",
                "owner": "",
                "expires": None,
                "status": "active",
            }
            if finding.exemption_id
            else None
        ),
        "fingerprint": finding_fingerprint(
            rule_id=finding.rule_id, ref_key=ref_key, container=finding.container, path=finding.path
        ),
    }


def _result(finding: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    res = finding["resource"]
    resource = {"apiVersion": res["apiVersion"], "kind": res["kind"], "name": res["name"]}
    if res["namespace"]:
        resource["namespace"] = res["namespace"]
    properties = {"path": finding["path"], "fingerprint": finding["fingerprint"]}
    if finding["container"]:
        properties["container"] = finding["container"]
    if finding["cis"]:
        properties["cis"] = ",".join(finding["cis"])
    if finding["pss"]:
        properties["pss"] = ",".join(finding["pss"])
    if finding["exemption"]:
        properties["exemption"] = finding["exemption"]["reason"]
    result: dict[str, Any] = {
        "source": SOURCE,
        "policy": finding["rule_id"],
        "rule": finding["title"],
        "category": finding["category"],
        "result": "skip" if finding["status"] == "exempted" else "fail",
        "scored": True,
        "message": finding["message"],
        "resources": [resource],
        "timestamp": {"seconds": int(now.timestamp()), "nanos": 0},
        "properties": properties,
    }
    if finding["severity"] in frozenset(Severity):
        result["severity"] = finding["severity"]
    return result


def _summary(results: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    for result in results:
        counts[result["result"]] += 1
    return counts


def _policy_reports(findings: list[dict[str, Any]], *, now: dt.datetime) -> list[dict[str, Any]]:
    by_namespace: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for finding in findings:
        by_namespace[finding["resource"]["namespace"]].append(_result(finding, now))
    documents = []
    for namespace in sorted(ns for ns in by_namespace if ns):
        results = by_namespace[namespace]
        documents.append(
            {
                "apiVersion": API_VERSION,
                "kind": "PolicyReport",
                "metadata": {
                    "name": _name(namespace),
                    "namespace": namespace,
                    "labels": dict(MANAGED_BY),
                },
                "summary": _summary(results),
                "results": results,
            }
        )
    cluster_results = by_namespace.get(None, [])
    documents.append(
        {
            "apiVersion": API_VERSION,
            "kind": "ClusterPolicyReport",
            "metadata": {"name": _name("cluster"), "labels": dict(MANAGED_BY)},
            "summary": _summary(cluster_results),
            "results": cluster_results,
        }
    )
    return documents


def cluster_findings(
    session: Session, cluster_id: str, *, resolved_in_scan: int | None
) -> Sequence[Finding]:
    """The findings the reports read (active ones and those the scan resolved), as ORM rows."""
    condition: ColumnElement[bool] = Finding.status.in_(list(ACTIVE_STATUSES))
    if resolved_in_scan is not None:
        condition = or_(
            condition,
            (Finding.status == FindingStatus.RESOLVED) & (Finding.last_scan_id == resolved_in_scan),
        )
    return session.scalars(
        select(Finding)
        .where(Finding.cluster_id == cluster_id, condition)
        .order_by(Finding.rule_id, Finding.namespace, Finding.kind, Finding.name, Finding.id)
    ).all()
