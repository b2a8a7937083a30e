"""A self-contained HTML report per cluster (inline CSS, no scripts, every value escaped)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from reports.model import ClusterReport, RuleSection
from reports.wording import count_summary

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{border:1px solid #d8dce3;padding:.3rem .5rem;text-align:left;font-size:.9rem;
vertical-align:top}th{background:#f3f5f8}code{font-size:.85rem}
.sev{font-weight:600;text-transform:uppercase;font-size:.8rem;padding:.1rem .4rem;border-radius:3px}
.critical{background:#7a0016;color:#fff}.high{background:#d2322d;color:#fff}
.medium{background:#f0ad4e}.low{background:#5bc0de}.info{background:#ddd}
.summary td{border:none;padding-right:1.5rem}
"""


class _Escaped(dict[Any, str]):
    """`html.escape` of each text, worked out once per report: most cells repeat (kinds,
    namespaces, statuses, containers, paths, a rule's messages)."""

    def __missing__(self, text: str) -> str:
        escaped = self[text] = escape(text)
        return escaped


def _rule_table(section: RuleSection, cell: _Escaped) -> str:
    cis = ", ".join(section.cis) or "-"
    rows = "".join(
        [
            f"<tr><td>{cell[v.kind]}</td><td>{cell[v.namespace or '-']}</td>"
            f"<td>{cell[v.name]}</td><td>{cell[v.container or '-']}</td>"
            f"<td><code>{cell[v.path or '-']}</code></td><td>{cell[v.message]}</td>"
            f"<td>{cell[v.status]}</td></tr>"
            for v in section.violations
        ]
    )
    return (
        f"<h3><span class='sev {escape(section.severity)}'>{escape(section.severity)}</span> "
        f"{escape(section.rule_id)} {escape(section.title)} "
        f"<small>CIS {escape(cis)}</small></h3>"
        "<table><tr><th>Kind</th><th>Namespace</th><th>Name</th><th>Container</th>"
        f"<th>Path</th><th>Message</th><th>Status</th></tr>{rows}</table>"
    )


def render_html(report: ClusterReport) -> str:
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
    cell = _Escaped()
    for title, sections in (
        ("New", report.new),
        ("Open findings", report.rules),
        ("Resolved by this scan", report.resolved),
        ("Exempted", report.exempted),
    ):
        if sections:
            parts.append(f"<h2>{escape(title)}</h2>")
            parts.extend(_rule_table(s, cell) for s in sections)
    parts.append("</body></html>")
    return "".join(parts)


def write_html(report: ClusterReport, directory: Path) -> Path:
    """Write `<directory>/<cluster id>.html` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.cluster_id}.html"
    path.write_bytes(render_html(report).encode("utf-8"))
    return path
