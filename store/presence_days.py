"""Day summaries of image presence (PostgreSQL): the time-travel `distinct` image searches
answered per image value instead of per value and cluster.

`store.image_presence` answers "which images were current at some instant of [since, until]"
from the latest daily checkpoint D before `since` and the changes after it, per group, then
sums them per JSON value and cluster: its cost grows with the fleet (about 2,900 checkpoint
rows per cluster, and a day of changes touches nearly every value of every cluster). Here
an image is one value at one shape (`image_values`, an integer), a pair is an image in one
cluster, and for every derived checkpoint D (`image_derived_days`):

- `image_checkpoint_values`: per image, the slots current at D and the pairs with any;
- `image_day_changes`: the day before D (from the checkpoint a day earlier, `base`), the
  `image_changes` rows summed per image, cluster and instant;
- `image_day_events`: the instants of that day at which a pair came (its slots went from 0
  to some: `delta` 1) or left (to 0: -1), a coming with the instant the pair last left
  (`prev_left`; None when not since the first derived checkpoint).

For a period [since, until] with its checkpoint D and every day up to `until` derived, per
image (formula (1) of `store.image_presence`, split at D):

    slots  = slots(D) + sum(started, D < at <= until) - sum(ended, D < at <= since)
    pairs  = pairs(D) + sum(delta, D < at <= since)
             + comings in (since, until] whose pair last left at or before `since`

(a pair counts when some slot of it is current at some instant of the period: current at
`since`, or come after it; a pair current at `since` that leaves and comes again, or one
that comes, leaves and comes again, last left after `since`). Comings and leavings are about
230 per cluster and day in the fleet-scale bench, against 4,600 changes. The clusters of a
value are the pairs of its one image in the path's shapes; a value with images at two of
them (the same image as a container and an init container) may count a cluster twice, so
its clusters are counted per cluster from `store.image_presence` (`search`).

The days are derived by the expiry purge after it takes the checkpoints (`derive_days`, one
day per call, oldest first, each from the one before); rows counted in a derived checkpoint
that change afterwards (an old snapshot applied late, a loader's rows) drop that day and the
later ones (`image_presence.forget_days`), the purge's merge drops the days before its
cutoff with their checkpoints, and deleting a cluster drops them all (a trigger): a search
whose days are not all derived reads `store.image_presence` as before. Deriving holds an
advisory lock that forgetting waits for (`image_presence.DAYS_LOCK`), so a day is never
derived from rows that change under it. SQLite derives none.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session

from store.db import local_settings, on_postgresql
from store.image_presence import CHECKPOINT_EVERY, DAYS_LOCK, JIT_OFF, horizon
from store.models import (
    ImageCheckpoint,
    ImageCheckpointValue,
    ImageDayChange,
    ImageDayEvent,
    ImageDerivedDay,
    ImageHourChange,
)

_VALUES = """
    INSERT INTO image_values (shape, value)
    SELECT DISTINCT shape, value FROM image_groups
    ON CONFLICT (shape, value) DO NOTHING
"""
# Per image and cluster, the slots current at a checkpoint (its groups' rows summed).
_PAIRS_AT = """
    SELECT v.id AS value_id, g.cluster_id, sum(s.slots) AS n
    FROM image_checkpoint_slots s
    JOIN image_groups g ON g.id = s.group_id
    JOIN image_values v ON v.shape = g.shape AND v.value = g.value
    WHERE s.at = :at
    GROUP BY v.id, g.cluster_id
"""
_CHECKPOINT_VALUES = f"""
    INSERT INTO image_checkpoint_values (at, value_id, slots, pairs)
    SELECT :at, value_id, sum(n), count(*) FROM ({_PAIRS_AT}) AS p
    WHERE n > 0
    GROUP BY value_id
"""  # noqa: S608 - fixed text only
_DAY_CHANGES = """
    INSERT INTO image_day_changes (at, value_id, cluster_id, day, started, ended)
    SELECT c.at, v.id, g.cluster_id, :at, sum(c.started), sum(c.ended)
    FROM image_changes c
    JOIN image_groups g ON g.id = c.group_id
    JOIN image_values v ON v.shape = g.shape AND v.value = g.value
    WHERE c.at > :base AND c.at <= :at
    GROUP BY c.at, v.id, g.cluster_id
"""
# The day's changes per image and whole UTC hour (the hour ending at or after each instant).
_HOUR_CHANGES = """
    INSERT INTO image_hour_changes (hour, value_id, day, started, ended)
    SELECT h.hour, c.value_id, :at, sum(c.started), sum(c.ended)
    FROM image_day_changes c
    CROSS JOIN LATERAL (SELECT date_bin('1 hour', c.at, :at) AS floor) AS f
    CROSS JOIN LATERAL (SELECT CASE WHEN f.floor = c.at THEN c.at
                                    ELSE f.floor + interval '1 hour' END AS hour) AS h
    WHERE c.day = :at
    GROUP BY h.hour, c.value_id
"""
# A pair's slots after each of its instants of the day (from the base checkpoint's), where
# they leave or return to 0; a coming's previous leaving is the day's one before it, or the
# pair's last one of the days derived before.
_DAY_EVENTS = f"""
    INSERT INTO image_day_events (at, value_id, cluster_id, day, delta, prev_left)
    WITH base AS ({_PAIRS_AT.replace(":at", ":base")}),
    running AS (
        SELECT c.value_id, c.cluster_id, c.at, coalesce(b.n, 0) AS n0,
               coalesce(b.n, 0) + sum(c.started - c.ended)
                   OVER (PARTITION BY c.value_id, c.cluster_id ORDER BY c.at) AS n
        FROM image_day_changes c
        LEFT JOIN base b ON b.value_id = c.value_id AND b.cluster_id = c.cluster_id
        WHERE c.day = :at
    ),
    flips AS (
        SELECT value_id, cluster_id, at, n,
               coalesce(lag(n) OVER (PARTITION BY value_id, cluster_id ORDER BY at), n0)
                   AS before
        FROM running
    ),
    events AS (
        SELECT value_id, cluster_id, at, CASE WHEN n > 0 THEN 1 ELSE -1 END AS delta
        FROM flips WHERE (before > 0) <> (n > 0)
    )
    SELECT e.at, e.value_id, e.cluster_id, :at, e.delta,
           CASE WHEN e.delta = 1 THEN coalesce(
               lag(e.at) OVER (PARTITION BY e.value_id, e.cluster_id ORDER BY e.at),
               (SELECT max(p.at) FROM image_day_events p
                WHERE p.value_id = e.value_id AND p.cluster_id = e.cluster_id
                  AND p.delta = -1))
           END
    FROM events e
"""  # noqa: S608 - fixed text only


def derive_days(
    session: Session,
    *,
    budget: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Derive the day summaries of the checkpoints after the last one derived (none derived:
    from the first one kept, or the first at or after `since`), oldest first, up to the first
    at or after `until` (None: the last), until `budget` rows are written (None: all; a day
    is never split); returns the rows written (0 on SQLite, or with none missing). Never a
    day before one derived: a coming's last leaving is read from the days before it."""
    if not on_postgresql(session):
        return 0
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": DAYS_LOCK})
    last = session.scalar(select(func.max(ImageDerivedDay.at)))
    checkpoints = select(ImageCheckpoint.at).order_by(ImageCheckpoint.at)
    for after in (horizon(session), since):
        if after is not None:
            checkpoints = checkpoints.where(ImageCheckpoint.at >= after)
    if last is not None:
        checkpoints = checkpoints.where(ImageCheckpoint.at > last)
    missing = list(session.scalars(checkpoints))
    if until is not None:
        missing = [at for at in missing if at - CHECKPOINT_EVERY < until]
    if missing:
        session.execute(text(_VALUES))
    written = 0
    for at in missing:
        if budget is not None and written >= budget:
            break
        # Oldest first: the day before is derived unless this is the first.
        base = at - CHECKPOINT_EVERY if last == at - CHECKPOINT_EVERY else None
        written += _derive(session, at, base=base)
        last = at
    return written


def _derive(session: Session, at: datetime, *, base: datetime | None) -> int:
    """One day's summaries; returns the rows written."""
    session.add(ImageDerivedDay(at=at, base=base))
    session.flush()
    written = 1
    with local_settings(session, jit=JIT_OFF):
        days = [_DAY_CHANGES, _HOUR_CHANGES, _DAY_EVENTS]
        statements = [_CHECKPOINT_VALUES] + ([] if base is None else days)
        for statement in statements:
            result = session.execute(text(statement), {"at": at, "base": base})
            written += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return written


def covered(session: Session, *, checkpoint: datetime, until: datetime) -> bool:
    """Whether the day summaries answer a period from `checkpoint` (the search's, at or
    before its `since`) to `until`: that checkpoint derived, and each day after it up to the
    first checkpoint at or after `until` derived from the one before."""
    return bool(session.scalar(select(coverage(checkpoint=checkpoint, until=until))))


def coverage(*, checkpoint: datetime, until: datetime) -> ColumnElement[bool]:
    """`covered` as an expression, for the statement that reads the summaries to carry: it
    holds in that statement's own snapshot, so days forgotten (a late apply) after a separate
    `covered` and before the read are seen there, not read as if derived."""
    wanted = [ImageDerivedDay.at == checkpoint]
    at = checkpoint
    while at < until:
        day = at + CHECKPOINT_EVERY
        wanted.append(and_(ImageDerivedDay.at == day, ImageDerivedDay.base == at))
        at = day
    found = select(func.count()).select_from(ImageDerivedDay).where(or_(*wanted))
    return found.scalar_subquery() == len(wanted)


def per_image(
    *, since: datetime, until: datetime, checkpoint: datetime
) -> Select[tuple[int, int, int]]:
    """(image, slots, pairs) of every image with slots current at some instant of [since,
    until], from the day summaries (`covered` must hold; module docstring). The changes are
    read per hour up to the whole hour before each end, and per instant after it."""
    hour_since, hour_until = _hour_floor(since), _hour_floor(until)
    hour_started = case((ImageHourChange.hour <= hour_until, ImageHourChange.started), else_=0)
    hour_ended = case((ImageHourChange.hour <= hour_since, ImageHourChange.ended), else_=0)
    came = case(
        (ImageDayEvent.at <= since, ImageDayEvent.delta),
        (
            (ImageDayEvent.delta == 1)
            & or_(ImageDayEvent.prev_left.is_(None), ImageDayEvent.prev_left <= since),
            1,
        ),
        else_=0,
    )
    parts = union_all(
        select(
            ImageCheckpointValue.value_id,
            ImageCheckpointValue.slots,
            ImageCheckpointValue.pairs,
        ).where(ImageCheckpointValue.at == checkpoint),
        select(ImageHourChange.value_id, (hour_started - hour_ended).label("slots"), literal(0))
        .where(ImageHourChange.hour > checkpoint)
        .where(ImageHourChange.hour <= hour_until),
        select(ImageDayChange.value_id, ImageDayChange.started, literal(0)).where(
            ImageDayChange.at > hour_until, ImageDayChange.at <= until
        ),
        select(ImageDayChange.value_id, -ImageDayChange.ended, literal(0)).where(
            ImageDayChange.at > hour_since, ImageDayChange.at <= since
        ),
        select(ImageDayEvent.value_id, literal(0), came.label("pairs")).where(
            ImageDayEvent.at > checkpoint, ImageDayEvent.at <= until
        ),
    ).subquery()
    slots = func.sum(parts.c.slots)
    return (
        select(parts.c.value_id, slots.label("slots"), func.sum(parts.c.pairs).label("pairs"))
        .group_by(parts.c.value_id)
        .having(slots > 0)
    )


def _hour_floor(instant: datetime) -> datetime:
    """The whole UTC hour at or before `instant`."""
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
