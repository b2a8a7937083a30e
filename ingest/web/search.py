"""JSON-path search over the current manifests of every (or some) clusters.

On PostgreSQL the path runs inside the database with its SQL/JSON path engine
(`jsonb_path_query`, parallel scans), so a fleet-wide `--distinct` image search never ships
bodies to Python and groups the values in the database. On SQLite a
Python fallback (jsonpath-ng) walks the same manifests. An invalid path (or a search the
database gives up on, e.g. past `timeout_ms`) raises `SearchError` with a message fit for a
400 answer. Used by the admin pages and the admin API (`POST /v1/admin/search`).

A distinct value's `occurrences` counts every place the path yields it (two containers of
one Deployment running the same image count twice); `clusters` counts clusters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from contracts.resources import ResourceRef
from store.manifests import current_manifests

MAX_PATH_LENGTH = 1000


class SearchError(ValueError):
    """The JSON path is invalid (the message says why)."""


@dataclass(frozen=True, slots=True)
class Hit:
    cluster_id: str
    api_version: str
    kind: str
    namespace: str | None
    name: str
    value: Any


@dataclass(frozen=True, slots=True)
class DistinctValue:
    value: Any
    occurrences: int
    clusters: int


@dataclass(slots=True)
class SearchResult:
    path: str
    distinct: bool
    hits: list[Hit] = field(default_factory=list)
    values: list[DistinctValue] = field(default_factory=list)
    truncated: bool = False

    def as_json(self) -> dict[str, Any]:
        if self.distinct:
            rows: list[dict[str, Any]] = [
                {"value": v.value, "occurrences": v.occurrences, "clusters": v.clusters}
                for v in self.values
            ]
        else:
            rows = [
                {
                    "cluster": h.cluster_id,
                    "apiVersion": h.api_version,
                    "kind": h.kind,
                    "namespace": h.namespace,
                    "name": h.name,
                    "value": h.value,
                }
                for h in self.hits
            ]
        return {
            "path": self.path,
            "distinct": self.distinct,
            "results": rows,
            "truncated": self.truncated,
        }


def _check_length(path: str) -> None:
    if not path.strip():
        raise SearchError("path: give a JSON path such as $.spec.replicas")
    if len(path) > MAX_PATH_LENGTH:
        raise SearchError(f"path: longer than {MAX_PATH_LENGTH} characters")


def run_search(
    session: Session,
    path: str,
    *,
    cluster_id: str | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    distinct: bool = False,
    limit: int = 10_000,
    cluster_ids: Sequence[str] | None = None,
    timeout_ms: int | None = None,
) -> SearchResult:
    """Evaluate `path` on every matching current manifest (see the module docstring).

    `cluster_id` and `cluster_ids` both narrow the clusters (an empty `cluster_ids` means
    every cluster); `timeout_ms` caps the query on PostgreSQL.
    """
    _check_length(path)
    wanted = _wanted_clusters(cluster_id, cluster_ids)
    if session.get_bind().dialect.name == "postgresql":
        return _postgres(
            session,
            path,
            clusters=wanted,
            kind=kind,
            namespace=namespace,
            distinct=distinct,
            limit=limit,
            timeout_ms=timeout_ms,
        )
    return _python(
        session,
        path,
        clusters=wanted,
        kind=kind,
        namespace=namespace,
        distinct=distinct,
        limit=limit,
    )


def _wanted_clusters(cluster_id: str | None, cluster_ids: Sequence[str] | None) -> list[str] | None:
    wanted = sorted(set(cluster_ids or ()) | ({cluster_id} if cluster_id is not None else set()))
    return wanted or None


def _filters(
    clusters: list[str] | None, kind: str | None, namespace: str | None
) -> tuple[str, dict[str, Any]]:
    clauses = ["o.deleted_at IS NULL"]
    params: dict[str, Any] = {}
    if clusters is not None and len(clusters) == 1:
        clauses.append("o.cluster_id = :cluster_id")
        params["cluster_id"] = clusters[0]
    elif clusters is not None:
        clauses.append("o.cluster_id = ANY(:cluster_ids)")
        params["cluster_ids"] = clusters
    if kind is not None:
        clauses.append("o.kind = :kind")
        params["kind"] = kind
    if namespace is not None:
        clauses.append("o.namespace = :namespace")
        params["namespace"] = namespace
    return " AND ".join(clauses), params


def _validate_pg_path(session: Session, path: str) -> None:
    try:
        with session.begin_nested():
            session.execute(text("SELECT CAST(:path AS jsonpath)"), {"path": path})
    except DBAPIError as problem:
        message = str(getattr(problem.orig, "pgerror", None) or problem.orig).strip()
        first = message.splitlines()[0] if message else "invalid"
        raise SearchError(
            f"path: invalid JSON path: {first.removeprefix('ERROR:').strip()}"
        ) from None


def _postgres(
    session: Session,
    path: str,
    *,
    clusters: list[str] | None,
    kind: str | None,
    namespace: str | None,
    distinct: bool,
    limit: int,
    timeout_ms: int | None,
) -> SearchResult:
    _validate_pg_path(session, path)
    savepoint = session.begin_nested()
    try:
        result = _postgres_query(
            session,
            path,
            clusters=clusters,
            kind=kind,
            namespace=namespace,
            distinct=distinct,
            limit=limit,
            timeout_ms=timeout_ms,
        )
    except DBAPIError as problem:
        # A strict-mode path that finds nothing, a statement timeout: the session stays usable.
        savepoint.rollback()
        message = str(getattr(problem.orig, "pgerror", None) or problem.orig).strip()
        first = message.splitlines()[0] if message else "failed"
        raise SearchError(
            f"path: the search failed: {first.removeprefix('ERROR:').strip()}"
        ) from None
    savepoint.commit()
    return result


def _postgres_query(
    session: Session,
    path: str,
    *,
    clusters: list[str] | None,
    kind: str | None,
    namespace: str | None,
    distinct: bool,
    limit: int,
    timeout_ms: int | None,
) -> SearchResult:
    where, params = _filters(clusters, kind, namespace)
    params.update(path=path, limit=limit + 1)
    result = SearchResult(path=path, distinct=distinct)
    # The planner cannot estimate rows of a set-returning function and would spend longer
    # JIT-compiling than running the query; a little more memory keeps the join in RAM.
    session.execute(text("SET LOCAL jit = off"))
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    if timeout_ms is not None:
        session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
    if distinct:
        # Two hash aggregations (value and cluster, then value) instead of sorting jsonb
        # values for count(DISTINCT ...): the sort costs more than the path evaluation.
        sql = f"""
            SELECT value, sum(objects) AS occurrences, count(*) AS clusters
            FROM (
                SELECT v.value AS value, o.cluster_id, count(*) AS objects
                FROM objects o
                JOIN manifest_bodies b ON b.content_hash = o.current_hash
                CROSS JOIN LATERAL jsonb_path_query(b.body, CAST(:path AS jsonpath)) AS v(value)
                WHERE {where}
                GROUP BY v.value, o.cluster_id
            ) AS per_cluster
            GROUP BY value
            ORDER BY occurrences DESC, value::text
            LIMIT :limit
        """  # noqa: S608 - only fixed clause text is interpolated; values are bound
        rows = session.execute(text(sql), params).all()
        result.values = [DistinctValue(value, int(n), int(c)) for value, n, c in rows[:limit]]
    else:
        sql = f"""
            SELECT o.cluster_id, o.ref_key, v.value
            FROM objects o
            JOIN manifest_bodies b ON b.content_hash = o.current_hash
            CROSS JOIN LATERAL jsonb_path_query(b.body, CAST(:path AS jsonpath)) AS v(value)
            WHERE {where}
            ORDER BY o.cluster_id, o.ref_key
            LIMIT :limit
        """  # noqa: S608 - only fixed clause text is interpolated; values are bound
        rows = session.execute(text(sql), params).all()
        result.hits = [_hit(cid, key, value) for cid, key, value in rows[:limit]]
    result.truncated = len(rows) > limit
    return result


def _hit(cluster_id: str, ref_key: str, value: Any) -> Hit:
    ref = ResourceRef.from_key(ref_key)
    return Hit(cluster_id, ref.api_version, ref.kind, ref.namespace, ref.name, value)


def _compile_python(path: str) -> Any:
    from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError  # noqa: PLC0415
    from jsonpath_ng.ext import parse  # noqa: PLC0415

    try:
        return parse(path)
    except (JsonPathLexerError, JsonPathParserError, ValueError, TypeError) as problem:
        raise SearchError(f"path: invalid JSON path: {problem}") from None
    except Exception as problem:  # jsonpath-ng raises bare Exceptions too
        raise SearchError(f"path: invalid JSON path: {problem}") from None


def _python(
    session: Session,
    path: str,
    *,
    clusters: list[str] | None,
    kind: str | None,
    namespace: str | None,
    distinct: bool,
    limit: int,
) -> SearchResult:
    compiled = _compile_python(path)
    result = SearchResult(path=path, distinct=distinct)
    counts: dict[str, list[Any]] = {}
    one = clusters[0] if clusters is not None and len(clusters) == 1 else None
    wanted = set(clusters or ())
    for manifest in current_manifests(
        session, cluster_id=one, kind=kind, namespace=namespace if namespace is not None else None
    ):
        if wanted and manifest.cluster_id not in wanted:
            continue
        for match in compiled.find(manifest.body):
            if distinct:
                key = json.dumps(match.value, sort_keys=True)
                entry = counts.setdefault(key, [match.value, 0, set()])
                entry[1] += 1
                entry[2].add(manifest.cluster_id)
            else:
                ref = manifest.ref
                result.hits.append(
                    Hit(
                        manifest.cluster_id,
                        ref.api_version,
                        ref.kind,
                        ref.namespace,
                        ref.name,
                        match.value,
                    )
                )
                if len(result.hits) > limit:
                    result.hits = result.hits[:limit]
                    result.truncated = True
                    return result
    if distinct:
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1][1], kv[0]))
        result.values = [DistinctValue(v, n, len(c)) for _k, (v, n, c) in ordered[:limit]]
        result.truncated = len(ordered) > limit
    return result
