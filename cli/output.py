"""How admin commands talk to people and scripts: rich tables, `--format json|csv`, one-line
errors on stderr, progress on stderr, and reliable exit codes.

`api_command()` gives a command the connection flags (`--server`, `--admin-key`,
`--admin-key-id`, `--config`) and `--format`, builds the signed `AdminClient`, and turns every
failure into `error: <one line>` plus the exit code from `cli.client` (docs/operators.md).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import click
from rich.console import Console
from rich.table import Table

from cli.client import EXIT_USAGE, AdminClient, ApiError
from cli.config import ConfigProblem, resolve

FORMATS = ("table", "json", "csv")
PIPE_WIDTH = 200
F = TypeVar("F", bound=Callable[..., Any])

Column = tuple[str, str]  # (key in the row, header)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


@dataclass
class Output:
    """Prints results in the chosen format; messages for people go to stderr."""

    fmt: str = "table"
    console: Console | None = None

    def _console(self) -> Console:
        if self.console is None:
            # Piped output is not folded to 80 columns: wide tables stay one row per line.
            self.console = Console(
                soft_wrap=False, width=None if sys.stdout.isatty() else PIPE_WIDTH
            )
        return self.console

    def rows(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[Column],
        *,
        title: str | None = None,
        style: Callable[[Mapping[str, Any]], str | None] = (lambda _row: None),
        empty: str = "nothing to show",
    ) -> None:
        if self.fmt == "json":
            click.echo(json.dumps([dict(r) for r in rows], indent=2, default=str))
            return
        if self.fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow([key for key, _ in columns])
            for row in rows:
                writer.writerow([_csv_value(row.get(key)) for key, _ in columns])
            click.echo(buffer.getvalue(), nl=False)
            return
        if not rows:
            self.note(empty)
            return
        table = Table(title=title, header_style="bold")
        for _key, header in columns:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(row.get(key)) for key, _ in columns), style=style(row))
        self._console().print(table)

    def record(self, data: Mapping[str, Any], *, fields: Sequence[Column] | None = None) -> None:
        """One object: key/value table for people, the object itself for scripts."""
        if self.fmt == "json":
            click.echo(json.dumps(dict(data), indent=2, default=str))
            return
        items = (
            [(header, data.get(key)) for key, header in fields]
            if fields
            else [(key, value) for key, value in data.items()]
        )
        if self.fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["field", "value"])
            for name, value in items:
                writer.writerow([name, _csv_value(value)])
            click.echo(buffer.getvalue(), nl=False)
            return
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for name, value in items:
            table.add_row(name, _cell(value))
        self._console().print(table)

    def note(self, text: str) -> None:
        """A line for people (stderr, so stdout stays parseable)."""
        click.echo(text, err=True)

    @contextmanager
    def progress(self, text: str) -> Iterator[None]:
        """A spinner on stderr while a long call runs (only on a terminal)."""
        console = Console(stderr=True)
        if not console.is_terminal:
            yield
            return
        with console.status(text):
            yield


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def api_command(*, formats: Sequence[str] = FORMATS) -> Callable[[F], F]:
    """Add connection flags and --format; call the command with `client` and `out`."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(
            server: str | None,
            admin_key: str | None,
            admin_key_id: str | None,
            config_path: str | None,
            fmt: str,
            **kwargs: Any,
        ) -> None:
            try:
                config = resolve(
                    config_path=config_path, server=server, key=admin_key, key_id=admin_key_id
                )
                fn(client=AdminClient(config), out=Output(fmt), **kwargs)
            except ConfigProblem as problem:
                fail(str(problem), EXIT_USAGE)
            except ApiError as problem:
                fail(str(problem), problem.exit_code)

        options = [
            click.option(
                "--format",
                "fmt",
                type=click.Choice(list(formats)),
                default=formats[0],
                show_default=True,
                help="output format",
            ),
            click.option(
                "--config",
                "config_path",
                default=None,
                metavar="FILE",
                help="config file (default ~/.config/k8smon/config.toml)",
            ),
            click.option(
                "--admin-key-id", default=None, help="admin key id [env K8SMON_ADMIN_KEY_ID]"
            ),
            click.option(
                "--admin-key",
                default=None,
                metavar="FILE",
                help="admin private key (PEM) [env K8SMON_ADMIN_KEY]",
            ),
            click.option(
                "--server", default=None, metavar="URL", help="server URL [env K8SMON_SERVER]"
            ),
        ]
        decorated: Any = wrapper
        for option in options:
            decorated = option(decorated)
        return cast(F, decorated)

    return decorate


def parse_labels(values: Sequence[str]) -> dict[str, str]:
    """`--label k=v` values as a dict; a bad one is a usage error naming the flag."""
    labels: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = val
    return labels


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Duration(click.ParamType):
    """`90s`, `15m`, `2h`, `30d`, `1w` as seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        unit = text[-1:] if text[-1:] in _UNITS else "s"
        number = text[:-1] if text[-1:] in _UNITS else text
        try:
            seconds = float(number) * _UNITS[unit]
        except ValueError:
            self.fail(f"{value!r} is not a duration like 90s, 15m, 2h or 30d", param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} must be positive", param, ctx)
        return seconds


DURATION = Duration()
