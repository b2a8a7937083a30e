"""Image presence over time (`image_changes`) and now (`image_present`): per cluster, kind,
namespace, shape and image value, how many image slots began and ended being current at each
instant, and how many are current now, so the `distinct` image searches add up a few rows per
cluster instead of reading every version and its body's index rows.

A slot is one row of the image index (`store.image_index`) of one manifest version: it begins
at the version's `first_seen` (`started`) and ends at its `superseded_at` (`ended`). The slots
current at some instant of [since, until] number exactly

    sum(started at or before `until`) - sum(ended at or before `since`)

(a version ended by `since` began before it), and the present ones `sum(started) - sum(ended)`,
which `image_present` keeps per group (one row per group with current slots: the present costs
what the present holds, not its history). Exactness is kept by every writer of versions:
`store.snapshots` records the versions an apply starts and ends (`record_started`,
`record_ended`, both tables in its transaction), and migrations 0011/0012 fill the tables from
the stored history (`backfill`, also what a loader that writes versions by other means calls;
on PostgreSQL one grouped INSERT ... SELECT).

The expiry purge does not take deleted versions back: it merges each group's rows before its
cutoff into one row at the cutoff (`merge_before`: started = the slots current just before it)
and records that cutoff (`image_horizon`). A deleted version began and ended before the cutoff,
so it adds nothing to a merged row, and every period from the horizon on is answered exactly;
an earlier period is not answered from the table (`covers`; the searches' surfaces refuse
periods before the retention horizon anyway). Rows are keyed by the SHA-256 of the five
grouping columns (and the instant); a row whose counts return to zero is deleted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Select,
    case,
    delete,
    func,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from store.bulk import chunked, table_of
from store.models import (
    BodyImage,
    ImageChange,
    ImageHorizon,
    ImagePresent,
    KubeObject,
    ManifestVersion,
)

_UPSERT_BATCH = 1000  # rows per statement: 10 parameters each, far below SQLite's limit
_VERSIONS_BATCH = 5000  # versions per grouped read
_GROUP = ("cluster_id", "kind", "namespace", "shape", "value")


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


def _change(session: Session, versions: ColumnElement[bool], *, starts: bool, ends: bool) -> int:
    """Add the beginnings and/or ends of the slots of `versions` to both tables; returns how
    many `image_changes` rows were written."""
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
            row[counter] += int(n)
    _upsert(session, list(changes.values()))
    present: dict[str, dict[str, Any]] = {}
    for row in changes.values():
        now = present.setdefault(
            row["group_key"],
            {name: row[name] for name in ("group_key", *_GROUP)} | {"slots": 0},
        )
        now["slots"] += row["started"] - row["ended"]
    _add_present(session, [row for row in present.values() if row["slots"]])
    return len(changes)


def _upsert(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `image_changes` rows, adding their counts to a row already there."""
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


def _add_present(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add `slots` (negative: slots ended) to the groups' `image_present` rows; a row left
    with none is deleted."""
    table = table_of(ImagePresent)
    postgres = session.get_bind().dialect.name == "postgresql"
    for batch in chunked(rows, _UPSERT_BATCH):
        insert = (postgresql_insert if postgres else sqlite_insert)(table)
        statement = insert.on_conflict_do_update(
            index_elements=["group_key"], set_={"slots": table.c.slots + insert.excluded.slots}
        )
        session.execute(statement, batch)
        if any(row["slots"] < 0 for row in batch):
            session.execute(
                delete(ImagePresent).where(
                    ImagePresent.group_key.in_(sorted({row["group_key"] for row in batch})),
                    ImagePresent.slots == 0,
                )
            )


def record_started(session: Session, version_ids: Iterable[int]) -> None:
    """Versions just created: their slots begin at their `first_seen`."""
    for batch in chunked(version_ids, _VERSIONS_BATCH):
        _change(session, ManifestVersion.id.in_(batch), starts=True, ends=False)


def record_ended(session: Session, version_ids: Iterable[int]) -> None:
    """Versions just superseded (replaced, or their object deleted): their slots end at their
    `superseded_at`."""
    for batch in chunked(version_ids, _VERSIONS_BATCH):
        _change(session, ManifestVersion.id.in_(batch), starts=False, ends=True)


def backfill(session: Session, *, cluster_ids: Sequence[str] | None = None) -> int:
    """Record every stored version, or those of `cluster_ids` (which must have no rows yet:
    migrations 0011/0012, or a loader that wrote versions by other means, after the image
    index is filled), in both tables. Returns the `image_changes` rows written."""
    if session.get_bind().dialect.name == "postgresql":
        return _backfill_postgres(session, cluster_ids=cluster_ids)
    versions: ColumnElement[bool] = true()
    if cluster_ids is not None:
        versions = ManifestVersion.object_id.in_(
            select(KubeObject.id).where(KubeObject.cluster_id.in_(cluster_ids))
        )
    return _change(session, versions, starts=True, ends=True)


_STAGE = """
    CREATE TEMPORARY TABLE presence_stage ON COMMIT DROP AS
    SELECT o.cluster_id, o.kind, o.namespace, i.shape, i.value, e.at,
           sum(e.started)::integer AS started, sum(e.ended)::integer AS ended
    FROM manifest_versions v
    JOIN objects o ON o.id = v.object_id
    JOIN body_images i ON i.content_hash = v.content_hash
    CROSS JOIN LATERAL (VALUES (v.first_seen, 1, 0), (v.superseded_at, 0, 1))
        AS e(at, started, ended)
    WHERE e.at IS NOT NULL {scope}
    GROUP BY o.cluster_id, o.kind, o.namespace, i.shape, i.value, e.at
"""
_GROUPS = """
    SELECT DISTINCT cluster_id, kind, namespace, shape, value FROM presence_stage
"""
_KEYED = """
    FROM presence_stage s JOIN presence_keys k
      ON k.cluster_id = s.cluster_id AND k.kind = s.kind AND k.namespace = s.namespace
     AND k.shape = s.shape AND k.value = s.value
"""
_CHANGES = f"""
    INSERT INTO image_changes
        (group_key, at, cluster_id, kind, namespace, shape, value, started, ended)
    SELECT k.group_key, s.at, s.cluster_id, s.kind, s.namespace, s.shape, s.value,
           s.started, s.ended
    {_KEYED}
    ON CONFLICT (group_key, at) DO UPDATE
    SET started = image_changes.started + excluded.started,
        ended = image_changes.ended + excluded.ended
"""  # noqa: S608 - fixed text only
_PRESENT = f"""
    INSERT INTO image_present (group_key, cluster_id, kind, namespace, shape, value, slots)
    SELECT k.group_key, s.cluster_id, s.kind, s.namespace, s.shape, s.value,
           sum(s.started - s.ended)
    {_KEYED}
    GROUP BY k.group_key, s.cluster_id, s.kind, s.namespace, s.shape, s.value
    HAVING sum(s.started - s.ended) <> 0
    ON CONFLICT (group_key) DO UPDATE SET slots = image_present.slots + excluded.slots
"""


def _backfill_postgres(session: Session, *, cluster_ids: Sequence[str] | None) -> int:
    """`backfill` on PostgreSQL: the slots grouped per group and instant inside the database,
    the group keys computed here once per group (a few per cluster and image), then two
    INSERT ... SELECT."""
    scope = "" if cluster_ids is None else "AND o.cluster_id = ANY(:clusters)"
    params = {} if cluster_ids is None else {"clusters": list(cluster_ids)}
    session.execute(text("DROP TABLE IF EXISTS presence_stage, presence_keys"))
    session.execute(text(_STAGE.format(scope=scope)), params)
    session.execute(
        text(
            "CREATE TEMPORARY TABLE presence_keys (group_key text, cluster_id text, kind text, "
            "namespace text, shape text, value jsonb) ON COMMIT DROP"
        )
    )
    keys = [
        {
            "group_key": group_key(cluster_id, kind, namespace, shape, value),
            "cluster_id": cluster_id,
            "kind": kind,
            "namespace": namespace,
            "shape": shape,
            "value": json.dumps(value),
        }
        for cluster_id, kind, namespace, shape, value in session.execute(text(_GROUPS))
    ]
    for batch in chunked(keys, _UPSERT_BATCH):
        session.execute(
            text(
                "INSERT INTO presence_keys VALUES (:group_key, :cluster_id, :kind, :namespace, "
                ":shape, CAST(:value AS jsonb))"
            ),
            batch,
        )
    session.execute(text("ANALYZE presence_stage, presence_keys"))
    written = session.execute(text(_CHANGES)).rowcount  # type: ignore[attr-defined]
    session.execute(text(_PRESENT))
    session.execute(text("DROP TABLE presence_stage, presence_keys"))
    return int(written or 0)


def horizon(session: Session) -> datetime | None:
    """The instant before which `image_changes` is merged (None: never)."""
    return session.scalar(select(ImageHorizon.merged_before).where(ImageHorizon.id == 1))


def covers(session: Session, since: datetime | None) -> bool:
    """Whether the tables answer the present (`since` None) or a period from `since` on
    exactly: not before the horizon of the purge's merge."""
    if since is None:
        return True
    merged = horizon(session)
    return merged is None or since >= merged


def merge_before(session: Session, *, cutoff: datetime, batch_size: int) -> int:
    """Merge the `image_changes` rows before `cutoff` of up to `batch_size` groups into one
    row per group at `cutoff` (started: the group's slots current just before it), after
    moving the horizon to `cutoff`; returns how many rows were merged away (0: none left)."""
    table = table_of(ImageHorizon)
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = (postgresql_insert if postgres else sqlite_insert)(table)
    session.execute(
        insert.values(id=1, merged_before=cutoff).on_conflict_do_update(
            index_elements=["id"],
            set_={
                "merged_before": case(
                    (table.c.merged_before < cutoff, cutoff), else_=table.c.merged_before
                )
            },
        )
    )
    keys = sorted(
        set(
            session.scalars(
                select(ImageChange.group_key).where(ImageChange.at < cutoff).limit(batch_size)
            )
        )
    )
    if not keys:
        return 0
    columns = [getattr(ImageChange, name) for name in ("group_key", *_GROUP)]
    before = ImageChange.group_key.in_(keys), ImageChange.at < cutoff
    slots = func.sum(ImageChange.started) - func.sum(ImageChange.ended)
    merged = [
        {
            **{name: row[i] for i, name in enumerate(("group_key", *_GROUP))},
            "value": JSON.NULL if row[5] is None else row[5],
            "at": cutoff,
            "started": int(row[6]),
            "ended": 0,
        }
        for row in session.execute(
            select(*columns, slots).where(*before).group_by(ImageChange.group_key, *columns[1:])
        )
        if row[6]
    ]
    removed = session.execute(delete(ImageChange).where(*before)).rowcount  # type: ignore[attr-defined]
    _upsert(session, merged)
    return int(removed or 0)


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
    and `until` None; from `image_present`), or at some instant of [since, until] (from
    `image_changes`; `covers` says whether it can); in scope, of the given shapes (None: all)."""
    table: Any = ImagePresent
    slots: ColumnElement[Any]
    if since is None or until is None:
        slots = func.sum(ImagePresent.slots)
        clauses: list[ColumnElement[bool]] = []
    else:
        table = ImageChange
        slots = func.sum(case((ImageChange.at <= until, ImageChange.started), else_=0)) - func.sum(
            case((ImageChange.at <= since, ImageChange.ended), else_=0)
        )
        clauses = [ImageChange.at <= until]
    if cluster_ids:
        clauses.append(table.cluster_id.in_(cluster_ids))
    if kind is not None:
        clauses.append(table.kind == kind)
    if namespace is not None:
        clauses.append(table.namespace == namespace)
    if shapes is not None:
        clauses.append(table.shape.in_(sorted(shapes)))
    return (
        select(table.value, table.cluster_id, slots.label("slots"))
        .where(*clauses)
        .group_by(table.value, table.cluster_id)
        .having(slots > 0)
    )
