"""The generated rule docs under docs/rules must match the catalogue (regenerate if stale)."""

from __future__ import annotations

from pathlib import Path

from rules import default_rules
from rules.docs import render_docs
from rules.model import doc_summary

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules"
SECTIONS = (
    "## What it does",
    "## Why is this bad?",
    "## Example",
    "## Use instead",
    "## References",
)


def test_rule_docs_are_up_to_date() -> None:
    pages = render_docs(default_rules())
    stale = [
        name
        for name, text in pages.items()
        if not (DOCS / name).is_file() or (DOCS / name).read_text() != text
    ]
    extra = sorted({p.name for p in DOCS.glob("KM-*.md")} - set(pages))
    assert not stale and not extra, (
        f"docs/rules is stale ({stale + extra}); run `k8smon rules docs --write docs/rules`"
    )


def test_every_docstring_follows_the_template() -> None:
    for r in default_rules():
        positions = [r.meta.doc.find(section) for section in SECTIONS]
        assert all(p >= 0 for p in positions), f"{r.id} lacks a template section"
        assert positions == sorted(positions), f"{r.id} sections out of order"
        assert doc_summary(r.meta.doc), f"{r.id} has an empty 'What it does'"
