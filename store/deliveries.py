"""Report deliveries: one row per (scan run, channel), its content bound when the scan finished.

Each attempt is its own short transaction: `claim` takes a due delivery (a compare-and-set on
its next attempt time, so two workers never send one at once, on PostgreSQL and SQLite alike)
and leases it for `CLAIM_LEASE`; the answer is recorded at once by `mark_sent` or
`mark_failed`, before the next message is sent. A worker killed mid-batch therefore re-sends
none of the acknowledged reports; the one it was sending is retried when its lease ends, with
the same idempotency key. Failures back off exponentially (capped) for the retry window, then
the delivery is dead-lettered until an admin re-sends it (`resend`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from contracts.states import DeliveryState
from store.models import Delivery
from store.types import utcnow

# How long a claimed delivery is left to its worker before another may send it again: longer
# than any one attempt (reports.channels allows 10 s per connection step).
CLAIM_LEASE = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try a failed delivery again, and when to give up (settings.config)."""

    backoff: timedelta  # after the first failure; doubled after each further one
    backoff_cap: timedelta
    window: timedelta  # from the first attempt (or an admin's re-send) to the dead letter

    def delay(self, failures: int) -> timedelta:
        doublings = min(max(failures - 1, 0), 40)  # 2**40 times any backoff is past any cap
        return min(self.backoff * 2**doublings, self.backoff_cap)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for one attempt: what the sender needs, detached from the session."""

    id: int
    cluster_id: str
    scan_run_id: int | None
    channel: str
    idempotency_key: str
    attempt: int
    content: Mapping[str, Any] | None


def ensure_delivery(
    session: Session,
    *,
    cluster_id: str,
    scan_run_id: int,
    channel: str,
    content: Mapping[str, Any] | None = None,
) -> Delivery:
    """The delivery of a scan's report to a channel, created once (idempotent) with the report
    as it stands now: sent later, it still describes this scan."""
    existing = session.scalar(
        select(Delivery).where(Delivery.scan_run_id == scan_run_id, Delivery.channel == channel)
    )
    if existing is not None:
        return existing
    now = utcnow()
    delivery = Delivery(
        cluster_id=cluster_id,
        scan_run_id=scan_run_id,
        channel=channel,
        state=DeliveryState.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        retry_since=now,
        idempotency_key=uuid.uuid4().hex,
        content=dict(content) if content is not None else None,
    )
    session.add(delivery)
    session.flush()
    return delivery


def due_ids(
    session: Session,
    *,
    now: datetime | None = None,
    scan_run_id: int | None = None,
    limit: int = 100,
) -> list[int]:
    """Pending deliveries whose next attempt is due, oldest due first (not locked: `claim`)."""
    at = now or utcnow()
    query = (
        select(Delivery.id)
        .where(Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_at <= at)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    if scan_run_id is not None:
        query = query.where(Delivery.scan_run_id == scan_run_id)
    return list(session.scalars(query))


def claim(session: Session, delivery_id: int, *, now: datetime | None = None) -> Claimed | None:
    """Take one due delivery for an attempt (None when another worker took it, or it is no
    longer due): its attempt is counted and its next attempt moved past the lease."""
    at = now or utcnow()
    taken = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.state == DeliveryState.PENDING,
            Delivery.next_attempt_at <= at,
        )
        .values(
            attempts=Delivery.attempts + 1,
            last_attempt_at=at,
            next_attempt_at=at + CLAIM_LEASE,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(taken, "rowcount", 0) != 1:
        return None
    row = session.execute(
        select(
            Delivery.cluster_id,
            Delivery.scan_run_id,
            Delivery.channel,
            Delivery.idempotency_key,
            Delivery.attempts,
            Delivery.content,
        ).where(Delivery.id == delivery_id)
    ).one()
    return Claimed(
        id=delivery_id,
        cluster_id=row.cluster_id,
        scan_run_id=row.scan_run_id,
        channel=row.channel,
        idempotency_key=row.idempotency_key,
        attempt=row.attempts,
        content=row.content,
    )


def mark_sent(session: Session, delivery_id: int, *, at: datetime | None = None) -> None:
    """The receiver acknowledged the report: never send it again."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(
            state=DeliveryState.SENT,
            sent_at=at or utcnow(),
            last_error=None,
            next_attempt_at=None,
        )
        .execution_options(synchronize_session=False)
    )


def mark_failed(
    session: Session,
    delivery_id: int,
    *,
    error: str,
    policy: RetryPolicy,
    at: datetime | None = None,
) -> DeliveryState:
    """Record a failed attempt: retry after the backoff, or dead-letter it when the retry
    window has passed (so it is retried for at least the window). Returns its new state."""
    now = at or utcnow()
    delivery = session.get(Delivery, delivery_id, populate_existing=True)
    if delivery is None or delivery.state != DeliveryState.PENDING:
        return DeliveryState.SENT if delivery is None else delivery.state
    delivery.last_error = error[:2000]
    since = delivery.retry_since or delivery.created_at
    if now >= since + policy.window:
        delivery.state = DeliveryState.DEAD
        delivery.dead_at = now
        delivery.next_attempt_at = None
    else:
        delivery.next_attempt_at = now + policy.delay(delivery.attempts)
    session.flush()
    return delivery.state


class NotDeadLetter(ValueError):
    """Only a dead letter can be re-sent (a pending one is already being retried)."""


def resend(session: Session, delivery_id: int, *, at: datetime | None = None) -> Delivery:
    """An admin's re-send of a dead letter: due at once, with a fresh retry window and the same
    idempotency key. LookupError when there is no such delivery, NotDeadLetter when it is not
    dead."""
    delivery = session.get(Delivery, delivery_id, populate_existing=True)
    if delivery is None:
        raise LookupError(f"no delivery {delivery_id}")
    if delivery.state != DeliveryState.DEAD:
        raise NotDeadLetter(
            f"delivery {delivery_id} is {delivery.state}: only a dead letter can be re-sent"
        )
    now = at or utcnow()
    delivery.state = DeliveryState.PENDING
    delivery.next_attempt_at = now
    delivery.retry_since = now
    delivery.dead_at = None
    session.flush()
    return delivery


def list_deliveries(
    session: Session, *, state: DeliveryState | None = None, limit: int = 200
) -> Sequence[Delivery]:
    """Deliveries, newest first (of one state when given)."""
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if state is not None:
        query = query.where(Delivery.state == state)
    return session.scalars(query).all()


def count_unsent(session: Session) -> dict[str, int]:
    """How many deliveries are pending and dead-lettered (sent ones are not counted)."""
    counts = {DeliveryState.PENDING.value: 0, DeliveryState.DEAD.value: 0}
    rows = session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.state.in_(list(counts)))
        .group_by(Delivery.state)
    )
    for state, count in rows:
        counts[str(state)] = int(count)
    return counts


def deliveries_for_scan(session: Session, scan_run_id: int) -> Sequence[Delivery]:
    return session.scalars(
        select(Delivery).where(Delivery.scan_run_id == scan_run_id).order_by(Delivery.id)
    ).all()
