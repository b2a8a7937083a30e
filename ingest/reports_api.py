"""Cluster reports served by the admin API: JSON (the scan contract), SARIF, PolicyReport, HTML.

Built from the stored findings through `reports`; rule descriptors for SARIF come from the
metadata each finding carries (ingest never imports the rules package).
"""

from __future__ import annotations

from collections import Counter

from flask import Response
from sqlalchemy.orm import Session

from contracts.findings import Finding as FindingDict
from contracts.findings import RuleInfo, ScanReport
from reports.build import build_cluster_report
from reports.formats import FORMATS, SERVED_FORMATS, ReportInput
from reports.policyreport import finding_dict
from store.finding_rows import finding_rows
from store.scans import latest_scan_run

REPORT_FORMATS = SERVED_FORMATS
TOOL_VERSION = "0.1.0"
HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _scan_report(session: Session, cluster_id: str) -> tuple[ScanReport, list[FindingDict]]:
    findings = [finding_dict(f) for f in finding_rows(session, cluster_id)]
    run = latest_scan_run(session, cluster_id)
    open_findings = [f for f in findings if f["status"] == "open"]
    summary = {
        "objects": run.object_count if run else 0,
        "rules": len({f["rule_id"] for f in findings}),
        "findings": len(findings),
        "open": len(open_findings),
        "exempted": len(findings) - len(open_findings),
        "errors": len(run.errors or []) if run else 0,
        "by_severity": dict(Counter(f["severity"] for f in open_findings)),
        "expired_exemptions": [],
        "catalogue_version": (run.catalogue_version or "") if run else "",
    }
    report: ScanReport = {"findings": findings, "errors": [], "summary": summary}  # type: ignore[typeddict-item]
    return report, findings


def _rule_infos(findings: list[FindingDict]) -> list[RuleInfo]:
    infos: dict[str, RuleInfo] = {}
    for f in findings:
        infos.setdefault(
            f["rule_id"],
            {
                "id": f["rule_id"],
                "title": f["title"],
                "severity": f["severity"],
                "category": f["category"] or "security",
                "cis": list(f["cis"]),
                "pss": list(f["pss"]),
                "references": [],
                "remediation": "",
                "kinds": None,
                "api_versions": None,
                "status": "stable",
                "scope": "object",
                "summary": f["title"],
            },
        )
    return [infos[k] for k in sorted(infos)]


def render_report(session: Session, cluster_id: str, *, fmt: str, public_url: str) -> Response:
    """The report of one cluster in `fmt` (a served format of the registry)."""
    report_format = FORMATS[fmt]
    report, findings = _scan_report(session, cluster_id)
    data = ReportInput(
        report,
        rules=_rule_infos(findings),
        tool_version=TOOL_VERSION,
        cluster=lambda: build_cluster_report(session, cluster_id, public_url=public_url),
    )
    response = Response(report_format.render(data), mimetype=report_format.media_type)
    if report_format.media_type == "text/html":
        response.headers["Content-Security-Policy"] = HTML_CSP
    return response
