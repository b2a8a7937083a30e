"""How admin commands talk to people and scripts: `-o/--output table|wide|json|yaml|csv`
(`--format` is the same option), one-line errors on stderr, progress on stderr, and reliable
exit codes.

Every listing goes through one registry of renderers (`RENDERERS`, name -> function). Tables
show agent-supplied text as data: `visible()` neutralises rich markup and shows control and
format characters as escapes (`\\x1b`, `\\u202e`); CSV cells that a spreadsheet would run as a
formula (`= + - @`, tab, CR first) get a leading `'` (OWASP CSV injection). On a terminal tables
have borders and fold to its width; piped, they are plain columns within 100 characters.

`api_command()` gives a command the connection flags (`--server`, `--admin-key`,
`--admin-key-id`, `--config`) and the output option, builds the signed `AdminClient`, and turns
every failure into `error: <one line>` plus the exit code from `cli.client` (docs/operators.md).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import click
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.client import EXIT_USAGE, AdminClient, ApiError
from cli.config import ConfigProblem, resolve

PIPE_WIDTH = 100  # piped tables fit this many columns
WIDE_PIPE_WIDTH = 250
CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Col:
    """A column: the row key, its header, whether only `-o wide` shows it, and whether the
    value is a timestamp that tables show as an age (`3h`)."""

    key: str
    header: str
    wide: bool = False
    age: bool = False


Column = Col | tuple[str, str]


def _col(column: Column) -> Col:
    return column if isinstance(column, Col) else Col(*column)


# ---- agent-supplied text as data --------------------------------------------------------


def visible(text: str) -> str:
    """`text` with control and format characters shown as escapes (never sent raw to a
    terminal: ESC sequences, carriage returns, right-to-left overrides, zero-width marks)."""
    out: list[str] = []
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char != " ":
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def cell_text(value: Any) -> Text:
    """A table cell: the value as plain text (a rich `Text`, so markup such as `[/oops]` or
    `[link=...]` is shown, never interpreted), control characters made visible."""
    return Text(visible(_cell(value)))


def age(value: Any, *, now: datetime | None = None) -> str | None:
    """An ISO 8601 time as an age like kubectl's: `45s`, `12m`, `3h`, `5d`, `2y` (a future
    time: `in 29d`)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    ahead = seconds < 0
    seconds = abs(seconds)
    text = f"{int(seconds)}s"
    for unit, size in (("y", 31_536_000), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            text = f"{int(seconds // size)}{unit}"
            break
    return f"in {text}" if ahead else text


def _age_and_time(value: Any) -> str | None:
    """`3h (2026-12-04 20:53 UTC)`: an age, with the time to the minute, for one record."""
    relative = age(value)
    if relative is None or relative == value:
        return relative
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    when = when.astimezone(UTC) if when.tzinfo else when
    return f"{relative} ({when:%Y-%m-%d %H:%M} UTC)"


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


def csv_cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would evaluate (`=HYPERLINK(...)`) is prefixed with `'`."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
    return "'" + text if text.startswith(CSV_TRIGGERS) else text


# ---- renderers: one registry ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    rows: Sequence[Mapping[str, Any]]
    columns: Sequence[Col]
    title: str | None
    style: Callable[[Mapping[str, Any]], str | None]
    empty: str


def _json(out: Output, listing: Listing) -> None:
    click.echo(json.dumps([dict(r) for r in listing.rows], indent=2, default=str))


def _yaml(out: Output, listing: Listing) -> None:
    plain = json.loads(json.dumps([dict(r) for r in listing.rows], default=str))
    # allow_unicode=False: every non-ASCII or control character is written as an escape.
    click.echo(yaml.safe_dump(plain, sort_keys=False, allow_unicode=False), nl=False)


def _csv(out: Output, listing: Listing) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.key for c in listing.columns])
    for row in listing.rows:
        writer.writerow([csv_cell(row.get(c.key)) for c in listing.columns])
    click.echo(buffer.getvalue(), nl=False)


def _table(out: Output, listing: Listing) -> None:
    if not listing.rows:
        out.note(listing.empty)
        return
    wide = out.fmt == "wide"
    columns = [c for c in listing.columns if wide or not c.wide]
    console = out.console_for(wide=wide)
    table = out.new_table(title=listing.title)
    now = datetime.now(UTC)
    for column in columns:
        table.add_column(column.header, overflow="fold")
    for row in listing.rows:
        cells = [
            cell_text(age(row.get(c.key), now=now) if c.age else row.get(c.key)) for c in columns
        ]
        table.add_row(*cells, style=listing.style(row))
    console.print(table)


Renderer = Callable[["Output", Listing], None]
RENDERERS: dict[str, Renderer] = {
    "table": _table,
    "wide": _table,
    "json": _json,
    "yaml": _yaml,
    "csv": _csv,
}
FORMATS = tuple(RENDERERS)


@dataclass
class Output:
    """Prints results in the chosen format; messages for people go to stderr."""

    fmt: str = "table"
    console: Console | None = None

    @property
    def for_people(self) -> bool:
        return self.fmt in ("table", "wide")

    def console_for(self, *, wide: bool = False) -> Console:
        if self.console is None:
            tty = sys.stdout.isatty()
            width = None if tty else (WIDE_PIPE_WIDTH if wide else PIPE_WIDTH)
            self.console = Console(soft_wrap=False, width=width, markup=False, emoji=False)
        return self.console

    def new_table(self, *, title: str | None = None, show_header: bool = True) -> Table:
        """Bordered on a terminal; plain columns without box-drawing (kubectl style) when
        piped."""
        if self.console_for().is_terminal:
            return Table(
                title=Text(visible(title)) if title else None,
                header_style="bold",
                show_header=show_header,
            )
        return Table(
            title=Text(visible(title)) if title else None,
            box=None,
            show_edge=False,
            pad_edge=False,
            show_header=show_header,
            header_style="bold",
        )

    def rows(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[Column],
        *,
        title: str | None = None,
        style: Callable[[Mapping[str, Any]], str | None] = (lambda _row: None),
        empty: str = "nothing to show",
    ) -> None:
        listing = Listing(rows, [_col(c) for c in columns], title, style, empty)
        RENDERERS[self.fmt](self, listing)

    def record(self, data: Mapping[str, Any], *, fields: Sequence[Column] | None = None) -> None:
        """One object: key/value table for people, the object itself for scripts."""
        if self.fmt == "json":
            click.echo(json.dumps(dict(data), indent=2, default=str))
            return
        if self.fmt == "yaml":
            plain = json.loads(json.dumps(dict(data), default=str))
            click.echo(yaml.safe_dump(plain, sort_keys=False, allow_unicode=False), nl=False)
            return
        people = self.for_people
        items = (
            [
                (c.header, _age_and_time(data.get(c.key)) if c.age and people else data.get(c.key))
                for c in map(_col, fields)
            ]
            if fields
            else [(key, value) for key, value in data.items()]
        )
        if self.fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["field", "value"])
            for name, value in items:
                writer.writerow([name, csv_cell(value)])
            click.echo(buffer.getvalue(), nl=False)
            return
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for name, value in items:
            table.add_row(cell_text(name), cell_text(value))
        self.console_for().print(table)

    def note(self, text: str) -> None:
        """A line for people (stderr, so stdout stays parseable)."""
        click.echo(visible(text), err=True)

    @contextmanager
    def progress(self, text: str) -> Iterator[None]:
        """A spinner on stderr while a long call runs (only on a terminal)."""
        console = Console(stderr=True, markup=False)
        if not console.is_terminal:
            yield
            return
        with console.status(Text(visible(text))):
            yield


def fail(message: str, code: int) -> None:
    click.echo(f"error: {visible(message)}", err=True)
    sys.exit(code)


def output_option(formats: Sequence[str] = FORMATS) -> Callable[[F], F]:
    """`-o/--output` (alias `--format`) for a listing command; passes `fmt`."""
    return click.option(
        "-o",
        "--output",
        "--format",
        "fmt",
        type=click.Choice(list(formats)),
        default=formats[0],
        show_default=True,
        help="output format (wide: every column)",
    )


def api_command(*, formats: Sequence[str] | None = None) -> Callable[[F], F]:
    """Add connection flags and the output option; call the command with `client` and `out`.

    Listing commands get `-o/--output` (alias `--format`) with the `RENDERERS`; a command
    with its own document formats (`report`) passes `formats` and gets `--format` only.
    """

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

        output = (
            output_option()
            if formats is None
            else click.option(
                "--format",
                "fmt",
                type=click.Choice(list(formats)),
                default=formats[0],
                show_default=True,
                help="output format",
            )
        )
        options = [
            output,
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


def choice_list(
    value: str | None, choices: Sequence[str], *, param_hint: str, noun: str
) -> list[str] | None:
    """A comma-separated list of `choices` (None when empty); an unknown one is a usage
    error naming the flag and the choices."""
    if not value:
        return None
    named = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [n for n in named if n not in choices]
    if unknown:
        raise click.BadParameter(
            f"unknown {noun} {unknown[0]!r}; expected {', '.join(choices)}", param_hint=param_hint
        )
    return named


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
