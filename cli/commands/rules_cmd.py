"""`k8smon rules`: list the rule catalogue, show one rule, generate the rule docs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rules import default_rules
from rules.docs import INDEX_FILE, render_docs, render_rule_page


@click.group()
def rules() -> None:
    """The built-in rule catalogue."""


@rules.command("list")
@click.option(
    "--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True
)
def list_rules(fmt: str) -> None:
    """List every rule with its metadata."""
    infos = [r.meta.to_info() for r in default_rules()]
    if fmt == "json":
        sys.stdout.write(json.dumps({"rules": infos}, indent=2) + "\n")
        return
    rows = [("ID", "SEVERITY", "CATEGORY", "CIS", "PSS", "TITLE")]
    rows += [
        (
            i["id"],
            i["severity"],
            i["category"],
            ",".join(i["cis"]) or "-",
            ",".join(i["pss"]) or "-",
            i["title"],
        )
        for i in infos
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(5)]
    for row in rows:
        cells = [row[c].ljust(widths[c]) for c in range(5)]
        click.echo("  ".join([*cells, row[5]]))


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
