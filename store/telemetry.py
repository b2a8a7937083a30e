"""Telemetry pings: record them, and read the latest one of every cluster."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import ScalarSelect

from store.clusters import get_cluster
from store.models import Cluster, TelemetryPing
from store.types import utcnow


def record_telemetry(
    session: Session,
    cluster_id: str,
    *,
    payload: Mapping[str, Any],
    received_at: datetime | None = None,
) -> TelemetryPing:
    """Store one ping (a validated telemetry envelope) and stamp the cluster's last ping time."""
    cluster = get_cluster(session, cluster_id)
    at = received_at or utcnow()
    counts = dict(payload.get("object_counts") or {})
    ping = TelemetryPing(
        cluster_id=cluster_id,
        received_at=at,
        agent_version=payload.get("agent_version"),
        kubernetes_version=payload.get("kubernetes_version"),
        platform=payload.get("platform"),
        node_count=payload.get("node_count"),
        namespace_count=payload.get("namespace_count"),
        object_count=sum(counts.values()) if counts else None,
        object_counts=counts,
        collection_duration_s=payload.get("collection_duration_s"),
        errors=dict(payload.get("errors") or {}),
        details={k: v for k, v in payload.items() if k in {"last_push", "details", "sent_at"}},
    )
    session.add(ping)
    cluster.last_telemetry_at = at
    session.flush()
    return ping


def latest_ping_id() -> ScalarSelect[int]:
    """The id of a cluster's most recent ping, correlated to `Cluster` in the outer query:
    one index lookup per cluster through (cluster_id, received_at), not a scan of history."""
    return (
        select(TelemetryPing.id)
        .where(TelemetryPing.cluster_id == Cluster.id)
        .order_by(TelemetryPing.received_at.desc(), TelemetryPing.id.desc())
        .limit(1)
        .correlate(Cluster)
        .scalar_subquery()
    )


def latest_telemetry(session: Session) -> Sequence[tuple[Cluster, TelemetryPing | None]]:
    """Every cluster with its most recent ping (None when it never pinged)."""
    latest_ping = latest_ping_id()
    rows = session.execute(
        select(Cluster, TelemetryPing)
        .outerjoin(TelemetryPing, TelemetryPing.id == latest_ping)
        .order_by(Cluster.id)
    ).all()
    return [(cluster, ping) for cluster, ping in rows]


def latest_ping(session: Session, cluster_id: str) -> TelemetryPing | None:
    """A cluster's most recent ping, if it ever pinged."""
    return session.scalars(
        select(TelemetryPing)
        .where(TelemetryPing.cluster_id == cluster_id)
        .order_by(TelemetryPing.received_at.desc(), TelemetryPing.id.desc())
        .limit(1)
    ).first()


def collection_gaps(ping: TelemetryPing | None) -> dict[str, Any]:
    """What the agent's latest collection could not see, from the ping's details:
    `not_collected` (type -> `failed` or `forbidden`; the agent kept their last known objects)
    and `unserved_types` (include entries the API server serves at no version)."""
    agent_details = ((ping.details or {}).get("details") if ping else None) or {}
    not_collected = agent_details.get("not_collected")
    unserved = agent_details.get("unserved_types")
    return {
        "not_collected": dict(not_collected) if isinstance(not_collected, dict) else {},
        "unserved_types": [str(t) for t in unserved] if isinstance(unserved, list) else [],
    }
