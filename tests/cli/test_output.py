"""cli.output's pieces: visible text, CSV neutralising, ages, severity lists, and a real
terminal (a pty) getting borders but never an agent's escape sequences."""

from __future__ import annotations

import os
import pty
import subprocess
from datetime import UTC, datetime, timedelta

import click
import pytest

from cli.commands.findings import severities
from cli.output import RENDERERS, age, csv_cell, visible
from tests.cli.conftest import Operator
from tests.cli.hostile import K8SMON, TITLE_ESCAPE


def test_visible_shows_control_and_format_characters() -> None:
    assert visible("a\x1b]0;t\x07b") == "a\\x1b]0;t\\x07b"
    assert visible("x\u202ey\u200bz") == "x\\u202ey\\u200bz"
    assert visible("line\nnext\ttab\r") == "line\\x0anext\\x09tab\\x0d"
    assert visible("[/oops] ünïcode ok") == "[/oops] ünïcode ok"


def test_csv_cells() -> None:
    for risky in ("=1+1", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(risky) == "'" + risky
    assert csv_cell(-3) == "-3" and csv_cell(2.5) == "2.5" and csv_cell(True) == "true"
    assert csv_cell(None) == "" and csv_cell("plain") == "plain"
    assert csv_cell({"b": 1, "a": "=x"}) == '{"a": "=x", "b": 1}'


def test_ages() -> None:
    now = datetime(2026, 1, 10, 12, tzinfo=UTC)
    iso = lambda delta: (now - delta).isoformat()  # noqa: E731
    assert age(iso(timedelta(seconds=42)), now=now) == "42s"
    assert age(iso(timedelta(minutes=5)), now=now) == "5m"
    assert age(iso(timedelta(hours=3, minutes=10)), now=now) == "3h"
    assert age(iso(timedelta(days=4)), now=now) == "4d"
    assert age(iso(-timedelta(days=30)), now=now) == "in 30d"
    assert age(None) is None


def test_severity_lists() -> None:
    assert severities("high") == ["critical", "high"]
    assert severities("LOW") == ["critical", "high", "medium", "low"]
    assert severities("critical,medium") == ["critical", "medium"]
    assert severities(None) is None
    with pytest.raises(click.BadParameter, match="unknown severity 'urgent'"):
        severities("urgent")


def test_one_registry_of_listing_formats() -> None:
    assert list(RENDERERS) == ["table", "wide", "json", "yaml", "csv"]


def test_a_terminal_gets_borders_but_never_an_agents_escapes(hostile: Operator) -> None:
    main_fd, child_fd = pty.openpty()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("K8SMON_SERVER", "K8SMON_ADMIN_KEY", "K8SMON_ADMIN_KEY_ID")
    }
    env.update(K8SMON_CONFIG=str(hostile.config), COLUMNS="300", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [K8SMON, "findings", "--cluster", "prod-eu", "-o", "wide"],
        stdout=child_fd,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(child_fd)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
    os.close(main_fd)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "┃" in screen or "│" in screen  # a terminal: a bordered table
    assert TITLE_ESCAPE not in screen and "\x1b]0;" not in screen and "\x1b[2J" not in screen
    assert "\x1b]8;" not in screen  # no hyperlink escape from `[link=...]`
    assert "\\x1b]0;pwned\\x07api" in screen
