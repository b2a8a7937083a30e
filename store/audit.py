"""The audit log of admin actions: append and read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import AuditEntry


def record_action(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor, action=action, target=target, details=dict(details or {}), source=source
    )
    session.add(entry)
    session.flush()
    return entry


def recent_actions(
    session: Session, *, limit: int = 200, actor: str | None = None, action: str | None = None
) -> Sequence[AuditEntry]:
    """The newest entries first, optionally of one actor and/or one action."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return session.scalars(query).all()
