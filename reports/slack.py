"""Slack messages: a Block Kit message with only what changed (new and resolved findings),
a summary and a link to the admin page, within Slack's block and text limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from reports.model import ClusterReport, RuleSection
from reports.wording import count_summary

MAX_BLOCKS = 50  # per message
MAX_SECTION_TEXT = 3000  # characters in a section's text
MAX_HEADER_TEXT = 150  # characters in a header (plain text)
MAX_FALLBACK_TEXT = 3000  # the notification text; Slack truncates messages at 40,000
MAX_LINES_PER_RULE = 10


def escape(text: str) -> str:
    """Text that is not ours, for Slack mrkdwn: `<!channel>` and `<url|label>` stay text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rule_text(section: RuleSection, *, verb: str) -> str:
    cis = f" (CIS {', '.join(section.cis)})" if section.cis else ""
    head = (
        f"*{verb} · {section.severity.upper()} · {escape(section.rule_id)} "
        f"{escape(section.title)}*{escape(cis)}"
    )
    lines = [head]
    shown = section.violations[:MAX_LINES_PER_RULE]
    for v in shown:
        path = f" `{escape(_clip(v.path, 120))}`" if v.path else ""
        lines.append(f"• {escape(v.where)}{path}")
    hidden = len(section.violations) - len(shown)
    if hidden > 0:
        lines.append(f"_…and {hidden} more_")
    text = "\n".join(lines)
    while len(text) > MAX_SECTION_TEXT and len(lines) > 2:
        lines.pop(-2 if lines[-1].startswith("_") else -1)
        text = "\n".join(lines) + "\n_…more on the admin page_"
    return _clip(text, MAX_SECTION_TEXT)


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]]


def build_message(report: ClusterReport) -> SlackMessage:
    counts = report.counts
    summary = f"{count_summary(counts)} over {counts.get('objects', 0)} objects"
    blocks: list[Block] = [
        HeaderBlock(text=_clip(f"k8s-monitor · {escape(report.display_name)}", MAX_HEADER_TEXT)),
        SectionBlock(
            text=MarkdownTextObject(
                text=_clip(f"*Scan #{report.scan_id}*: {escape(summary)}", MAX_SECTION_TEXT)
            )
        ),
    ]
    footer: list[Block] = [
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"<{report.admin_url}|Open {escape(report.cluster_id)} in k8s-monitor>"
                )
            ]
        ),
    ]
    body: list[Block] = []
    for verb, sections in (("New", report.new), ("Resolved", report.resolved)):
        for section in sections:
            body.append(SectionBlock(text=MarkdownTextObject(text=_rule_text(section, verb=verb))))
    room = MAX_BLOCKS - len(blocks) - len(footer) - 2  # a divider and a possible "more" note
    if body:
        blocks.append(DividerBlock())
        if len(body) > room:
            hidden = len(body) - room
            more = SectionBlock(
                text=MarkdownTextObject(
                    text=f"_…and {hidden} more rules with changes: see the admin page_"
                )
            )
            body = [*body[:room], more]
        blocks.extend(body)
    blocks.extend(footer)
    fallback = _clip(
        f"k8s-monitor {escape(report.display_name)}: {escape(summary)}. {report.admin_url}",
        MAX_FALLBACK_TEXT,
    )
    return SlackMessage(text=fallback, blocks=[b.to_dict() for b in blocks])


def limits_ok(blocks: Sequence[dict[str, Any]]) -> bool:
    """True when a message respects the limits above (used by tests and a final guard)."""
    if len(blocks) > MAX_BLOCKS:
        return False
    for block in blocks:
        text = (block.get("text") or {}).get("text", "")
        limit = MAX_HEADER_TEXT if block.get("type") == "header" else MAX_SECTION_TEXT
        if len(text) > limit:
            return False
    return True
