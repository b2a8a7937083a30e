"""The one JSON-path search over the current manifests, or back in time over the versions
current at an instant or during a period (`Period`), used by the admin API, the admin pages and
(through the API) the CLI.

The path is parsed once (`store.jsonpath`, one dialect). An image path (`$..image`, or a chain
of member names and `[*]` ending in `.image` such as `$.spec.template.spec.containers[*].image`;
`store.image_index.recognise`) is answered from the image index (`body_images`: each body's
image members, with where they are and in which order the path yields them), so no body is
read: the answer is the generic evaluation's, exactly. With `distinct` it is answered from
image presence (`store.image_presence`: per cluster, kind, namespace, shape and value, how many
slots are current now, at each daily checkpoint, and how many began and ended at each instant):
a few rows per cluster and value now, back in time one checkpoint and the day of rows after it
(a period before the purge's merge horizon, which the surfaces refuse, is evaluated); a
PostgreSQL listing picks the first objects (versions) in order, then reads their index rows.
Any other path is evaluated: PostgreSQL
evaluates its translation inside the database (lateral `jsonb_path_query`, values grouped there
for `distinct`), SQLite evaluates it in Python over the live rows. Every search runs under one
time limit: `statement_timeout` on PostgreSQL, a progress handler plus a deadline between rows
on SQLite; past it, `SearchTimeout`. An invalid path raises `SearchError` with a message fit
for a 400.

Back in time, the search reads the stored versions (`manifest_versions`): a version is current
from its `first_seen` until its `superseded_at` (replaced, or its object deleted), and the
search looks at every version current at some instant of the period, of live and deleted
objects alike; each match carries that validity window. Times before the retention horizon
(`K8SMON_RETENTION_DAYS`: older history may already be purged) are refused, and so are
unreadable times (one parser: `contracts.instants`), a period that ends before it starts and a
time in the future.

Without `distinct`, `limit` caps matching objects (each with every value the path yields in
it; back in time, matching versions); with `distinct`, it caps the values listed, while
`occurrences` (every place the path yields a value; back in time, in every matching version)
and `clusters` are counted over every match.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, Text, and_, cast, func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from contracts.instants import InstantError, format_instant, parse_instant
from contracts.resources import ResourceRef
from store.db import local_settings, on_postgresql
from store.image_index import ImagePath, recognise
from store.image_presence import JIT_OFF, checkpoint_for, covers, present_per_cluster
from store.jsonpath import JsonPath, PathSyntaxError, parse
from store.manifests import current_images, current_manifests, images_during, manifests_during
from store.models import ImageGroup, ImageValue
from store.presence_days import coverage, covered, per_image
from store.purge import retention_cutoff

DEFAULT_TIMEOUT_SECONDS = 15.0
_QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for statement_timeout
_SQLITE_CHECK_EVERY = 10_000  # virtual-machine instructions between deadline checks
# Back in time, an object's versions are listed by when they began, then by when they were
# stored (a snapshot applied as of a later applied state begins its versions at the instant
# it ends the ones before). Every path keeps this order: the SQL ones by this clause (with
# its tables' prefix), the evaluation in Python by a stable sort of versions read by id.
_VERSION_ORDER = "{0}first_seen, {0}id"


class SearchError(ValueError):
    """The search cannot run as asked (the message says why, for a 400 answer)."""


class SearchTimeout(SearchError):
    """The search ran past its time limit."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the search ran longer than its {seconds:g} s limit; narrow it "
            "(cluster, kind, namespace) or a more specific path"
        )
        self.seconds = seconds


class PeriodError(SearchError):
    """A time the search cannot look at; `oldest` is set when it is before the retention horizon."""

    def __init__(self, message: str, *, oldest: datetime | None = None) -> None:
        super().__init__(message)
        self.oldest = oldest


@dataclass(frozen=True, slots=True)
class Period:
    """Search back in time: the versions current at some instant of [since, until]
    (`since == until`: at one instant)."""

    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class Validity:
    """When a version was current: from `first_seen` until `superseded_at` (None: still is)."""

    first_seen: datetime
    superseded_at: datetime | None


def search_period(
    *,
    at: str | None,
    between: Sequence[str] | None,
    now: datetime,
    retention_days: int,
) -> Period | None:
    """The period `at` (one instant) or `between` (start, end) names, checked; None for neither.

    Every surface (admin API, page, CLI through the API) calls this, with its parameters' raw
    text, so the same times are refused with the same messages.
    """
    if at is not None and between is not None:
        raise PeriodError("at, between: give one of them, not both")
    if at is not None:
        instant = _instant(at, name="at")
        since, until, name = instant, instant, "at"
    elif between is not None:
        if len(between) != 2:
            raise PeriodError("between: give two times, the start and the end")
        since, until = (_instant(raw, name="between") for raw in between)
        name = "between"
        if since > until:
            raise PeriodError(
                f"between: the start {format_instant(since)} is after the end "
                f"{format_instant(until)}"
            )
    else:
        return None
    if since > now:
        raise PeriodError(
            f"{name}: {format_instant(since)} is in the future (now: {format_instant(now)})"
        )
    oldest = retention_cutoff(now, retention_days=retention_days)
    if since < oldest:
        raise PeriodError(
            f"{name}: {format_instant(since)} is before the oldest instant kept, "
            f"{format_instant(oldest)} (history is kept {retention_days} days, "
            "K8SMON_RETENTION_DAYS)",
            oldest=oldest,
        )
    return Period(since, until)


def _instant(raw: str, *, name: str) -> datetime:
    try:
        return parse_instant(raw, name=name)
    except InstantError as problem:
        raise PeriodError(str(problem)) from None


@dataclass(frozen=True, slots=True)
class Hit:
    """One value found in one object (what the admin page lists)."""

    cluster_id: str
    api_version: str
    kind: str
    namespace: str | None
    name: str
    value: Any
    validity: Validity | None = None


@dataclass(frozen=True, slots=True)
class ObjectMatch:
    """One object (back in time: one version of it) and every value the path yields in it."""

    cluster_id: str
    ref: ResourceRef
    values: list[Any]
    validity: Validity | None = None

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "cluster_id": self.cluster_id,
            "resource": self.ref.to_dict(),
            "values": self.values,
        }
        if self.validity is not None:
            until = self.validity.superseded_at
            answer["valid_from"] = self.validity.first_seen.isoformat()
            answer["valid_until"] = until.isoformat() if until is not None else None
        return answer


@dataclass(frozen=True, slots=True)
class DistinctValue:
    value: Any
    occurrences: int
    clusters: int


@dataclass(slots=True)
class SearchResult:
    path: str
    distinct: bool
    matches: list[ObjectMatch] = field(default_factory=list)
    values: list[DistinctValue] = field(default_factory=list)
    truncated: bool = False

    @property
    def hits(self) -> list[Hit]:
        return [
            Hit(
                m.cluster_id,
                m.ref.api_version,
                m.ref.kind,
                m.ref.namespace,
                m.ref.name,
                value,
                m.validity,
            )
            for m in self.matches
            for value in m.values
        ]


@dataclass(frozen=True, slots=True)
class Scope:
    """Which objects a search looks at: live ones, or back in time the versions of `period`."""

    clusters: tuple[str, ...] = ()
    kind: str | None = None
    namespace: str | None = None
    period: Period | None = None


def compile_path(path: str) -> JsonPath:
    try:
        return parse(path)
    except PathSyntaxError as problem:
        raise SearchError(f"path: invalid JSON path: {problem}") from None


def run_search(
    session: Session,
    path: str,
    *,
    timeout_seconds: float,
    cluster_ids: Sequence[str] | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    distinct: bool = False,
    limit: int = 1000,
    period: Period | None = None,
) -> SearchResult:
    """Evaluate `path` on every live manifest in scope, or on the versions current during
    `period` (see the module docstring)."""
    compiled = compile_path(path)
    scope = Scope(tuple(sorted(set(cluster_ids or ()))), kind, namespace, period)
    if on_postgresql(session):
        return _postgres(
            session, compiled, scope=scope, distinct=distinct, limit=limit, timeout=timeout_seconds
        )
    return _python(
        session, compiled, scope=scope, distinct=distinct, limit=limit, timeout=timeout_seconds
    )


# ---- PostgreSQL ---------------------------------------------------------------------------


def _where(scope: Scope) -> tuple[str, dict[str, Any]]:
    clauses = ["o.deleted_at IS NULL"]
    params: dict[str, Any] = {}
    if scope.period is not None:
        clauses = [
            "v.first_seen <= :until",
            "(v.superseded_at IS NULL OR v.superseded_at > :since)",
        ]
        params.update(since=scope.period.since, until=scope.period.until)
    if scope.clusters:
        clauses.append("o.cluster_id = ANY(:cluster_ids)")
        params["cluster_ids"] = list(scope.clusters)
    if scope.kind is not None:
        clauses.append("o.kind = :kind")
        params["kind"] = scope.kind
    if scope.namespace is not None:
        clauses.append("o.namespace = :namespace")
        params["namespace"] = scope.namespace
    return " AND ".join(clauses), params


def _lateral_chain(stages: list[str]) -> tuple[str, str, str, dict[str, Any]]:
    """FROM-clause joins evaluating each stage, the final value's alias, its ordering, params."""
    joins = [
        "CROSS JOIN LATERAL jsonb_path_query(b.body, CAST(:stage0 AS jsonpath), '{}', true)"
        " WITH ORDINALITY AS s0(value, ord)"
    ]
    order = ["s0.ord"]
    params: dict[str, Any] = {"stage0": stages[0]}
    for i, stage in enumerate(stages[1:], start=1):
        joins.append(
            f"CROSS JOIN LATERAL jsonb_path_query(s{i - 1}.value, 'strict $.**', '{{}}', true)"
            f" WITH ORDINALITY AS d{i}(node, ord)"
        )
        joins.append(
            f"CROSS JOIN LATERAL jsonb_path_query(d{i}.node, CAST(:stage{i} AS jsonpath), "
            f"'{{}}', true) WITH ORDINALITY AS s{i}(value, ord)"
        )
        order += [f"d{i}.ord", f"s{i}.ord"]
        params[f"stage{i}"] = stage
    last = len(stages) - 1
    return "\n".join(joins), f"s{last}.value", ", ".join(order), params


def _objects_only(stages: list[str]) -> str:
    return "".join(f" AND jsonb_typeof(d{i}.node) = 'object'" for i in range(1, len(stages)))


def _postgres(
    session: Session, path: JsonPath, *, scope: Scope, distinct: bool, limit: int, timeout: float
) -> SearchResult:
    stages = path.postgres_stages()
    savepoint = session.begin_nested()
    try:
        # The planner cannot estimate rows of a set-returning function and would spend longer
        # JIT-compiling than running the query; a little more memory keeps the join in RAM.
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        with local_settings(session, statement_timeout=str(max(int(timeout * 1000), 1))):
            result = _postgres_query(session, path, stages, scope, distinct=distinct, limit=limit)
    except DBAPIError as problem:
        savepoint.rollback()
        if getattr(problem.orig, "pgcode", None) == _QUERY_CANCELED:
            raise SearchTimeout(timeout) from None
        message = str(getattr(problem.orig, "pgerror", None) or problem.orig).strip()
        first = message.splitlines()[0] if message else "failed"
        raise SearchError(
            f"path: the search failed: {first.removeprefix('ERROR:').strip()}"
        ) from None
    savepoint.commit()
    return result


def _postgres_query(
    session: Session,
    path: JsonPath,
    stages: list[str],
    scope: Scope,
    *,
    distinct: bool,
    limit: int,
) -> SearchResult:
    image = recognise(path)
    if distinct and image is not None and _presence_covers(session, scope):
        return _postgres_presence(session, path, scope, image, limit=limit)
    if distinct and image is not None:
        image = None  # before the merge horizon: the generic evaluation of what is left
    if image is not None:
        return _postgres_indexed_listing(session, path, scope, image, limit=limit)
    where, params = _where(scope)
    history = scope.period is not None
    body = "v.content_hash" if history else "o.current_hash"
    joins, value, order, stage_params = _lateral_chain(stages)
    params.update(stage_params)
    where += _objects_only(stages)
    joins = f"JOIN manifest_bodies b ON b.content_hash = {body}\n{joins}"
    params["limit"] = limit + 1
    result = SearchResult(path=path.text, distinct=distinct)
    source = "manifest_versions v JOIN objects o ON o.id = v.object_id" if history else "objects o"
    base = f"""
        FROM {source}
        {joins}
        WHERE {where}
    """  # only fixed clause text is interpolated; every value is bound
    if distinct:
        # Two hash aggregations (value and cluster, then value) instead of sorting jsonb
        # values for count(DISTINCT ...): the sort costs more than the path evaluation.
        sql = f"""
            SELECT value, sum(objects) AS occurrences, count(*) AS clusters
            FROM (SELECT {value} AS value, o.cluster_id, count(*) AS objects {base}
                  GROUP BY {value}, o.cluster_id) AS per_cluster
            GROUP BY value
            ORDER BY occurrences DESC, value::text
            LIMIT :limit
        """  # noqa: S608
        rows = session.execute(text(sql), params).all()
        result.values = [DistinctValue(v, int(n), int(c)) for v, n, c in rows[:limit]]
    else:
        # One row per object, or back in time per version (with when it was current).
        unit, window = ("v.id", "v.first_seen, v.superseded_at") if history else ("o.id", "")
        sql = f"""
            SELECT o.cluster_id, o.ref_key, jsonb_agg({value} ORDER BY {order}) AS found
                   {", " + window if window else ""}
            {base}
            GROUP BY {unit}, o.cluster_id, o.ref_key {", " + window if window else ""}
            ORDER BY o.cluster_id, o.ref_key {", " + _VERSION_ORDER.format("v.") if history else ""}
            LIMIT :limit
        """
        rows = session.execute(text(sql), params).all()
        result.matches = _object_matches(rows[:limit], history=history)
    result.truncated = len(rows) > limit
    return result


def _postgres_indexed_listing(
    session: Session, path: JsonPath, scope: Scope, image: ImagePath, *, limit: int
) -> SearchResult:
    """The objects (back in time: versions) whose bodies have index rows of the path's shapes,
    first picked in order up to the limit (walking the objects by cluster and reference, each
    checked against the index), then each one's values gathered in `$..image` order."""
    where, params = _where(scope)
    history = scope.period is not None
    shapes = ""
    if image.shapes is not None:
        shapes = " AND i.shape = ANY(:shapes)"
        params["shapes"] = sorted(image.shapes)
    params["limit"] = limit + 1
    source = "manifest_versions v JOIN objects o ON o.id = v.object_id" if history else "objects o"
    body = "v.content_hash" if history else "o.current_hash"
    window = ", v.first_seen, v.superseded_at, v.id" if history else ""
    order = "cluster_id, ref_key" + (", " + _VERSION_ORDER.format("") if history else "")
    inner_order = "o.cluster_id, o.ref_key" + (
        ", " + _VERSION_ORDER.format("v.") if history else ""
    )
    sql = f"""
        SELECT p.cluster_id, p.ref_key,
               (SELECT jsonb_agg(i.value ORDER BY i.ord) FROM body_images i
                WHERE i.content_hash = p.body{shapes}) AS found
               {", p.first_seen, p.superseded_at" if history else ""}
        FROM (SELECT o.cluster_id, o.ref_key, {body} AS body{window}
              FROM {source}
              WHERE {where}
                AND EXISTS (SELECT FROM body_images i WHERE i.content_hash = {body}{shapes})
              ORDER BY {inner_order}
              LIMIT :limit) AS p
        ORDER BY {order}
    """  # noqa: S608 - only fixed clause text is interpolated; every value is bound
    rows = session.execute(text(sql), params).all()
    result = SearchResult(path=path.text, distinct=False, truncated=len(rows) > limit)
    result.matches = _object_matches(rows[:limit], history=history)
    return result


def _object_matches(rows: Sequence[Any], *, history: bool) -> list[ObjectMatch]:
    """Rows of (cluster, reference key, values[, first seen, superseded at]) as matches."""
    return [
        ObjectMatch(
            row[0],
            ResourceRef.from_key(row[1]),
            list(row[2]),
            _validity(row[3], row[4]) if history else None,
        )
        for row in rows
    ]


def _presence_covers(session: Session, scope: Scope) -> bool:
    """Whether image presence answers the scope's period exactly (not before the purge's
    merge horizon, which the surfaces' retention check keeps every period after)."""
    return covers(session, scope.period.since if scope.period is not None else None)


def _presence(session: Session, scope: Scope, image: ImagePath) -> Select[tuple[Any, str, int]]:
    """(value, cluster, slots) of the image values in scope, from image presence (back in
    time: from the latest checkpoint before the period, and the rows after it)."""
    period = scope.period
    return present_per_cluster(
        since=period.since if period is not None else None,
        until=period.until if period is not None else None,
        checkpoint=checkpoint_for(session, period.since) if period is not None else None,
        cluster_ids=scope.clusters,
        kind=scope.kind,
        namespace=scope.namespace,
        shapes=image.shapes,
    )


def _postgres_presence(
    session: Session, path: JsonPath, scope: Scope, image: ImagePath, *, limit: int
) -> SearchResult:
    """`distinct` for an image path: a few rows per cluster and value (`store.image_presence`),
    grouped and ordered as the generic evaluation does; back in time over the whole fleet, a
    few rows per value when the period's days are summarised (`store.presence_days`)."""
    summarised = _postgres_presence_days(session, path, scope, image, limit=limit)
    if summarised is not None:
        return summarised
    per_cluster = _presence(session, scope, image).subquery()
    occurrences = func.sum(per_cluster.c.slots)
    # Group the jsonb values by hashing, never by sorting them (comparing jsonb is slow, and
    # the planner cannot estimate how many groups a union of counts makes); the final order
    # sorts the distinct values only.
    # JIT off: compiling the query cost more than running it (`image_presence.JIT_OFF`).
    with local_settings(session, enable_sort="off", jit=JIT_OFF):
        rows = session.execute(
            select(per_cluster.c.value, occurrences, func.count())
            .group_by(per_cluster.c.value)
            .order_by(occurrences.desc(), cast(per_cluster.c.value, Text))
            .limit(limit + 1)
        ).all()
    result = SearchResult(path=path.text, distinct=True, truncated=len(rows) > limit)
    result.values = [DistinctValue(v, int(n), int(c)) for v, n, c in rows[:limit]]
    return result


def _postgres_presence_days(
    session: Session, path: JsonPath, scope: Scope, image: ImagePath, *, limit: int
) -> SearchResult | None:
    """`distinct` back in time over the whole fleet from the day summaries, or None when they
    do not cover the period (or the scope names clusters, a kind or a namespace). A value with
    images at two of the path's shapes has its clusters counted per cluster."""
    period = scope.period
    if period is None or scope.clusters or scope.kind is not None or scope.namespace is not None:
        return None
    checkpoint = checkpoint_for(session, period.since)
    if checkpoint is None or not covered(session, checkpoint=checkpoint, until=period.until):
        return None
    per = per_image(since=period.since, until=period.until, checkpoint=checkpoint).subquery()
    clauses = [] if image.shapes is None else [ImageValue.shape.in_(sorted(image.shapes))]
    occurrences = func.sum(per.c.slots)
    # The days may be forgotten after `covered` (a late apply): the read checks again, in its
    # own snapshot, and an answer without every day derived (or without rows) is not used.
    still_covered = coverage(checkpoint=checkpoint, until=period.until).label("covered")
    with local_settings(session, enable_sort="off", jit=JIT_OFF):
        read = session.execute(
            select(
                ImageValue.value,
                occurrences,
                func.sum(per.c.pairs),
                func.array_agg(per.c.value_id),
                still_covered,
            )
            .select_from(per)
            .join(ImageValue, ImageValue.id == per.c.value_id)
            .where(*clauses)
            .group_by(ImageValue.value, still_covered)
            .order_by(occurrences.desc(), cast(ImageValue.value, Text))
            .limit(limit + 1)
        ).all()
    if not read or not all(row.covered for row in read):
        return None
    rows = [(value, slots, pairs, ids) for value, slots, pairs, ids, _covered in read]
    shared = [i for *_counts, ids in rows[:limit] if len(ids) > 1 for i in ids]
    clusters = _clusters_of(session, scope, image, checkpoint, shared) if shared else {}
    result = SearchResult(path=path.text, distinct=True, truncated=len(rows) > limit)
    result.values = [
        DistinctValue(v, int(n), clusters.get(_json_key(v), int(c)) if clusters else int(c))
        for v, n, c, _ in rows[:limit]
    ]
    return result


def _clusters_of(
    session: Session, scope: Scope, image: ImagePath, checkpoint: datetime, images: list[int]
) -> dict[str, int]:
    """Clusters per value (by `_json_key`) of the given images, from `store.image_presence`."""
    assert scope.period is not None
    groups = (
        select(ImageGroup.id)
        .join(
            ImageValue,
            and_(ImageValue.shape == ImageGroup.shape, ImageValue.value == ImageGroup.value),
        )
        .where(ImageValue.id.in_(images))
    )
    per_cluster = present_per_cluster(
        since=scope.period.since,
        until=scope.period.until,
        checkpoint=checkpoint,
        cluster_ids=(),
        kind=None,
        namespace=None,
        shapes=image.shapes,
        groups=groups,
    ).subquery()
    with local_settings(session, jit=JIT_OFF):
        counted = session.execute(
            select(per_cluster.c.value, func.count()).group_by(per_cluster.c.value)
        ).all()
    return {_json_key(value): int(n) for value, n in counted}


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _validity(first_seen: datetime, superseded_at: datetime | None) -> Validity:
    """Times from a raw PostgreSQL row are in the session's zone: answers speak UTC."""
    until = superseded_at.astimezone(UTC) if superseded_at is not None else None
    return Validity(first_seen.astimezone(UTC), until)


# ---- SQLite (and any other backend): Python over the live rows --------------------------


@contextmanager
def _sqlite_time_limit(session: Session, deadline: float) -> Iterator[None]:
    raw = session.connection().connection.driver_connection
    handler = getattr(raw, "set_progress_handler", None)
    if handler is None:
        yield
        return
    handler(lambda: 1 if time.monotonic() > deadline else 0, _SQLITE_CHECK_EVERY)
    try:
        yield
    finally:
        handler(None, _SQLITE_CHECK_EVERY)


def _in_scope(
    session: Session, scope: Scope, *, one: str | None
) -> Iterator[tuple[str, ResourceRef, dict[str, Any], Validity | None]]:
    """(cluster, reference, body, validity) of each live object, or each version of `period`."""
    if scope.period is None:
        for m in current_manifests(
            session, cluster_id=one, kind=scope.kind, namespace=scope.namespace
        ):
            yield m.cluster_id, m.ref, m.body, None
        return
    for v in manifests_during(
        session,
        since=scope.period.since,
        until=scope.period.until,
        cluster_id=one,
        kind=scope.kind,
        namespace=scope.namespace,
    ):
        yield v.cluster_id, v.ref, v.body, Validity(v.first_seen, v.superseded_at)


def _indexed_in_scope(
    session: Session, scope: Scope, image: ImagePath, *, one: str | None
) -> Iterator[tuple[str, ResourceRef, list[Any], Validity | None]]:
    """(cluster, reference, values, validity) of each live object, or each version of
    `period`, from the image index: the values of the path's shapes, in the path's order."""
    if scope.period is None:
        rows = current_images(session, cluster_id=one, kind=scope.kind, namespace=scope.namespace)
    else:
        rows = images_during(
            session,
            since=scope.period.since,
            until=scope.period.until,
            cluster_id=one,
            kind=scope.kind,
            namespace=scope.namespace,
        )
    shapes = image.shapes
    for row in rows:
        values = [v for shape, v in row.images if shapes is None or shape in shapes]
        validity = None
        if row.first_seen is not None:
            validity = Validity(row.first_seen, row.superseded_at)
        yield row.cluster_id, row.ref, values, validity


def _evaluated_in_scope(
    session: Session, scope: Scope, path: JsonPath, *, one: str | None
) -> Iterator[tuple[str, ResourceRef, list[Any], Validity | None]]:
    """(cluster, reference, values, validity) with the path evaluated on each body."""
    for cluster_id, ref, body, validity in _in_scope(session, scope, one=one):
        yield cluster_id, ref, path.find(body), validity


def _count(counts: dict[str, list[Any]], value: Any, cluster_id: str, *, slots: int) -> None:
    """Add `slots` occurrences of `value` in `cluster_id` (values equal as JSON are one)."""
    entry = counts.setdefault(json.dumps(value, sort_keys=True), [value, 0, set()])
    entry[1] += slots
    entry[2].add(cluster_id)


def _python(
    session: Session, path: JsonPath, *, scope: Scope, distinct: bool, limit: int, timeout: float
) -> SearchResult:
    deadline = time.monotonic() + timeout
    result = SearchResult(path=path.text, distinct=distinct)
    counts: dict[str, list[Any]] = {}
    matches: list[ObjectMatch] = []
    one = scope.clusters[0] if len(scope.clusters) == 1 else None
    wanted = set(scope.clusters)
    try:
        with _sqlite_time_limit(session, deadline):
            image = recognise(path)
            if distinct and image is not None and not _presence_covers(session, scope):
                image = None  # before the merge horizon: the evaluation of what is left
            found: Iterator[tuple[str, ResourceRef, list[Any], Validity | None]]
            if image is None:
                found = _evaluated_in_scope(session, scope, path, one=one)
            elif distinct:
                found = iter(())  # counted from image presence, per value and cluster
                for value, cluster_id, slots in session.execute(_presence(session, scope, image)):
                    _count(counts, value, cluster_id, slots=int(slots))
            else:
                found = _indexed_in_scope(session, scope, image, one=one)
            for cluster_id, ref, values, validity in found:
                if time.monotonic() > deadline:
                    raise SearchTimeout(timeout)
                if wanted and cluster_id not in wanted:
                    continue
                if not values:
                    continue
                if not distinct:
                    matches.append(ObjectMatch(cluster_id, ref, values, validity))
                    continue
                for value in values:
                    _count(counts, value, cluster_id, slots=1)
    except OperationalError as problem:
        if "interrupted" in str(problem.orig):
            raise SearchTimeout(timeout) from None
        raise
    if distinct:
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1][1], kv[0]))
        result.values = [DistinctValue(v, n, len(c)) for _k, (v, n, c) in ordered[:limit]]
        result.truncated = len(ordered) > limit
        return result
    matches.sort(
        key=lambda m: (
            m.cluster_id,
            m.ref.key,
            m.validity.first_seen.isoformat() if m.validity else "",
        )
    )
    result.matches = matches[:limit]
    result.truncated = len(matches) > limit
    return result
