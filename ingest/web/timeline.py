"""Timelines for people and scripts: the request's filters, each change's diff, and the JSON
shape the admin API returns (the pages and the API read the same `store.timeline` page)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from contracts.timeline import TIMELINE_GROUPS, TimelineKind
from ingest.web import manifest_view
from store.timeline import MAX_PAGE, Change, Cursor, CursorError, Entry, version_bodies

DEFAULT_PAGE = 50
MAX_DIFF_LINES = 400  # a change's diff beyond this is cut (and says so)


class TimelineRequestError(ValueError):
    """A filter of a timeline request that cannot be served (a 400 naming the parameter)."""


@dataclass(frozen=True, slots=True)
class TimelineRequest:
    kinds: frozenset[TimelineKind]
    groups: tuple[str, ...]
    before: Cursor | None
    limit: int


def parse_request(args: Mapping[str, str], *, default_limit: int = DEFAULT_PAGE) -> TimelineRequest:
    """`types` (comma-separated groups: resources, findings, scans), `before` (a previous
    page's next_cursor) and `limit` (1..500)."""
    raw = (args.get("types") or "").strip()
    groups = (
        tuple(g.strip() for g in raw.split(",") if g.strip()) if raw else tuple(TIMELINE_GROUPS)
    )
    unknown = [g for g in groups if g not in TIMELINE_GROUPS]
    if unknown:
        raise TimelineRequestError(
            f"types: unknown {unknown[0][:40]!r}; expected {', '.join(TIMELINE_GROUPS)}"
        )
    kinds = frozenset(kind for group in groups for kind in TIMELINE_GROUPS[group])
    before = None
    if args.get("before"):
        try:
            before = Cursor.decode(args["before"])
        except CursorError as problem:
            raise TimelineRequestError(str(problem)) from None
    try:
        limit = int(args.get("limit") or default_limit)
    except ValueError:
        raise TimelineRequestError("limit: give a whole number") from None
    if not 1 <= limit <= MAX_PAGE:
        raise TimelineRequestError(f"limit: from 1 to {MAX_PAGE}")
    return TimelineRequest(kinds, groups, before, limit)


@dataclass(frozen=True, slots=True)
class ChangeDiff:
    lines: list[manifest_view.DiffLine]
    truncated: bool


def diffs(session: Session, entries: Sequence[Entry]) -> dict[int, ChangeDiff]:
    """The diff of each entry's change against the version before it, by version id (each
    pair computed once; bodies fetched in one query)."""
    changes: dict[int, Change] = {
        e.change.version_id: e.change
        for e in entries
        if e.change is not None and e.change.previous_version_id is not None
    }
    wanted = {*changes, *(c.previous_version_id for c in changes.values())}
    bodies = version_bodies(session, {v for v in wanted if v is not None})
    out: dict[int, ChangeDiff] = {}
    for version_id, change in changes.items():
        old = bodies.get(change.previous_version_id or -1)
        new = bodies.get(version_id)
        if old is None or new is None:
            continue
        lines = manifest_view.diff(
            old,
            new,
            old_label=f"version {change.previous_version_id}",
            new_label=f"version {version_id} ({change.first_seen:%Y-%m-%d %H:%M:%S} UTC)",
        )
        out[version_id] = ChangeDiff(lines[:MAX_DIFF_LINES], len(lines) > MAX_DIFF_LINES)
    return out


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def entry_json(entry: Entry, diff: ChangeDiff | None) -> dict[str, Any]:
    """One entry as the admin API returns it (docs/admin-api.md, "Timeline")."""
    change = entry.change
    data: dict[str, Any] = {
        "type": entry.kind.value,
        "at": _iso(entry.at),
        "cursor": entry.cursor.encode(),
        "resource": {
            "apiVersion": entry.ref.api_version,
            "kind": entry.ref.kind,
            "namespace": entry.ref.namespace,
            "name": entry.ref.name,
        }
        if entry.ref is not None
        else None,
        "object_id": entry.object_id,
        "change": {
            "version_id": change.version_id,
            "previous_version_id": change.previous_version_id,
            "first_seen": _iso(change.first_seen),
        }
        if change is not None
        else None,
        "finding": None,
        "scan": None,
        "removed": entry.removed,
    }
    if change is not None and diff is not None:
        data["change"]["diff"] = [line.text for line in diff.lines]
        data["change"]["diff_truncated"] = diff.truncated
    if entry.finding is not None:
        f = entry.finding
        data["finding"] = {
            "id": f.id,
            "rule_id": f.rule_id,
            "title": f.title,
            "severity": f.severity,
            "status": f.status,
            "path": f.path,
            "message": f.message,
        }
    if entry.scan is not None:
        data["scan"] = {
            "id": entry.scan.id,
            "trigger": entry.scan.trigger,
            "state": entry.scan.state,
            "counts": entry.scan.counts,
        }
    return data
