"""The search as the admin pages and the admin API run it: the store's one JSON-path search
(`store.search`, one dialect on PostgreSQL and SQLite) under the one configured time limit,
`K8SMON_SEARCH_TIMEOUT_SECONDS`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from ingest.context import ctx
from store.search import SearchError, SearchResult, SearchTimeout
from store.search import run_search as store_search

__all__ = ["SearchError", "SearchResult", "SearchTimeout", "run_search"]


def run_search(
    session: Session,
    path: str,
    *,
    cluster_id: str | None = None,
    cluster_ids: Sequence[str] | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    distinct: bool = False,
    limit: int = 1000,
) -> SearchResult:
    """`cluster_id` and `cluster_ids` both narrow the clusters (none: every cluster)."""
    wanted = [*(cluster_ids or ()), *([cluster_id] if cluster_id else [])]
    return store_search(
        session,
        path,
        timeout_seconds=ctx().settings.search_timeout_seconds,
        cluster_ids=wanted,
        kind=kind,
        namespace=namespace,
        distinct=distinct,
        limit=limit,
    )
