"""A plain-text table of findings for terminals and CI logs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.findings import Finding, ScanReport
from contracts.severity import Severity

SEVERITY_ORDER = tuple(Severity)  # most severe first


def _resource(finding: Finding) -> str:
    res = finding["resource"]
    where = f"{res['namespace']}/" if res.get("namespace") else ""
    container = f" [{finding['container']}]" if finding.get("container") else ""
    return f"{res['kind']} {where}{res['name']}{container}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(report: ScanReport, *, show_exempted: bool = True, width: int = 60) -> str:
    """Findings as aligned columns, then errors and a one-line summary."""
    rows = [("SEVERITY", "RULE", "RESOURCE", "MESSAGE")]
    for finding in report["findings"]:
        if finding["status"] == "exempted" and not show_exempted:
            continue
        severity = finding["severity"].upper()
        if finding["status"] == "exempted":
            severity = f"({finding['severity']}, exempted)"
        rows.append(
            (severity, finding["rule_id"], _clip(_resource(finding), width), finding["message"])
        )
    lines = []
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            lines.append(
                "  ".join(
                    [*(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])), row[3]]
                ).rstrip()
            )
    else:
        lines.append("No findings.")
    if report["errors"]:
        lines.append("")
        lines.append("ERRORS")
        for error in report["errors"]:
            where = error.get("file") or ""
            if where and error.get("line"):
                where += f":{error['line']}"
            if error.get("rule_id"):
                res: Mapping[str, Any] = error.get("resource") or {}
                where = f"{error['rule_id']} on {res.get('kind')} {res.get('name')} {where}"
            lines.append(f"  {where.strip()}: {error['message']}")
    summary = report["summary"]
    counts = ", ".join(
        f"{summary['by_severity'].get(s, 0)} {s}"
        for s in SEVERITY_ORDER
        if summary["by_severity"].get(s)
    )
    lines.append("")
    lines.append(
        f"{summary['objects']} objects, {summary['rules']} rules: {summary['open']} open "
        f"finding(s){' (' + counts + ')' if counts else ''}, {summary['exempted']} exempted, "
        f"{summary['errors']} error(s)"
    )
    for expired in summary["expired_exemptions"]:
        lines.append(
            f"warning: exemption #{expired['index']} ({', '.join(expired['rules'])}, owner "
            f"{expired['owner'] or 'unknown'}) expired on {expired['expires']}"
        )
    return "\n".join(lines) + "\n"
