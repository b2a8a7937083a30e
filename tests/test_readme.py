"""README.md stays true: the two commands and every configuration variable are documented."""

from __future__ import annotations

from pathlib import Path

from settings.config import VARIABLES, readme_table

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_readme_shows_the_two_commands() -> None:
    assert "make demo" in README
    assert "make test" in README


def test_readme_configuration_table_lists_every_variable() -> None:
    missing = [v.env for v in VARIABLES if f"`{v.env}`" not in README]
    assert missing == []


def test_readme_configuration_table_is_the_generated_one() -> None:
    """Defaults and help are declared once, in settings.config.VARIABLES."""
    assert readme_table() in README
