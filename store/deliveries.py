"""Report deliveries: one row per (scan run, channel), retried with backoff until sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.states import DeliveryState
from store.models import Delivery
from store.types import utcnow

MAX_ATTEMPTS = 6


def ensure_delivery(
    session: Session, *, cluster_id: str, scan_run_id: int, channel: str
) -> Delivery:
    """The delivery of a scan's report to a channel, created once (idempotent)."""
    existing = session.scalar(
        select(Delivery).where(Delivery.scan_run_id == scan_run_id, Delivery.channel == channel)
    )
    if existing is not None:
        return existing
    delivery = Delivery(
        cluster_id=cluster_id,
        scan_run_id=scan_run_id,
        channel=channel,
        state=DeliveryState.PENDING,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(delivery)
    session.flush()
    return delivery


def due_deliveries(
    session: Session, *, now: datetime | None = None, limit: int = 100
) -> Sequence[Delivery]:
    """Pending deliveries whose next attempt is due, locked so two workers never send one twice."""
    at = now or utcnow()
    query = (
        select(Delivery)
        .where(Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_at <= at)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).all()


def mark_sent(session: Session, delivery: Delivery, *, at: datetime | None = None) -> None:
    delivery.attempts += 1
    delivery.state = DeliveryState.SENT
    delivery.sent_at = at or utcnow()
    delivery.last_error = None
    delivery.next_attempt_at = None
    session.flush()


def mark_failed(
    session: Session,
    delivery: Delivery,
    *,
    error: str,
    at: datetime | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> None:
    """Record a failed attempt: retry later with exponential backoff, or give up."""
    now = at or utcnow()
    delivery.attempts += 1
    delivery.last_error = error[:2000]
    if delivery.attempts >= max_attempts:
        delivery.state = DeliveryState.FAILED
        delivery.next_attempt_at = None
    else:
        delivery.next_attempt_at = now + timedelta(seconds=30 * 2 ** (delivery.attempts - 1))
    session.flush()


def deliveries_for_scan(session: Session, scan_run_id: int) -> Sequence[Delivery]:
    return session.scalars(
        select(Delivery).where(Delivery.scan_run_id == scan_run_id).order_by(Delivery.id)
    ).all()
