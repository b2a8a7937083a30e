"""Slack limits, HTML escaping and the text report, on synthetic reports."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reports.html import write_html
from reports.model import ClusterReport, RuleSection, ViolationLine
from reports.slack import MAX_BLOCKS, MAX_SECTION_TEXT, build_message, limits_ok
from reports.text import render_text


def violation(i: int, *, name: str | None = None) -> ViolationLine:
    return ViolationLine(
        api_version="apps/v1",
        kind="Deployment",
        namespace=f"ns-{i % 5}",
        name=name or f"app-{i}-" + "x" * 80,
        container="main",
        path="spec.template.spec.containers[0].securityContext.privileged",
        message="runs privileged",
        status="new",
    )


def big_report(rules: int, per_rule: int) -> ClusterReport:
    sections = tuple(
        RuleSection(
            rule_id=f"KM-{100 + r}",
            title="Container runs privileged " * 3,
            severity="high",
            cis=("5.2.2",),
            pss=(),
            violations=tuple(violation(i) for i in range(per_rule)),
        )
        for r in range(rules)
    )
    return ClusterReport(
        cluster_id="big",
        display_name="Big " * 60,
        team="t",
        scan_id=7,
        scanned_at=datetime.now(UTC),
        admin_url="https://m.example/admin/x",
        counts={"objects": 10},
        rules=sections,
        new=sections,
        resolved=sections,
    )


def test_slack_message_respects_block_and_text_limits() -> None:
    message = build_message(big_report(rules=80, per_rule=300))
    assert len(message.blocks) <= MAX_BLOCKS
    assert limits_ok(message.blocks)
    assert all(len(b.get("text", {}).get("text", "")) <= MAX_SECTION_TEXT for b in message.blocks)
    assert any(
        "more rules with changes" in b.get("text", {}).get("text", "") for b in message.blocks
    )
    assert message.blocks[-1]["type"] == "context"


def test_html_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    report = ClusterReport(
        cluster_id="c1",
        display_name="<b>prod</b>",
        team=None,
        scan_id=1,
        scanned_at=datetime.now(UTC),
        admin_url="https://m.example/admin/clusters/c1",
        rules=(
            RuleSection(
                "KM-101",
                "Privileged",
                "critical",
                ("5.2.2",),
                (),
                (violation(1, name="<script>alert(1)</script>"),),
            ),
        ),
    )
    path = write_html(report, tmp_path)
    html = path.read_text(encoding="utf-8")
    assert path.name == "c1.html"
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;prod&lt;/b&gt;" in html and "KM-101" in html and "5.2.2" in html
    assert "<link" not in html and "src=" not in html  # nothing fetched from elsewhere


def test_text_report_goes_per_cluster_then_per_rule() -> None:
    text = render_text([big_report(rules=2, per_rule=2)])
    assert text.index("KM-100") < text.index("KM-101")
    assert "CIS 5.2.2" in text and "Deployment ns-0/app-0-" in text
