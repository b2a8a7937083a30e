"""The daily purge finds expired versions from the partial index on `superseded_at`, not by
scanning `manifest_versions` (which at fleet scale made every batch read the whole table)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from store.purge import expired_versions, purge_versions
from store.snapshots import apply_pending, stage_snapshot
from store.types import utcnow
from tests.support.factories import make_cluster
from tests.support.manifests import config_map, full_envelope

pytestmark = [pytest.mark.postgres]


def test_expired_versions_are_read_from_the_superseded_at_index(db_session: Session) -> None:
    make_cluster(db_session, "idx")
    first = config_map("a", namespace="p")
    for days_ago, body in ((40, first), (35, {**first, "data": {"key": "2"}})):
        stage_snapshot(
            db_session,
            "idx",
            envelope=full_envelope([body]),
            received_at=utcnow() - timedelta(days=days_ago),
        )
        apply_pending(db_session, "idx")
    cutoff = utcnow() - timedelta(days=30)
    query = expired_versions(cutoff=cutoff, batch_size=5000)
    compiled = query.compile(db_session.get_bind(), compile_kwargs={"literal_binds": True})
    # A handful of rows would be read sequentially anyway: forbid that to see the index serve.
    db_session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(db_session.scalars(text(f"EXPLAIN {compiled}")))
    assert "ix_manifest_versions_superseded_at" in plan, plan
    # The first version was superseded 35 days ago: it goes; the current one stays.
    assert purge_versions(db_session, cutoff=cutoff) == 1
    assert purge_versions(db_session, cutoff=cutoff) == 0
