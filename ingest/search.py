"""JSON-path search over the current manifests: jsonb_path_query on PostgreSQL, jsonpath-ng
in Python on SQLite (basic paths such as `$.spec.containers[*].image` mean the same on both)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import cast, func, literal, select, text
from sqlalchemy.dialects.postgresql import JSONPATH
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from contracts.resources import ResourceRef
from ingest.problems import bad_request
from store.manifests import current_manifests
from store.models import KubeObject, ManifestBody

SEARCH_TIMEOUT_MS = 15_000


def _match(cluster_id: str, ref: ResourceRef, values: list[Any]) -> dict[str, Any]:
    return {"cluster_id": cluster_id, "resource": ref.to_dict(), "values": values}


def search_manifests(
    session: Session,
    *,
    path: str,
    cluster_ids: Sequence[str] | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Live objects whose manifest yields something at `path`, with what it yields."""
    if session.get_bind().dialect.name == "postgresql":
        return _search_postgresql(
            session, path=path, cluster_ids=cluster_ids, kind=kind, namespace=namespace, limit=limit
        )
    return _search_python(
        session, path=path, cluster_ids=cluster_ids, kind=kind, namespace=namespace, limit=limit
    )


def _search_postgresql(
    session: Session,
    *,
    path: str,
    cluster_ids: Sequence[str] | None,
    kind: str | None,
    namespace: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    jsonpath = cast(literal(path), JSONPATH)
    query = (
        select(
            KubeObject.cluster_id,
            KubeObject.ref_key,
            func.jsonb_path_query_array(ManifestBody.body, jsonpath),
        )
        .join(ManifestBody, ManifestBody.content_hash == KubeObject.current_hash)
        .where(KubeObject.deleted_at.is_(None), func.jsonb_path_exists(ManifestBody.body, jsonpath))
        .order_by(KubeObject.cluster_id, KubeObject.ref_key)
        .limit(limit)
    )
    if cluster_ids:
        query = query.where(KubeObject.cluster_id.in_(list(cluster_ids)))
    if kind:
        query = query.where(KubeObject.kind == kind)
    if namespace is not None:
        query = query.where(KubeObject.namespace == namespace)
    savepoint = session.begin_nested()
    try:
        session.execute(text(f"SET LOCAL statement_timeout = {SEARCH_TIMEOUT_MS}"))
        rows = session.execute(query).all()
    except DBAPIError as problem:
        savepoint.rollback()
        message = str(getattr(problem, "orig", problem)).splitlines()[0][:300]
        raise bad_request("invalid_json_path", f"the search failed: {message}") from None
    savepoint.commit()
    return [_match(cid, ResourceRef.from_key(key), values) for cid, key, values in rows]


def _search_python(
    session: Session,
    *,
    path: str,
    cluster_ids: Sequence[str] | None,
    kind: str | None,
    namespace: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError  # noqa: PLC0415
    from jsonpath_ng.ext import parse  # noqa: PLC0415

    try:
        expression = parse(path)
    except (JsonPathLexerError, JsonPathParserError, ValueError, AttributeError) as problem:
        raise bad_request("invalid_json_path", f"invalid JSON path: {problem}"[:300]) from None
    wanted = set(cluster_ids or [])
    found: list[dict[str, Any]] = []
    for manifest in current_manifests(session, kind=kind, namespace=namespace):
        if wanted and manifest.cluster_id not in wanted:
            continue
        values = [m.value for m in expression.find(manifest.body)]
        if values:
            found.append(_match(manifest.cluster_id, manifest.ref, values))
    found.sort(key=lambda m: (m["cluster_id"], ResourceRef.from_dict(m["resource"]).key))
    return found[:limit]
