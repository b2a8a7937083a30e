"""Image presence over time (`image_changes`): per cluster, kind, namespace, shape and image
value, how many image slots began and ended being current at each instant, so the `distinct`
image searches (now, `at` an instant, `between` two) add up a few rows per cluster instead of
reading every version and its body's index rows.

A slot is one row of the image index (`store.image_index`) of one manifest version: it begins
at the version's `first_seen` (`started`) and ends at its `superseded_at` (`ended`). The slots
current at some instant of [since, until] number exactly

    sum(started at or before `until`) - sum(ended at or before `since`)

(a version ended by `since` began before it), and the present ones `sum(started) - sum(ended)`.
Exactness is kept by every writer of versions: `store.snapshots` records the versions an apply
starts and ends (`record_started`, `record_ended`), `store.purge` takes back the versions it
deletes (`forget`), and migration 0011 fills the table from the stored history (`backfill`,
also what a loader that writes versions by other means calls). Rows are keyed by the SHA-256
of the five grouping columns and the instant; a row whose counts return to zero is deleted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Select, case, delete, func, select, true
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from store.bulk import chunked, table_of
from store.models import BodyImage, ImageChange, KubeObject, ManifestVersion

_UPSERT_BATCH = 1000  # rows per statement: 10 parameters each, far below SQLite's limit
_VERSIONS_BATCH = 5000  # versions per grouped read


def group_key(cluster_id: str, kind: str, namespace: str, shape: str, value: Any) -> str:
    """The SHA-256 naming one group of slots (the table's key, with the instant)."""
    raw = json.dumps([cluster_id, kind, namespace, shape, value], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def _slots(
    versions: ColumnElement[bool], instant: InstrumentedAttribute[Any]
) -> Select[tuple[Any, ...]]:
    """The image slots of the versions `versions` selects, counted per group and `instant`
    (`first_seen` or `superseded_at`; versions without one are left out)."""
    group = (
        KubeObject.cluster_id,
        KubeObject.kind,
        KubeObject.namespace,
        BodyImage.shape,
        BodyImage.value,
        instant,
    )
    return (
        select(*group, func.count())
        .select_from(ManifestVersion)
        .join(KubeObject, KubeObject.id == ManifestVersion.object_id)
        .join(BodyImage, BodyImage.content_hash == ManifestVersion.content_hash)
        .where(versions, instant.is_not(None))
        .group_by(*group)
    )


def _change(
    session: Session, versions: ColumnElement[bool], *, sign: int, starts: bool, ends: bool
) -> int:
    """Add (`sign` 1) or take back (-1) the beginnings and/or ends of the slots of `versions`;
    returns how many rows were written."""
    changes: dict[tuple[str, datetime], dict[str, Any]] = {}
    wanted: list[tuple[InstrumentedAttribute[Any], str]] = []
    if starts:
        wanted.append((ManifestVersion.first_seen, "started"))
    if ends:
        wanted.append((ManifestVersion.superseded_at, "ended"))
    for instant, counter in wanted:
        for cluster_id, kind, namespace, shape, value, at, n in session.execute(
            _slots(versions, instant)
        ):
            key = group_key(cluster_id, kind, namespace, shape, value)
            row = changes.get((key, at))
            if row is None:
                row = changes[key, at] = {
                    "group_key": key,
                    "at": at,
                    "cluster_id": cluster_id,
                    "kind": kind,
                    "namespace": namespace,
                    "shape": shape,
                    "value": JSON.NULL if value is None else value,
                    "started": 0,
                    "ended": 0,
                }
            row[counter] += sign * int(n)
    _upsert(session, list(changes.values()))
    if sign < 0:
        _drop_empty(session, sorted({key for key, _at in changes}))
    return len(changes)


def _upsert(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, adding their counts to a row already there."""
    table = table_of(ImageChange)
    postgres = session.get_bind().dialect.name == "postgresql"
    for batch in chunked(rows, _UPSERT_BATCH):
        insert = (postgresql_insert if postgres else sqlite_insert)(table)
        statement = insert.on_conflict_do_update(
            index_elements=["group_key", "at"],
            set_={
                "started": table.c.started + insert.excluded.started,
                "ended": table.c.ended + insert.excluded.ended,
            },
        )
        session.execute(statement, batch)


def _drop_empty(session: Session, keys: Sequence[str]) -> None:
    for batch in chunked(keys):
        session.execute(
            delete(ImageChange).where(
                ImageChange.group_key.in_(batch), ImageChange.started == 0, ImageChange.ended == 0
            )
        )


def record_started(session: Session, version_ids: Iterable[int]) -> None:
    """Versions just created: their slots begin at their `first_seen`."""
    for batch in chunked(version_ids, _VERSIONS_BATCH):
        _change(session, ManifestVersion.id.in_(batch), sign=1, starts=True, ends=False)


def record_ended(session: Session, version_ids: Iterable[int]) -> None:
    """Versions just superseded (replaced, or their object deleted): their slots end at their
    `superseded_at`."""
    for batch in chunked(version_ids, _VERSIONS_BATCH):
        _change(session, ManifestVersion.id.in_(batch), sign=1, starts=False, ends=True)


def forget(session: Session, version_ids: Iterable[int]) -> None:
    """Versions about to be deleted: take back their beginnings and ends."""
    for batch in chunked(version_ids, _VERSIONS_BATCH):
        _change(session, ManifestVersion.id.in_(batch), sign=-1, starts=True, ends=True)


def backfill(session: Session, *, cluster_ids: Sequence[str] | None = None) -> int:
    """Record every stored version, or those of `cluster_ids` (which must have no rows yet:
    migration 0011, or a loader that wrote versions by other means, after the image index is
    filled); works on both engines. Returns the rows written."""
    versions: ColumnElement[bool] = true()
    if cluster_ids is not None:
        versions = ManifestVersion.object_id.in_(
            select(KubeObject.id).where(KubeObject.cluster_id.in_(cluster_ids))
        )
    return _change(session, versions, sign=1, starts=True, ends=True)


def present_per_cluster(
    *,
    since: datetime | None,
    until: datetime | None,
    cluster_ids: Sequence[str],
    kind: str | None,
    namespace: str | None,
    shapes: Iterable[str] | None,
) -> Select[tuple[Any, str, int]]:
    """(value, cluster, slots) of every value with slots current in that cluster: now (`since`
    and `until` None), or at some instant of [since, until]; in scope, of the given shapes
    (None: all)."""
    if since is None or until is None:
        slots = func.sum(ImageChange.started) - func.sum(ImageChange.ended)
        clauses: list[ColumnElement[bool]] = []
    else:
        slots = func.sum(case((ImageChange.at <= until, ImageChange.started), else_=0)) - func.sum(
            case((ImageChange.at <= since, ImageChange.ended), else_=0)
        )
        clauses = [ImageChange.at <= until]
    if cluster_ids:
        clauses.append(ImageChange.cluster_id.in_(cluster_ids))
    if kind is not None:
        clauses.append(ImageChange.kind == kind)
    if namespace is not None:
        clauses.append(ImageChange.namespace == namespace)
    if shapes is not None:
        clauses.append(ImageChange.shape.in_(sorted(shapes)))
    return (
        select(ImageChange.value, ImageChange.cluster_id, slots.label("slots"))
        .where(*clauses)
        .group_by(ImageChange.value, ImageChange.cluster_id)
        .having(slots > 0)
    )
