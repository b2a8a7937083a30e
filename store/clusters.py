"""Cluster registry: clusters, their agents' public keys (rotation, revocation) and ownership."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from contracts.states import ClusterStatus
from store.errors import ClusterExists, ClusterNotFound, KeyExists, KeyNotFound
from store.models import Cluster, ClusterKey
from store.types import utcnow

CLUSTER_STATUSES = tuple(ClusterStatus)


def create_cluster(
    session: Session,
    cluster_id: str,
    *,
    display_name: str | None = None,
    team: str | None = None,
    channel: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Cluster:
    if session.get(Cluster, cluster_id) is not None:
        raise ClusterExists(cluster_id)
    cluster = Cluster(
        id=cluster_id,
        display_name=display_name or cluster_id,
        team=team,
        channel=channel,
        labels=dict(labels or {}),
        status=ClusterStatus.ACTIVE,
    )
    session.add(cluster)
    session.flush()
    return cluster


def get_cluster(session: Session, cluster_id: str) -> Cluster:
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        raise ClusterNotFound(cluster_id)
    return cluster


def list_clusters(session: Session, *, status: str | None = None) -> Sequence[Cluster]:
    query = select(Cluster).options(selectinload(Cluster.keys)).order_by(Cluster.id)
    if status is not None:
        query = query.where(Cluster.status == status)
    return session.scalars(query).all()


def update_cluster(session: Session, cluster_id: str, **changes: Any) -> Cluster:
    """Change display_name, team, channel, labels or status."""
    allowed = {"display_name", "team", "channel", "labels", "status"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
    if "status" in changes and changes["status"] not in CLUSTER_STATUSES:
        raise ValueError(f"status must be one of {', '.join(CLUSTER_STATUSES)}")
    cluster = get_cluster(session, cluster_id)
    for name, value in changes.items():
        setattr(cluster, name, value)
    session.flush()
    return cluster


def add_cluster_key(
    session: Session, cluster_id: str, *, key_id: str, public_key: bytes
) -> ClusterKey:
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    get_cluster(session, cluster_id)
    if session.scalar(select(ClusterKey).where(ClusterKey.key_id == key_id)) is not None:
        raise KeyExists(key_id)
    key = ClusterKey(cluster_id=cluster_id, key_id=key_id, public_key=public_key)
    session.add(key)
    session.flush()
    return key


def revoke_cluster_key(
    session: Session, cluster_id: str, key_id: str, *, at: datetime | None = None
) -> ClusterKey:
    key = session.scalar(
        select(ClusterKey).where(ClusterKey.key_id == key_id, ClusterKey.cluster_id == cluster_id)
    )
    if key is None:
        raise KeyNotFound(key_id)
    if key.revoked_at is None:
        key.revoked_at = at or utcnow()
    session.flush()
    return key


def find_cluster_key(session: Session, key_id: str) -> ClusterKey | None:
    """The key registered under `key_id` (any cluster, revoked or not): the verifier decides."""
    return session.scalar(select(ClusterKey).where(ClusterKey.key_id == key_id))


def active_cluster_keys(session: Session, cluster_id: str) -> Sequence[ClusterKey]:
    return session.scalars(
        select(ClusterKey)
        .where(ClusterKey.cluster_id == cluster_id, ClusterKey.revoked_at.is_(None))
        .order_by(ClusterKey.id)
    ).all()
