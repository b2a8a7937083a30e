"""Issue 13 point 3: one cluster's huge snapshot being applied cannot stall the web tier.

A worker applies a real snapshot of the cluster and keeps its transaction (and so the
cluster's row lock) open, as a long apply does. Meanwhile that cluster's pushes are answered
503 `cluster_busy` with Retry-After, without waiting for the lock, and nothing of them is
stored; health checks and other clusters' pushes are served. No timing is asserted: every
request has to complete while the lock is still held.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.wire import TELEMETRY_SCHEMA_ID
from store.models import Snapshot
from store.snapshots import apply_pending
from tests.ingest.conftest import Server
from tests.security.conftest import assert_refused, stored
from tests.support.manifests import cluster_objects, full_envelope

TELEMETRY = {"schema": TELEMETRY_SCHEMA_ID, "agent_version": "1.0.0", "node_count": 3}
BIG = 3000  # objects in the snapshot being applied


def test_pushes_wait_for_no_lock_held_by_long_processing(server: Server) -> None:
    busy = server.register_cluster()
    other = server.register_cluster()
    assert busy.push("snapshots", full_envelope(cluster_objects(BIG))).status_code == 202
    before = stored(server, busy.cluster_id)

    worker = Session(bind=server.sessions.kw["bind"])
    try:
        # The real apply of the big snapshot; its transaction (and the cluster's row lock) stays
        # open until the commit below, as during a long apply.
        apply_pending(worker, busy.cluster_id)
        assert worker.in_transaction()

        def healthz() -> requests.Response:
            return requests.get(server.base_url + "/healthz", timeout=20)

        with ThreadPoolExecutor(max_workers=12) as pool:
            busy_pushes = [pool.submit(busy.push, "telemetry", TELEMETRY) for _ in range(5)] + [
                pool.submit(busy.push, "snapshots", full_envelope(cluster_objects(3)))
                for _ in range(5)
            ]
            checks = [pool.submit(healthz) for _ in range(5)]
            others = [
                pool.submit(other.push, "telemetry", TELEMETRY),
                pool.submit(other.push, "snapshots", full_envelope(cluster_objects(5))),
            ]
            busy_answers = [f.result(timeout=60) for f in busy_pushes]
            check_answers = [f.result(timeout=60) for f in checks]
            other_answers = [f.result(timeout=60) for f in others]
        # All of that completed while the worker still holds the lock.
        assert worker.in_transaction()
        for answer in busy_answers:
            assert_refused(answer, 503, "cluster_busy")
            assert answer.headers["Retry-After"] == "30"
        assert [a.status_code for a in check_answers] == [200] * 5
        assert [a.status_code for a in other_answers] == [202, 202]
        assert stored(server, busy.cluster_id) == before
        assert stored(server, other.cluster_id) == {"snapshots": 1, "pings": 1}
        worker.commit()
    finally:
        worker.close()
    # The lock released, the same cluster's pushes are accepted again.
    assert busy.push("telemetry", TELEMETRY).status_code == 202
    with server.sessions() as session:
        states = session.scalars(
            select(Snapshot.state).where(Snapshot.cluster_id == busy.cluster_id)
        ).all()
    assert states == ["processed"]
