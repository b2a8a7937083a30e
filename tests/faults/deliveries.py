"""Shared by the delivery fault tests: clusters whose reports go to a webhook receiver in the
test, scanned by the rig's real worker, and the deliveries as the database has them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from contracts.tasks import RESCAN
from store import clusters
from store.models import Delivery
from tests.faults.rig import ClusterFeed, FaultRig

WEBHOOK_SECRET = "fault-rig-webhook-secret"
# Documented settings only: webhooks to the receiver on loopback, signed as production requires.
WEBHOOK_ENV: dict[str, Any] = {
    "K8SMON_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "K8SMON_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
    "K8SMON_SCAN_ON_PUSH": "false",  # each test starts its scans itself
}


def clusters_reporting_to(
    rig: FaultRig, receiver_url: str, count: int, *, prefix: str
) -> list[ClusterFeed]:
    """`count` clusters whose channel is the receiver, pushed through the real ingest, applied
    and rescanned by the rig's worker (each scan finds news, so each makes one delivery)."""
    feeds = rig.register_clusters(count, objects=12, prefix=prefix)
    with rig.session() as session:
        for feed in feeds:
            clusters.update_cluster(
                session, feed.cluster_id, channel=f"{receiver_url}/{feed.cluster_id}"
            )
    outcomes = rig.push_full(feeds)
    assert [o.status for o in outcomes] == [202] * count, [o.summary() for o in outcomes]
    rig.wait_until(lambda: rig.snapshots_processed(feeds), timeout=120, what="pushes applied")
    for feed in feeds:
        rig.send_task(RESCAN, cluster_id=feed.cluster_id)
    return feeds


def deliveries(rig: FaultRig, feeds: Sequence[ClusterFeed] = ()) -> list[Delivery]:
    """The deliveries (of these clusters), oldest first, detached."""
    query = select(Delivery).order_by(Delivery.id)
    if feeds:
        query = query.where(Delivery.cluster_id.in_([f.cluster_id for f in feeds]))
    with rig.session() as session:
        rows = list(session.scalars(query))
        session.expunge_all()
    return rows
