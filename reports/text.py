"""Plain-text rendering of cluster reports (terminal, `make demo`): per cluster, per rule."""

from __future__ import annotations

from collections.abc import Sequence

from reports.model import ClusterReport, RuleSection
from reports.wording import count_summary


def _section(section: RuleSection, *, marker: str = "") -> list[str]:
    cis = f"  CIS {', '.join(section.cis)}" if section.cis else ""
    lines = [
        f"  [{section.severity.upper()}] {section.rule_id} {section.title}{cis}"
        f"  ({len(section.violations)})"
    ]
    for v in section.violations:
        path = f"  @ {v.path}" if v.path else ""
        lines.append(f"    {marker}{v.where}{path}")
        lines.append(f"        {v.message}")
    return lines


def render_text(reports: Sequence[ClusterReport]) -> str:
    out: list[str] = []
    for report in reports:
        counts = report.counts
        out.append(
            f"Cluster {report.display_name} ({report.cluster_id})"
            + (f" - team {report.team}" if report.team else "")
        )
        out.append(
            f"  scan #{report.scan_id}: {count_summary(counts)} "
            f"over {counts.get('objects', 0)} objects"
        )
        for section in report.rules:
            out.extend(_section(section))
        if report.exempted:
            out.append("  Exempted:")
            for section in report.exempted:
                out.extend(_section(section, marker="(exempted) "))
        out.append(f"  Details: {report.admin_url}")
        out.append("")
    return "\n".join(out)
