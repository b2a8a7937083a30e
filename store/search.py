"""The one JSON-path search over the current manifests, used by the admin API, the admin pages
and (through the API) the CLI.

The path is parsed once (`store.jsonpath`, one dialect); PostgreSQL evaluates its translation
inside the database (lateral `jsonb_path_query`, values grouped there for `distinct`), SQLite
evaluates it in Python over the live rows. Every search runs under one time limit:
`statement_timeout` on PostgreSQL, a progress handler plus a deadline between rows on SQLite;
past it, `SearchTimeout`. An invalid path raises `SearchError` with a message fit for a 400.

Without `distinct`, `limit` caps matching objects (each with every value the path yields in
it); with `distinct`, it caps the values listed, while `occurrences` (every place the path
yields a value) and `clusters` are counted over every match.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from contracts.resources import ResourceRef
from store.jsonpath import JsonPath, PathSyntaxError, parse
from store.manifests import current_manifests

DEFAULT_TIMEOUT_SECONDS = 15.0
_QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for statement_timeout
_SQLITE_CHECK_EVERY = 10_000  # virtual-machine instructions between deadline checks


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


@dataclass(frozen=True, slots=True)
class Hit:
    """One value found in one object (what the admin page lists)."""

    cluster_id: str
    api_version: str
    kind: str
    namespace: str | None
    name: str
    value: Any


@dataclass(frozen=True, slots=True)
class ObjectMatch:
    """One object and every value the path yields in it."""

    cluster_id: str
    ref: ResourceRef
    values: list[Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster_id": self.cluster_id,
            "resource": self.ref.to_dict(),
            "values": self.values,
        }


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
            Hit(m.cluster_id, m.ref.api_version, m.ref.kind, m.ref.namespace, m.ref.name, value)
            for m in self.matches
            for value in m.values
        ]


@dataclass(frozen=True, slots=True)
class Scope:
    """Which live objects a search looks at."""

    clusters: tuple[str, ...] = ()
    kind: str | None = None
    namespace: str | None = None


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
) -> SearchResult:
    """Evaluate `path` on every live manifest in scope (see the module docstring)."""
    compiled = compile_path(path)
    scope = Scope(tuple(sorted(set(cluster_ids or ()))), kind, namespace)
    if session.get_bind().dialect.name == "postgresql":
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


@contextmanager
def _pg_time_limit(session: Session, seconds: float) -> Iterator[None]:
    previous = session.execute(text("SELECT current_setting('statement_timeout')")).scalar_one()
    session.execute(text(f"SET LOCAL statement_timeout = {max(int(seconds * 1000), 1)}"))
    yield  # on an error the savepoint's rollback restores the previous value
    session.execute(text("SELECT set_config('statement_timeout', :v, true)"), {"v": previous})


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
        with _pg_time_limit(session, timeout):
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
    where, params = _where(scope)
    joins, value, order, stage_params = _lateral_chain(stages)
    params.update(stage_params, limit=limit + 1)
    where += _objects_only(stages)
    result = SearchResult(path=path.text, distinct=distinct)
    base = f"""
        FROM objects o
        JOIN manifest_bodies b ON b.content_hash = o.current_hash
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
        sql = f"""
            SELECT o.cluster_id, o.ref_key, jsonb_agg({value} ORDER BY {order})
            {base}
            GROUP BY o.id, o.cluster_id, o.ref_key
            ORDER BY o.cluster_id, o.ref_key
            LIMIT :limit
        """
        rows = session.execute(text(sql), params).all()
        result.matches = [
            ObjectMatch(cid, ResourceRef.from_key(key), list(values))
            for cid, key, values in rows[:limit]
        ]
    result.truncated = len(rows) > limit
    return result


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
            for manifest in current_manifests(
                session, cluster_id=one, kind=scope.kind, namespace=scope.namespace
            ):
                if time.monotonic() > deadline:
                    raise SearchTimeout(timeout)
                if wanted and manifest.cluster_id not in wanted:
                    continue
                values = path.find(manifest.body)
                if not values:
                    continue
                if not distinct:
                    matches.append(ObjectMatch(manifest.cluster_id, manifest.ref, values))
                    continue
                for value in values:
                    entry = counts.setdefault(json.dumps(value, sort_keys=True), [value, 0, set()])
                    entry[1] += 1
                    entry[2].add(manifest.cluster_id)
    except OperationalError as problem:
        if "interrupted" in str(problem.orig):
            raise SearchTimeout(timeout) from None
        raise
    if distinct:
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1][1], kv[0]))
        result.values = [DistinctValue(v, n, len(c)) for _k, (v, n, c) in ordered[:limit]]
        result.truncated = len(ordered) > limit
        return result
    matches.sort(key=lambda m: (m.cluster_id, m.ref.key))
    result.matches = matches[:limit]
    result.truncated = len(matches) > limit
    return result
