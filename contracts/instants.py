"""Points in time as operators type them (ISO 8601 with `Z` or an offset): the one parser that
the CLI, the admin pages and the admin API read `--at`/`--between` times with; stdlib only."""

from __future__ import annotations

from datetime import UTC, datetime

MAX_LENGTH = 64
EXAMPLE = "2026-11-01T12:00Z"


class InstantError(ValueError):
    """A time that cannot be read; the message names the parameter (fit for a 400 answer)."""


def parse_instant(raw: str, *, name: str) -> datetime:
    """`raw` as an aware UTC datetime; `name` is the parameter the message names.

    ISO 8601 with a `Z` or a UTC offset (`2026-11-01T12:00Z`, `2026-11-01T13:00:00+01:00`);
    a time without one is refused: the server cannot know which zone it was meant in.
    """
    text = raw.strip()
    if not text or len(text) > MAX_LENGTH:
        raise InstantError(f"{name}: give an ISO 8601 time such as {EXAMPLE}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InstantError(
            f"{name}: {text!r} is not an ISO 8601 time; give one such as {EXAMPLE}"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InstantError(
            f"{name}: {text!r} has no time zone; end it with Z (UTC) or an offset such as +01:00"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InstantError(f"{name}: {text!r} is out of range") from None


def format_instant(moment: datetime) -> str:
    """The canonical text of a time: UTC, seconds, `Z` (what answers and messages show)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
