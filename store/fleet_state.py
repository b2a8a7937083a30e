"""The fleet rules' last evaluation: the digest of the inputs it judged and until when its
results hold with time, so that the next evaluation of the same inputs before then is skipped.

A fleet evaluation (`workers.services.fleet`) reads the active clusters, each one's image
inventory (`store.images`), the exemptions, the loaded advisories and the rules (their
catalogue version, which names the configuration too); its findings then are what those give
at that time. `FleetInputs` is the digest of everything but the inventories, read before the
evaluation reads them: each of those rows only ever changes forward (a cluster that comes back
is created anew, an exemption is revoked, not restored, an advisory loaded again is a new
record), so when the digest still matches afterwards, the evaluation judged what it names.
The inventories are named by the digests of the uses the evaluation actually judged (the
rows' `uses_digest`), and the since values they hold by the history epoch, which the retention
purge moves when it deletes versions (`history_changed`).

Findings change only through reconciliation (an evaluation, a scan's finalize), which this
accounts for; whoever deletes them otherwise (by hand, or a benchmark resetting its scans)
must delete the record too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from contracts.hashing import canonical_json
from contracts.states import ClusterStatus
from store.bulk import dialect_insert, table_of
from store.models import Advisory, Cluster, Exemption, FleetEvaluation

_ROW = 1  # the table's one row


@dataclass(frozen=True, slots=True)
class LastEvaluation:
    """What the last evaluation recorded: the history epoch now, the digest of the inputs it
    judged (None: none to reuse) and until when its results hold with time (None: for ever)."""

    history_epoch: int
    inputs: str | None
    valid_until: datetime | None

    def covers(self, inputs: str | None, *, at: datetime) -> bool:
        """Whether an evaluation of `inputs` at `at` would find what it found."""
        return (
            inputs is not None
            and inputs == self.inputs
            and (self.valid_until is None or at < self.valid_until)
        )


@dataclass(frozen=True, slots=True)
class FleetInputs:
    """The active clusters (in id order) and the digest of what an evaluation reads besides
    their inventories (`read_fleet_inputs`)."""

    active: list[str]
    digest: str

    def with_inventories(self, uses_digests: Mapping[str, str | None]) -> str | None:
        """The digest of all the inputs, each active cluster's inventory by the digest of its
        uses; None when one has none (its uses were not cached: nothing to compare)."""
        named = [uses_digests.get(cluster_id) for cluster_id in self.active]
        if any(digest is None for digest in named):
            return None
        return _digest([self.digest, named])


def hold_last_evaluation(session: Session) -> LastEvaluation:
    """The last evaluation's record, its row locked until the transaction ends: on PostgreSQL a
    second evaluation waits for the first to commit, so each compares with what the one
    before it recorded and left."""
    held = select(
        FleetEvaluation.history_epoch, FleetEvaluation.inputs, FleetEvaluation.valid_until
    ).where(FleetEvaluation.id == _ROW)
    row = session.execute(held.with_for_update()).first()
    if row is None:  # the first evaluation (SQLite: no write, so no lock, when there is one)
        table = table_of(FleetEvaluation)
        session.execute(
            dialect_insert(session, table).values(id=_ROW, history_epoch=0).on_conflict_do_nothing()
        )
        row = session.execute(held.with_for_update()).one()
    epoch, inputs, valid_until = row
    return LastEvaluation(int(epoch), inputs, valid_until)


def read_fleet_inputs(session: Session, *, history_epoch: int, judged_by: str) -> FleetInputs:
    """The active clusters and the digest of the inputs besides their inventories: the
    clusters (with when each was created: one deleted and created again is another), every
    exemption, every loaded advisory, the history epoch and `judged_by` (the rules' catalogue
    version). Read before the evaluation reads them (the module docstring says why)."""
    clusters = session.execute(
        select(Cluster.id, Cluster.created_at)
        .where(Cluster.status == ClusterStatus.ACTIVE)
        .order_by(Cluster.id)
    ).all()
    # Every column of both (a column added later is an input too).
    exemptions = session.execute(select(table_of(Exemption)).order_by(Exemption.id)).all()
    advisories = session.execute(select(table_of(Advisory)).order_by(Advisory.id)).all()
    digest = _digest(
        [
            judged_by,
            history_epoch,
            [[cid, created.isoformat()] for cid, created in clusters],
            [_plain(row) for row in exemptions],
            [_plain(row) for row in advisories],
        ]
    )
    return FleetInputs(active=[cid for cid, _created in clusters], digest=digest)


def record_evaluation(
    session: Session, *, inputs: str | None, valid_until: datetime | None, at: datetime
) -> None:
    """Record what this evaluation judged (`inputs` None: nothing the next one may reuse) and
    until when its results hold with time (None: for ever)."""
    session.execute(
        update(FleetEvaluation)
        .where(FleetEvaluation.id == _ROW)
        .values(inputs=inputs, valid_until=valid_until, evaluated_at=at)
    )


def history_changed(session: Session) -> None:
    """Versions were deleted: an inventory's since values cached before may no longer be what
    the history says, so no evaluation recorded before is reused."""
    session.execute(
        update(FleetEvaluation)
        .where(FleetEvaluation.id == _ROW)
        .values(history_epoch=FleetEvaluation.history_epoch + 1)
    )


def _plain(row: Sequence[Any]) -> list[Any]:
    return [value.isoformat() if isinstance(value, datetime) else value for value in row]


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()
