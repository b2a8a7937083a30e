"""The search as the admin pages and the admin API run it: the store's one JSON-path search
(`store.search`, one dialect on PostgreSQL and SQLite) under the one configured time limit,
`K8SMON_SEARCH_TIMEOUT_SECONDS`, now or back in time (`at`, `between`: checked against the app's
clock and the retention window `K8SMON_RETENTION_DAYS`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from ingest.context import ctx
from store.search import PeriodError, SearchError, SearchResult, SearchTimeout, search_period
from store.search import run_search as store_search

__all__ = ["PeriodError", "SearchError", "SearchResult", "SearchTimeout", "run_search"]


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
    at: str | None = None,
    between: Sequence[str] | None = None,
) -> SearchResult:
    """`cluster_id` and `cluster_ids` both narrow the clusters (none: every cluster); `at` or
    `between` (raw text, ISO 8601) search the versions current then (PeriodError if refused)."""
    wanted = [*(cluster_ids or ()), *([cluster_id] if cluster_id else [])]
    context = ctx()
    period = search_period(
        at=at,
        between=between,
        now=datetime.fromtimestamp(context.clock(), UTC),
        retention_days=context.settings.retention_days,
    )
    return store_search(
        session,
        path,
        timeout_seconds=context.settings.search_timeout_seconds,
        cluster_ids=wanted,
        kind=kind,
        namespace=namespace,
        distinct=distinct,
        limit=limit,
        period=period,
    )
