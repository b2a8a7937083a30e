"""Expiry purge driver: small batches, each its own short transaction, until nothing is left."""

from __future__ import annotations

import time

from sqlalchemy.orm import Session, sessionmaker

from store import purge, rule_cache
from store.db import unit_of_work
from store.types import utcnow


def purge_expired(
    sessions: sessionmaker[Session],
    *,
    retention_days: int,
    batch_size: int = purge.DEFAULT_BATCH,
    pause_s: float = 0.0,
    catalogue_version: str | None = None,
) -> dict[str, int]:
    """Delete everything older than the retention window; returns rows deleted per table.

    Every batch commits on its own, so locks are held for one small statement at a time and the
    ingest never waits long; `pause_s` between batches yields the database to other work.
    """
    cutoff = purge.retention_cutoff(utcnow(), retention_days=retention_days)
    totals: dict[str, int] = {}
    for table, purger in purge.PURGERS:
        totals[table] = 0
        while True:
            with unit_of_work(sessions) as session:
                deleted = purger(session, cutoff=cutoff, batch_size=batch_size)
            totals[table] += deleted
            if deleted < batch_size:
                break
            if pause_s:
                time.sleep(pause_s)
    if catalogue_version:
        totals["rule_result_cache"] = 0
        while True:
            with unit_of_work(sessions) as session:
                deleted = rule_cache.delete_other_versions(
                    session, keep_version=catalogue_version, batch_size=batch_size
                )
            totals["rule_result_cache"] += deleted
            if deleted < batch_size:
                break
    return totals
