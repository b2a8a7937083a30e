"""`k8smon rules`: list the rule catalogue, show one rule, generate the rule docs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.output import Col, Output, output_option
from rules import default_rules
from rules.docs import INDEX_FILE, render_docs, render_rule_page


@click.group()
def rules() -> None:
    """The built-in rule catalogue."""


RULE_COLUMNS = [
    Col("id", "id"),
    Col("severity", "severity"),
    Col("category", "category"),
    Col("cis", "cis"),
    Col("pss", "pss", wide=True),
    Col("title", "title"),
]


@rules.command("list")
@output_option()
def list_rules(fmt: str) -> None:
    """List every rule with its metadata (`-o json` answers `{"rules": [...]}`)."""
    infos = [r.meta.to_info() for r in default_rules()]
    if fmt == "json":
        sys.stdout.write(json.dumps({"rules": infos}, indent=2) + "\n")
        return
    Output(fmt).rows(infos, RULE_COLUMNS, title="Rules", empty="no rules")


@rules.command("show")
@click.argument("rule_id")
def show(rule_id: str) -> None:
    """Print one rule's documentation."""
    for r in default_rules():
        if r.id == rule_id.upper():
            click.echo(render_rule_page(r.meta), nl=False)
            return
    raise click.BadParameter(f"no rule {rule_id!r}", param_hint="RULE_ID")


@rules.command("docs")
@click.option(
    "--write",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write the pages to (e.g. docs/rules).",
)
@click.option(
    "--check", is_flag=True, help="Write nothing; exit 1 when the pages in the directory are stale."
)
def docs(directory: Path, check: bool) -> None:
    """Generate one Markdown page per rule plus an index from metadata and docstrings."""
    pages = render_docs(default_rules())
    existing = {p.name for p in directory.glob("KM-*.md")} if directory.is_dir() else set()
    stale = sorted(existing - set(pages))
    changed = [
        name
        for name, text in sorted(pages.items())
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]
    if check:
        if changed or stale:
            click.echo(
                f"stale rule docs in {directory}: {', '.join(changed + stale)}; run "
                f"`k8smon rules docs --write {directory}`",
                err=True,
            )
            sys.exit(1)
        click.echo(f"{len(pages)} pages up to date")
        return
    directory.mkdir(parents=True, exist_ok=True)
    for name in changed:
        (directory / name).write_text(pages[name], encoding="utf-8")
    for name in stale:
        (directory / name).unlink()
    click.echo(
        f"wrote {len(changed)} of {len(pages)} pages to {directory}"
        f"{f', removed {len(stale)}' if stale else ''} ({INDEX_FILE} included)"
    )
