"""The image-occurrence index (`body_images`): every member named `image` in every stored
manifest body, so the image searches need not evaluate a JSON path on every body.

Bodies are content-addressed and deduplicated, so the index is per body: one row per place a
member named `image` occurs (`containers`, `initContainers`, `ephemeralContainers` of a Pod and
of every workload's pod template, a CronJob's `jobTemplate`, and anything else that names a
member `image`), with

- `ord`: its position in the order `$..image` yields it on this engine (a pre-order walk of
  the body; PostgreSQL's jsonb orders an object's keys by length, then bytes, SQLite keeps
  them as stored), which is also the order of every narrower path over it;
- `shape`: where it is, member names JSON-quoted and every array index written `[]`
  (`."spec"."template"."spec"."containers"[]."image"`);
- `value`: the member's value as stored (a string for any real image).

History comes for free: a version's images are its body's rows (join `manifest_versions` on
`content_hash`). Rows are written with the bodies (`index_bodies`, called by
`store.snapshots.store_bodies`), backfilled by migration 0008 (`backfill`), and go with their
body (`ON DELETE CASCADE`).

`store.search` answers a path from here when `recognise` knows it: `$..image`, and a chain of
member names and `[*]` ending in `.image` (`$.spec.template.spec.containers[*].image`). Lax
mode lets `.name` apply to an array's elements and `[*]` to a value that is no array, so a
chain matches a small set of shapes (`shapes_of`); anything else keeps the generic evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, select
from sqlalchemy.orm import Session

from store.bulk import (
    chunked,
    dialect_insert,
    insert_absent,
    insert_ignoring_conflicts,
    table_of,
)
from store.db import on_postgresql
from store.jsonpath import Descend, Index, JsonPath, Member
from store.models import BodyImage, ManifestBody

IMAGE = "image"
MAX_SHAPES = 1024  # a longer chain is left to the generic evaluation
BACKFILL_BATCH = 1000


def quoted(name: str) -> str:
    """A member step of a shape: `."name"` (JSON-quoted, so any name is unambiguous)."""
    return "." + json.dumps(name)


_IMAGE_STEP = quoted(IMAGE)


def image_occurrences(body: Any, *, jsonb_order: bool) -> list[tuple[str, Any]]:
    """(shape, value) of every member named `image` in `body`, in the order `$..image`
    yields them: a pre-order walk where an object's own `image` comes before anything nested
    in it, object keys in jsonb's order when `jsonb_order` (PostgreSQL), as stored otherwise.

    The walk goes in stored order; for jsonb's order the few occurrences are sorted afterwards
    by their paths (an ancestor's path is a prefix of its descendants', so it sorts first, and
    siblings compare as jsonb orders keys), instead of sorting the keys of every object.
    """
    found: list[tuple[tuple[str | int, ...], Any]] = []
    if isinstance(body, dict | list):
        _collect(body, [], found)
    if jsonb_order:
        found.sort(key=_jsonb_path_key)
    return [(_shape(path), value) for path, value in found]


def _collect(
    node: Any, path: list[str | int], found: list[tuple[tuple[str | int, ...], Any]]
) -> None:
    """Append (path, value) of each `image` member in `node` (a dict or list), pre-order."""
    if isinstance(node, dict):
        if IMAGE in node:
            found.append((tuple(path), node[IMAGE]))
        for key, value in node.items():
            if isinstance(value, dict | list):
                path.append(key)
                _collect(value, path, found)
                path.pop()
    else:
        for index, item in enumerate(node):
            if isinstance(item, dict | list):
                path.append(index)
                _collect(item, path, found)
                path.pop()


def _jsonb_path_key(occurrence: tuple[tuple[str | int, ...], Any]) -> tuple[Any, ...]:
    """A path as jsonb orders it: object keys by length, then bytes; array items by index."""
    return tuple(
        (len(raw := step.encode()), raw) if isinstance(step, str) else step
        for step in occurrence[0]
    )


def _shape(path: tuple[str | int, ...]) -> str:
    return "".join(quoted(step) if isinstance(step, str) else "[]" for step in path) + _IMAGE_STEP


def index_rows(bodies: Iterable[tuple[str, Any]], *, jsonb_order: bool) -> list[dict[str, Any]]:
    """The `body_images` rows of (content hash, body) pairs."""
    return [
        {"content_hash": content_hash, "ord": ord_, "shape": shape, "value": value}
        for content_hash, body in bodies
        for ord_, (shape, value) in enumerate(image_occurrences(body, jsonb_order=jsonb_order))
    ]


def _store(session: Session, rows: list[dict[str, Any]], *, absent: bool = False) -> None:
    """Insert rows, keeping those already there (`absent`: rows of bodies the caller has just
    stored, which have none: `store.bulk.insert_absent`); a JSON `null` value is stored as JSON
    null (the bulk path would write SQL NULL), like the body holds it."""
    nulls = [{**row, "value": JSON.NULL} for row in rows if row["value"] is None]
    values = [row for row in rows if row["value"] is not None]
    if absent:
        insert_absent(session, table_of(BodyImage), values)
    else:
        for batch in chunked(values, 5000):
            insert_ignoring_conflicts(session, table_of(BodyImage), batch)
    if nulls:
        session.execute(
            dialect_insert(session, table_of(BodyImage)).on_conflict_do_nothing(), nulls
        )


def index_bodies(session: Session, bodies: Mapping[str, Any]) -> int:
    """Store the index rows of bodies just stored (content hash -> body), which have none yet
    (should one have rows after all, they are kept). Returns how many rows were written."""
    rows = index_rows(bodies.items(), jsonb_order=on_postgresql(session))
    _store(session, rows, absent=True)
    return len(rows)


def _body_batches(session: Session, *, batch_size: int) -> Iterator[list[tuple[str, Any]]]:
    after = ""
    while True:
        batch: list[tuple[str, Any]] = [
            (content_hash, body)
            for content_hash, body in session.execute(
                select(ManifestBody.content_hash, ManifestBody.body)
                .where(ManifestBody.content_hash > after)
                .order_by(ManifestBody.content_hash)
                .limit(batch_size)
            )
        ]
        if not batch:
            return
        yield batch
        after = batch[-1][0]


def backfill(session: Session, *, batch_size: int = BACKFILL_BATCH) -> int:
    """Index every stored body (those already indexed keep their rows), in batches of
    `batch_size` bodies by content hash; works on both engines. Returns the rows written.

    For a loader that filled `manifest_bodies` by other means (a bench, a restore): call it
    once after the load, in the load's session, and commit.
    """
    written = 0
    jsonb_order = on_postgresql(session)
    for batch in _body_batches(session, batch_size=batch_size):
        rows = index_rows(batch, jsonb_order=jsonb_order)
        _store(session, rows)
        written += len(rows)
    return written


# ---- which paths the index answers -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImagePath:
    """A path the index answers: every row (`shapes` None, `$..image`) or the rows whose
    shape is one of `shapes`."""

    shapes: frozenset[str] | None


def shapes_of(steps: Iterable[Member | Index]) -> frozenset[str]:
    """Every shape a chain of `.name` and `[*]` steps reaches in lax mode: `.name` takes an
    array's elements first (at most one level), `[*]` takes one level of array or the value
    itself; so before each name one `[]` or none, and each `[*]` one `[]` or none."""
    shapes = {""}
    for step in steps:
        grown = {shape + "[]" for shape in shapes} | shapes
        if isinstance(step, Member):
            assert step.name is not None
            grown = {shape + quoted(step.name) for shape in grown}
        shapes = grown
    return frozenset(shapes)


def recognise(path: JsonPath) -> ImagePath | None:
    """The index's answer for `path`, or None when the generic evaluation must run.

    Recognised by the parsed steps, not the spelling (`$['spec']` is `$.spec`): `$..image`,
    and chains of member names and `[*]` whose last step is `.image`.
    """
    steps = path.steps
    if steps == (Descend(IMAGE),):
        return ImagePath(shapes=None)
    if not steps or steps[-1] != Member(IMAGE):
        return None
    chain: list[Member | Index] = []
    for step in steps:
        named = isinstance(step, Member) and step.name is not None
        every = isinstance(step, Index) and step.index is None
        if not (named or every):
            return None
        chain.append(step)  # type: ignore[arg-type]  # a Member or an Index, checked above
    if 2 ** len(chain) > MAX_SHAPES:
        return None
    return ImagePath(shapes=shapes_of(chain))
