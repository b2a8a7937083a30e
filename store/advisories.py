"""Loaded image advisories: replace-by-id loading, listing, deletion, and the records the
fleet rules read (`contracts.advisories.Advisory`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from contracts.advisories import Advisory, parse_advisory
from store.models import Advisory as AdvisoryRow
from store.types import utcnow


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    created: list[str]
    replaced: list[str]


def load_advisories(
    session: Session, advisories: Sequence[Advisory], *, loaded_by: str
) -> LoadOutcome:
    """Store validated advisories in the caller's transaction; an id already loaded is
    replaced. The caller commits (all or nothing)."""
    wanted = {a.id for a in advisories}
    existing = {
        row.advisory_id: row
        for row in session.scalars(
            select(AdvisoryRow).where(AdvisoryRow.advisory_id.in_(sorted(wanted)))
        )
    }
    created, replaced = [], []
    now = utcnow()
    for advisory in advisories:
        row = existing.get(advisory.id)
        if row is None:
            row = AdvisoryRow(advisory_id=advisory.id)
            session.add(row)
            created.append(advisory.id)
        else:
            replaced.append(advisory.id)
        row.severity = advisory.severity.value
        row.summary = advisory.summary
        row.url = advisory.url
        row.record = advisory.to_dict()
        row.loaded_by = loaded_by
        row.loaded_at = now
    session.flush()
    return LoadOutcome(created, replaced)


def list_advisories(session: Session) -> Sequence[AdvisoryRow]:
    """Every loaded advisory, by id."""
    return session.scalars(select(AdvisoryRow).order_by(AdvisoryRow.advisory_id)).all()


def loaded_advisories(session: Session) -> list[Advisory]:
    """The loaded advisories as the rules read them (records were validated when loaded)."""
    return [parse_advisory(row.record) for row in list_advisories(session)]


def delete_advisory(session: Session, advisory_id: str) -> bool:
    """Remove one advisory; False when no advisory has that id."""
    result = session.execute(delete(AdvisoryRow).where(AdvisoryRow.advisory_id == advisory_id))
    return bool(getattr(result, "rowcount", 0))
