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


def recent_actions(session: Session, *, limit: int = 200) -> Sequence[AuditEntry]:
    return session.scalars(
        select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    ).all()
