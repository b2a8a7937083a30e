"""Image presence over time (`image_changes`), now (`image_present`) and at daily checkpoints
(`image_checkpoint_slots`): per group of image slots (`image_groups`: a cluster, kind,
namespace, shape and image value, named by a small integer), how many slots began and ended
being current at each instant, how many are current now and how many were at each checkpoint,
so the `distinct` image searches add up a few rows per group instead of reading every version
and its body's index rows.

A slot is one row of the image index (`store.image_index`) of one manifest version: it begins
at the version's `first_seen` (`started`) and ends at its `superseded_at` (`ended`). The slots
current at some instant of [since, until] number exactly

    sum(started at or before `until`) - sum(ended at or before `since`)        (1)

(a version ended by `since` began before it), and the present ones `sum(started) - sum(ended)`,
which `image_present` keeps per group (one row per group with current slots: the present costs
what the present holds, not its history). Exactness is kept by every writer of versions:
`store.snapshots` records the versions an apply starts and ends (`record_started`,
`record_ended`, all the tables in its transaction), and migration 0015 fills the tables from
the stored history (`backfill`, also what a loader that writes versions by other means calls;
on PostgreSQL a few INSERT ... SELECT).

Checkpoints. A checkpoint at instant D holds, per group, S(D) = sum(started - ended) over its
rows at or before D (no row when 0). For D <= since <= until, (1) splits at D into

    S(D) + sum(started, D < at <= until) - sum(ended, D < at <= since)        (2)

so a search back in time reads the latest checkpoint at or before `since` (`checkpoint_for`)
and the rows after it: one day of history at most, instead of everything before `until`.
Any checkpoint D <= since gives the same answer, so a missing one only costs time; what must
hold is that every checkpoint's S(D) stays the sum of the rows at or before D:

- Taking one (`take_checkpoints`, daily midnights UTC, by the expiry purge and by loaders)
  computes S(D) = S(D0) + sum(started - ended, D0 < at <= D) from the checkpoint D0 before it
  (or from every row at or before D), in one INSERT ... SELECT.
- A row written later with `at <= D` (an apply of a snapshot received before D that lands
  after the checkpoint: its instants are the snapshot's) adds its `started - ended` to S(D)
  of every checkpoint D >= at, in the same transaction as the row (`_count_in_checkpoints`).
- What an apply writes while a checkpoint is being taken is the race: the checkpoint's
  INSERT ... SELECT would not see rows not yet committed, and the apply, having looked for
  checkpoints before this one existed, would not add to it. On PostgreSQL every writer of
  rows holds a shared transaction-level advisory lock (`_writing`) from before it looks for
  checkpoints until it commits, and taking a checkpoint holds the exclusive one: it waits for
  the applies in flight to commit (their rows are then visible to its statements, read
  committed) and the applies after it wait for its commit (they then see the checkpoint and
  add to it). SQLite has one writer at a time, so the two never overlap.
- The purge's merge (below) keeps S(D) for every D at or after its cutoff (it moves the rows
  before the cutoff to the cutoff, summed) and deletes the checkpoints before it, in the same
  transaction that moves the horizon; searches use no checkpoint before the horizon either.

Day summaries. `store.presence_days` derives, per checkpoint and day, per image value rather
than per group, what the fleet-wide searches back in time read instead (PostgreSQL). A write
of rows counted in a derived checkpoint (`_count_in_checkpoints`,
`count_clusters_in_checkpoints`) drops the summaries of that checkpoint and the later ones
(`forget_days`) in its transaction, to be derived again.

`tests/store/test_image_index.py` checks all of this against a rebuild from the versions,
including an old snapshot applied after a checkpoint and purges at several depths.

The expiry purge does not take deleted versions back: it merges each group's rows before its
cutoff into one row at the cutoff (`merge_before`: started = the slots current just before it)
and records that cutoff (`image_horizon`). A deleted version began and ended before the cutoff,
so it adds nothing to a merged row, and every period from the horizon on is answered exactly;
an earlier period is not answered from the tables (`covers`; the searches' surfaces refuse
periods before the retention horizon anyway). A row whose counts return to zero is deleted.
Groups stay (one row per kind of slot ever seen, a few per cluster and image) until their
cluster is deleted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Select,
    case,
    delete,
    func,
    literal,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from store.bulk import chunked, dialect_insert, table_of
from store.db import local_settings, on_postgresql
from store.models import (
    BodyImage,
    ImageChange,
    ImageCheckpoint,
    ImageCheckpointSlots,
    ImageDerivedDay,
    ImageGroup,
    ImageHorizon,
    ImagePresent,
    KubeObject,
    ManifestVersion,
)
from store.types import UtcDateTime

# The presence queries read a few hundred thousand narrow rows; PostgreSQL's cost estimate for
# them passes `jit_above_cost`, and compiling them (inlining and optimising ~85 functions) took
# 2-3 s of a 3.4 s time-travel search at 25 clusters on a busy machine, against about 1 s for
# the query itself: they run with JIT off (`store.db.local_settings`).
JIT_OFF = "off"

_UPSERT_BATCH = 1000  # rows per statement: at most 6 parameters each, far below SQLite's limit
_VERSIONS_BATCH = 5000  # versions per grouped read
_GROUP = ("cluster_id", "kind", "namespace", "shape", "value")
CHECKPOINT_EVERY = timedelta(days=1)  # checkpoints are taken at every UTC midnight
# PostgreSQL advisory lock between the writers of rows (shared) and a checkpoint (exclusive).
_CHECKPOINT_LOCK = 0x6B386D_1C4B  # "k8m" + "checkpoint", any constant no other lock uses
# PostgreSQL advisory lock between forgetting day summaries (shared) and deriving them
# (exclusive, `store.presence_days.derive_days`).
DAYS_LOCK = 0x6B386D_DA75


def group_key(cluster_id: str, kind: str, namespace: str, shape: str, value: Any) -> str:
    """The SHA-256 naming one group of slots (`image_groups.key`)."""
    raw = json.dumps([cluster_id, kind, namespace, shape, value], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def _insert(session: Session, model: Any) -> Any:
    return dialect_insert(session, table_of(model))


def _writing(session: Session) -> None:
    """Before rows are written: the shared side of the checkpoint lock (PostgreSQL; held until
    the transaction ends)."""
    if on_postgresql(session):
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": _CHECKPOINT_LOCK})


def forget_days(session: Session, *, since: datetime | None) -> None:
    """Rows counted in the checkpoints at or after `since` (None: any) changed: their day
    summaries (`store.presence_days`, PostgreSQL only) go, to be derived again."""
    if not on_postgresql(session):
        return
    session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": DAYS_LOCK})
    if since is None:
        session.execute(
            text(
                "TRUNCATE image_day_events, image_hour_changes, image_day_changes, "
                "image_checkpoint_values, image_derived_days"
            )
        )
        return
    session.execute(delete(ImageDerivedDay).where(ImageDerivedDay.at >= since))


def _checkpointing(session: Session) -> None:
    """Before a checkpoint is taken: the exclusive side (PostgreSQL; until the transaction ends)."""
    if on_postgresql(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHECKPOINT_LOCK})


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


def _group_ids(session: Session, groups: dict[str, dict[str, Any]]) -> dict[str, int]:
    """The ids of the groups `groups` names (key -> its five columns), the missing ones made."""
    ids: dict[str, int] = {}

    def read(keys: Sequence[str]) -> None:
        for batch in chunked(keys, _UPSERT_BATCH):
            ids.update(
                (key, int(id_))
                for key, id_ in session.execute(
                    select(ImageGroup.key, ImageGroup.id).where(ImageGroup.key.in_(batch))
                )
            )

    read(sorted(groups))
    missing = [{"key": key, **groups[key]} for key in sorted(groups) if key not in ids]
    for batch in chunked(missing, _UPSERT_BATCH):
        session.execute(_insert(session, ImageGroup).on_conflict_do_nothing(), batch)
    read([row["key"] for row in missing])
    return ids


def _change(session: Session, versions: ColumnElement[bool], *, starts: bool, ends: bool) -> int:
    """Add the beginnings and/or ends of the slots of `versions` to the tables; returns how
    many `image_changes` rows were written."""
    counts: dict[tuple[str, datetime], list[int]] = {}
    groups: dict[str, dict[str, Any]] = {}
    wanted: list[tuple[InstrumentedAttribute[Any], int]] = []
    if starts:
        wanted.append((ManifestVersion.first_seen, 0))
    if ends:
        wanted.append((ManifestVersion.superseded_at, 1))
    for instant, counter in wanted:
        for cluster_id, kind, namespace, shape, value, at, n in session.execute(
            _slots(versions, instant)
        ):
            key = group_key(cluster_id, kind, namespace, shape, value)
            if key not in groups:
                groups[key] = {
                    "cluster_id": cluster_id,
                    "kind": kind,
                    "namespace": namespace,
                    "shape": shape,
                    "value": JSON.NULL if value is None else value,
                }
            counts.setdefault((key, at), [0, 0])[counter] += int(n)
    if not counts:
        return 0
    _writing(session)
    ids = _group_ids(session, groups)
    rows: list[dict[str, Any]] = [
        {"group_id": ids[key], "at": at, "started": started, "ended": ended}
        for (key, at), (started, ended) in counts.items()
    ]
    _upsert(session, rows)
    present: dict[str, int] = {}
    for (key, _at), (started, ended) in counts.items():
        present[key] = present.get(key, 0) + started - ended
    _add_present(
        session,
        [
            {"group_id": ids[key], **groups[key], "slots": n}
            for key, n in sorted(present.items(), key=lambda item: ids[item[0]])
            if n
        ],
    )
    _count_in_checkpoints(session, rows)
    return len(rows)


def _upsert(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `image_changes` rows, adding their counts to a row already there."""
    table = table_of(ImageChange)
    for batch in chunked(rows, _UPSERT_BATCH):
        insert = _insert(session, ImageChange)
        statement = insert.on_conflict_do_update(
            index_elements=["group_id", "at"],
            set_={
                "started": table.c.started + insert.excluded.started,
                "ended": table.c.ended + insert.excluded.ended,
            },
        )
        session.execute(statement, batch)


def _add_present(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add `slots` (negative: slots ended) to the groups' `image_present` rows."""
    _add_slots(session, ImagePresent, keys=("group_id",), rows=rows)


def _count_in_checkpoints(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add new `image_changes` counts to every checkpoint at or after their instant."""
    earliest = min(row["at"] for row in rows)
    later = select(ImageCheckpoint.at).where(ImageCheckpoint.at >= earliest)
    instants = list(session.scalars(later))
    if not instants:
        return
    forget_days(session, since=earliest)
    deltas: dict[tuple[datetime, int], int] = {}
    for row in rows:
        net = row["started"] - row["ended"]
        for at in instants:
            if net and at >= row["at"]:
                deltas[at, row["group_id"]] = deltas.get((at, row["group_id"]), 0) + net
    _add_checkpoint_slots(
        session,
        [{"at": at, "group_id": g, "slots": n} for (at, g), n in sorted(deltas.items()) if n],
    )


def _add_checkpoint_slots(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add `slots` to checkpoint rows."""
    _add_slots(session, ImageCheckpointSlots, keys=("at", "group_id"), rows=rows)


def _add_slots(
    session: Session,
    model: type[ImagePresent] | type[ImageCheckpointSlots],
    *,
    keys: Sequence[str],
    rows: Sequence[dict[str, Any]],
) -> None:
    """Add each row's `slots` to the `model` row with the same `keys` (inserted when absent);
    a row left with none is deleted."""
    table = table_of(model)
    for batch in chunked(rows, _UPSERT_BATCH):
        insert = _insert(session, model)
        statement = insert.on_conflict_do_update(
            index_elements=list(keys), set_={"slots": table.c.slots + insert.excluded.slots}
        )
        session.execute(statement, batch)
    if not any(row["slots"] < 0 for row in rows):
        return
    first = table.c[keys[0]]
    for values in chunked(sorted({row[keys[0]] for row in rows}), _UPSERT_BATCH):
        session.execute(delete(table).where(first.in_(values), table.c.slots == 0))


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
    migration 0015, or a loader that wrote versions by other means, after the image index is
    filled), in the tables, checkpoints included. Returns the `image_changes` rows written."""
    if not on_postgresql(session):
        versions: ColumnElement[bool] = true()
        if cluster_ids is not None:
            versions = ManifestVersion.object_id.in_(
                select(KubeObject.id).where(KubeObject.cluster_id.in_(cluster_ids))
            )
        return _change(session, versions, starts=True, ends=True)
    written = _backfill_postgres(session, cluster_ids=cluster_ids)
    count_clusters_in_checkpoints(session, cluster_ids=cluster_ids)
    return written


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
_NEW_GROUPS = """
    INSERT INTO image_groups (key, cluster_id, kind, namespace, shape, value)
    SELECT key, cluster_id, kind, namespace, shape, value FROM presence_keys ORDER BY key
    ON CONFLICT (key) DO NOTHING
"""
_KEYED = """
    FROM presence_stage s JOIN presence_keys k
      ON k.cluster_id = s.cluster_id AND k.kind = s.kind AND k.namespace = s.namespace
     AND k.shape = s.shape AND k.value = s.value
    JOIN image_groups g ON g.key = k.key
"""
_CHANGES = f"""
    INSERT INTO image_changes (group_id, at, started, ended)
    SELECT g.id, s.at, s.started, s.ended
    {_KEYED}
    ON CONFLICT (group_id, at) DO UPDATE
    SET started = image_changes.started + excluded.started,
        ended = image_changes.ended + excluded.ended
"""  # noqa: S608 - fixed text only
_PRESENT = f"""
    INSERT INTO image_present (group_id, cluster_id, kind, namespace, shape, value, slots)
    SELECT g.id, g.cluster_id, g.kind, g.namespace, g.shape, g.value, sum(s.started - s.ended)
    {_KEYED}
    GROUP BY g.id
    HAVING sum(s.started - s.ended) <> 0
    ON CONFLICT (group_id) DO UPDATE SET slots = image_present.slots + excluded.slots
"""


def _backfill_postgres(session: Session, *, cluster_ids: Sequence[str] | None) -> int:
    """`backfill` on PostgreSQL: the slots grouped per group and instant inside the database,
    the group keys computed here once per group (a few per cluster and image), then one
    INSERT ... SELECT per table."""
    scope = "" if cluster_ids is None else "AND o.cluster_id = ANY(:clusters)"
    params = {} if cluster_ids is None else {"clusters": list(cluster_ids)}
    _writing(session)
    session.execute(text("DROP TABLE IF EXISTS presence_stage, presence_keys"))
    session.execute(text(_STAGE.format(scope=scope)), params)
    session.execute(
        text(
            "CREATE TEMPORARY TABLE presence_keys (key text, cluster_id text, kind text, "
            "namespace text, shape text, value jsonb) ON COMMIT DROP"
        )
    )
    keys = [
        {
            "key": group_key(cluster_id, kind, namespace, shape, value),
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
                "INSERT INTO presence_keys VALUES (:key, :cluster_id, :kind, :namespace, "
                ":shape, CAST(:value AS jsonb))"
            ),
            batch,
        )
    session.execute(text("ANALYZE presence_stage, presence_keys"))
    session.execute(text(_NEW_GROUPS))
    written = session.execute(text(_CHANGES)).rowcount  # type: ignore[attr-defined]
    session.execute(text(_PRESENT))
    session.execute(text("DROP TABLE presence_stage, presence_keys"))
    return int(written or 0)


def count_clusters_in_checkpoints(
    session: Session, *, cluster_ids: Sequence[str] | None = None
) -> int:
    """Add the `image_changes` rows of `cluster_ids` (None: every cluster) to every checkpoint
    at or after them: for rows written by other means than `record_started`/`record_ended`
    (`backfill`, a loader's COPY) after checkpoints were taken, which must not count in them
    yet. Returns the checkpoint rows written."""
    _writing(session)
    if session.scalar(select(func.count()).select_from(ImageCheckpoint)) == 0:
        return 0
    forget_days(session, since=None)
    scope: ColumnElement[bool] = true()
    if cluster_ids is not None:
        scope = ImageGroup.cluster_id.in_(list(cluster_ids))
    net = func.sum(ImageChange.started - ImageChange.ended)
    counted = (
        select(ImageCheckpoint.at, ImageChange.group_id, net)
        .select_from(ImageCheckpoint)
        .join(ImageChange, ImageChange.at <= ImageCheckpoint.at)
        .join(ImageGroup, ImageGroup.id == ImageChange.group_id)
        .where(scope)
        .group_by(ImageCheckpoint.at, ImageChange.group_id)
        .having(net != 0)
    )
    table = table_of(ImageCheckpointSlots)
    insert = _insert(session, ImageCheckpointSlots)
    statement = insert.from_select(["at", "group_id", "slots"], counted).on_conflict_do_update(
        index_elements=["at", "group_id"], set_={"slots": table.c.slots + insert.excluded.slots}
    )
    with local_settings(session, jit=JIT_OFF):
        written = int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
    session.execute(delete(ImageCheckpointSlots).where(ImageCheckpointSlots.slots == 0))
    return written


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


def checkpoint_for(session: Session, since: datetime) -> datetime | None:
    """The latest checkpoint at or before `since` and not before the merge horizon (None: no
    such checkpoint; a search then adds up every row before its period)."""
    merged = horizon(session)
    clauses = [ImageCheckpoint.at <= since]
    if merged is not None:
        clauses.append(ImageCheckpoint.at >= merged)
    return session.scalar(select(func.max(ImageCheckpoint.at)).where(*clauses))


def _midnight_after(instant: datetime) -> datetime:
    """The first UTC midnight at or after `instant`."""
    day = instant.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if day == instant else day + CHECKPOINT_EVERY


def take_checkpoints(
    session: Session, *, until: datetime | None = None, budget: int | None = None
) -> int:
    """Take the missing daily checkpoints, oldest first, from the day after the latest one (or
    the first midnight of the history kept) to the last midnight the history reaches (and not
    after `until`), until `budget` rows are written (None: all of them); returns the rows
    written (checkpoints and their slot rows). PostgreSQL: the writers of rows wait while it
    runs (module docstring)."""
    _checkpointing(session)
    last = session.scalar(select(func.max(ImageChange.at)))
    if last is None:
        return 0
    if until is not None:
        last = min(last, until)
    merged = horizon(session)
    base = session.scalar(select(func.max(ImageCheckpoint.at)))
    if base is not None and merged is not None and base < merged:
        base = None  # (the merge deletes those; never counted from)
    if base is not None:
        day = base + CHECKPOINT_EVERY
    else:
        first: datetime = session.scalar(select(func.min(ImageChange.at))) or last
        day = _midnight_after(max(first, merged) if merged is not None else first)
    written = 0
    while day <= last and (budget is None or written < budget):
        written += _take(session, day, base=base)
        base, day = day, day + CHECKPOINT_EVERY
    return written


def _take(session: Session, day: datetime, *, base: datetime | None) -> int:
    """One checkpoint at `day`, counted from the checkpoint `base` before it (or from the
    start); returns the rows written."""
    rows = [ImageChange.at <= day]
    if base is not None:
        rows.append(ImageChange.at > base)
    parts: list[Select[int, int]] = [
        select(ImageChange.group_id, (ImageChange.started - ImageChange.ended).label("n")).where(
            *rows
        )
    ]
    if base is not None:
        parts.append(
            select(ImageCheckpointSlots.group_id, ImageCheckpointSlots.slots.label("n")).where(
                ImageCheckpointSlots.at == base
            )
        )
    source = union_all(*parts).subquery()
    net = func.sum(source.c.n)
    session.execute(_insert(session, ImageCheckpoint).values(at=day))
    counted = (
        select(literal(day, UtcDateTime()), source.c.group_id, net)
        .group_by(source.c.group_id)
        .having(net != 0)
    )
    with local_settings(session, jit=JIT_OFF):
        written = session.execute(
            table_of(ImageCheckpointSlots)
            .insert()
            .from_select(["at", "group_id", "slots"], counted)
        ).rowcount  # type: ignore[attr-defined]
    return 1 + int(written or 0)


def merge_before(session: Session, *, cutoff: datetime, batch_size: int) -> int:
    """Merge the `image_changes` rows before `cutoff` of up to `batch_size` groups into one
    row per group at `cutoff` (started: the group's slots current just before it), after
    moving the horizon to `cutoff` and deleting the checkpoints before it; returns how many
    rows were merged away (0: none left)."""
    _writing(session)
    table = table_of(ImageHorizon)
    insert = _insert(session, ImageHorizon)
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
    session.execute(delete(ImageCheckpointSlots).where(ImageCheckpointSlots.at < cutoff))
    session.execute(delete(ImageCheckpoint).where(ImageCheckpoint.at < cutoff))
    ids = sorted(
        set(
            session.scalars(
                select(ImageChange.group_id).where(ImageChange.at < cutoff).limit(batch_size)
            )
        )
    )
    if not ids:
        return 0
    before = ImageChange.group_id.in_(ids), ImageChange.at < cutoff
    slots = func.sum(ImageChange.started) - func.sum(ImageChange.ended)
    merged = [
        {"group_id": group_id, "at": cutoff, "started": int(n), "ended": 0}
        for group_id, n in session.execute(
            select(ImageChange.group_id, slots).where(*before).group_by(ImageChange.group_id)
        )
        if n
    ]
    removed = session.execute(delete(ImageChange).where(*before)).rowcount  # type: ignore[attr-defined]
    _upsert(session, merged)
    return int(removed or 0)


def present_per_cluster(
    *,
    since: datetime | None,
    until: datetime | None,
    checkpoint: datetime | None = None,
    cluster_ids: Sequence[str],
    kind: str | None,
    namespace: str | None,
    shapes: Iterable[str] | None,
    groups: Select[Any] | None = None,
) -> Select[tuple[Any, str, int]]:
    """(value, cluster, slots) of every value with slots current in that cluster: now (`since`
    and `until` None; from `image_present`), or at some instant of [since, until] (from
    `image_changes` after `checkpoint`, if given, and that checkpoint's slots: formula (2);
    `covers` says whether the tables can, `checkpoint_for` which checkpoint to give); in scope,
    of the given shapes (None: all) and, if `groups` selects ids, of those groups."""
    clauses: list[ColumnElement[bool]] = []
    table: Any = ImagePresent  # now: the present rows carry the group's columns
    if since is not None and until is not None:
        table = ImageGroup
    if cluster_ids:
        clauses.append(table.cluster_id.in_(cluster_ids))
    if kind is not None:
        clauses.append(table.kind == kind)
    if namespace is not None:
        clauses.append(table.namespace == namespace)
    if shapes is not None:
        clauses.append(table.shape.in_(sorted(shapes)))
    if groups is not None:
        group_id = ImagePresent.group_id if table is ImagePresent else ImageGroup.id
        clauses.append(group_id.in_(groups))
    if since is None or until is None:
        present = func.sum(ImagePresent.slots)
        return (
            select(ImagePresent.value, ImagePresent.cluster_id, present.label("slots"))
            .where(*clauses)
            .group_by(ImagePresent.value, ImagePresent.cluster_id)
            .having(present > 0)
        )
    # One row per checkpoint slot row and per change after it, joined to its group and summed
    # per value and cluster (no sum per group first: the planner then sees two scans of known
    # size and hashes the join, where it guessed a few groups and looked each one up).
    started = case((ImageChange.at <= until, ImageChange.started), else_=0)
    ended = case((ImageChange.at <= since, ImageChange.ended), else_=0)
    rows = [ImageChange.at <= until]
    if checkpoint is not None:
        rows.append(ImageChange.at > checkpoint)
    parts: list[Select[int, int]] = [
        select(ImageChange.group_id, (started - ended).label("slots")).where(*rows)
    ]
    if checkpoint is not None:
        parts.append(
            select(ImageCheckpointSlots.group_id, ImageCheckpointSlots.slots).where(
                ImageCheckpointSlots.at == checkpoint
            )
        )
    counted = union_all(*parts).subquery()
    slots = func.sum(counted.c.slots)
    return (
        select(ImageGroup.value, ImageGroup.cluster_id, slots.label("slots"))
        .select_from(counted)
        .join(ImageGroup, ImageGroup.id == counted.c.group_id)
        .where(*clauses)
        .group_by(ImageGroup.value, ImageGroup.cluster_id)
        .having(slots > 0)
    )
