"""The day summaries of image presence (store.presence_days, PostgreSQL): the time-travel
`distinct` image searches they answer are the generic evaluation's, exactly, for periods of
every length across derived days, after a snapshot applied late (which drops the days it
changes until they are derived again), after purges, and with a value at two shapes; and
what is derived equals a derivation from scratch (the structure cannot drift from its
definition)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

import store.search as search_module
from store import image_presence, presence_days
from store.models import (
    Cluster,
    ImageCheckpoint,
    ImageCheckpointValue,
    ImageDayChange,
    ImageDayEvent,
    ImageDerivedDay,
)
from store.search import Period
from tests.store.test_image_index import (  # noqa: F401 - fixtures
    RECOGNISED,
    _both_ways,
    _purge,
    day0,
    fleet,
    push_at,
    web,
)


@pytest.fixture
def pg_fleet(fleet: Session) -> Session:  # noqa: F811
    if fleet.get_bind().dialect.name != "postgresql":
        pytest.skip("day summaries are derived on PostgreSQL only")
    return fleet


def _derived(session: Session) -> set[tuple[Any, ...]]:
    """Every derived row, with its image as (shape, value) rather than its id."""
    from store.models import ImageValue  # noqa: PLC0415

    images = {
        i: (s, repr(v))
        for i, s, v in session.execute(select(ImageValue.id, ImageValue.shape, ImageValue.value))
    }
    rows: set[tuple[Any, ...]] = {
        (at, base) for at, base in session.execute(select(ImageDerivedDay.at, ImageDerivedDay.base))
    }
    rows |= {
        ("v", at, images[i], s, p)
        for at, i, s, p in session.execute(
            select(
                ImageCheckpointValue.at,
                ImageCheckpointValue.value_id,
                ImageCheckpointValue.slots,
                ImageCheckpointValue.pairs,
            )
        )
    }
    rows |= {
        ("c", at, images[i], c, d, s, e)
        for at, i, c, d, s, e in session.execute(
            select(
                ImageDayChange.at,
                ImageDayChange.value_id,
                ImageDayChange.cluster_id,
                ImageDayChange.day,
                ImageDayChange.started,
                ImageDayChange.ended,
            )
        )
    }
    rows |= {
        ("e", at, images[i], c, d, n, p)
        for at, i, c, d, n, p in session.execute(
            select(
                ImageDayEvent.at,
                ImageDayEvent.value_id,
                ImageDayEvent.cluster_id,
                ImageDayEvent.day,
                ImageDayEvent.delta,
                ImageDayEvent.prev_left,
            )
        )
    }
    return rows


def _from_scratch(session: Session) -> set[tuple[Any, ...]]:
    """What a derivation from scratch of the same days writes (the session is left as is)."""
    first = session.scalar(select(func.min(ImageDerivedDay.at)))
    savepoint = session.begin_nested()
    image_presence.forget_days(session, since=None)
    presence_days.derive_days(session, since=first)
    rows = _derived(session)
    savepoint.rollback()
    return rows


def _periods(session: Session) -> list[Period]:
    """Periods of every length from the first derived checkpoint to the last."""
    days = sorted(session.scalars(select(ImageDerivedDay.at)))
    found: list[Period] = []
    if not days:
        return found
    moment = days[0]
    while moment <= days[-1]:
        for width in (
            timedelta(0),
            timedelta(hours=1),
            timedelta(hours=13),
            timedelta(days=1, hours=2),
            timedelta(days=3),
        ):
            if moment + width <= days[-1]:
                found.append(Period(moment, moment + width))
        moment += timedelta(hours=5)
    return found


def _compare(session: Session, monkeypatch: pytest.MonkeyPatch) -> int:
    """Every recognised path over every period: day summaries == generic evaluation; returns
    how many searches the day summaries answered (not empty)."""
    answered = 0
    used = []
    real = presence_days.per_image

    def spy(**kwargs: Any) -> Any:
        used.append(kwargs)
        return real(**kwargs)

    for path in RECOGNISED:
        for period in _periods(session):
            with monkeypatch.context() as patched:
                patched.setattr(search_module, "per_image", spy)
                used.clear()
                summarised, generic = _both_ways(
                    session, monkeypatch, path, period=period, distinct=True
                )
            assert summarised == generic, (path, period)
            answered += bool(used and summarised[2])
    return answered


def test_day_summaries_answer_as_the_generic_evaluation(
    pg_fleet: Session,
    monkeypatch: pytest.MonkeyPatch,
    day0: datetime,  # noqa: F811 - the fixture imported above
) -> None:
    assert image_presence.take_checkpoints(pg_fleet) > 3
    assert presence_days.derive_days(pg_fleet) > 3
    assert presence_days.derive_days(pg_fleet) == 0  # nothing missing
    assert _derived(pg_fleet) == _from_scratch(pg_fleet)
    assert _compare(pg_fleet, monkeypatch) > 100
    # Deleting a cluster (its groups, changes and checkpoint rows go with it) drops them all.
    savepoint = pg_fleet.begin_nested()
    pg_fleet.execute(delete(Cluster).where(Cluster.id == "dev"))
    assert not pg_fleet.scalar(select(func.count()).select_from(ImageDerivedDay))
    assert not pg_fleet.scalar(select(func.count()).select_from(ImageDayChange))
    assert pg_fleet.scalar(select(func.count()).select_from(ImageCheckpoint))
    savepoint.rollback()
    # A value at two shapes ($..image: envoy as a container and in a Pod's status) is
    # counted per cluster: the comparison above covers it; it is there.
    days = sorted(pg_fleet.scalars(select(ImageDerivedDay.at)))
    late = day0 + timedelta(days=1, hours=14)
    assert days[0] < late < days[-1]
    push_at(pg_fleet, "stage", [web("shop/web:4", init="busybox:3")], late)
    kept = sorted(pg_fleet.scalars(select(ImageDerivedDay.at)))
    assert kept == [at for at in days if at < late], "the late apply left its days derived"
    assert _compare(pg_fleet, monkeypatch) > 10  # (the later days read image presence)
    assert presence_days.derive_days(pg_fleet) > 0
    assert sorted(pg_fleet.scalars(select(ImageDerivedDay.at))) == days
    assert _derived(pg_fleet) == _from_scratch(pg_fleet)
    assert _compare(pg_fleet, monkeypatch) > 100
    for n in (2, 3):
        _purge(pg_fleet, day0 + timedelta(days=n))
        presence_days.derive_days(pg_fleet)
        # the days from the merge horizon on stay (the last one at the deeper purge)
        assert _compare(pg_fleet, monkeypatch) >= (n == 2)


def test_days_are_derived_forward_only(pg_fleet: Session) -> None:
    """A day is derived only after the ones derived before it (a coming's last leaving is
    known only from the days before it), from `since` when given."""
    image_presence.take_checkpoints(pg_fleet)
    instants = sorted(pg_fleet.scalars(select(ImageCheckpoint.at)))
    presence_days.derive_days(pg_fleet, since=instants[1])
    assert sorted(pg_fleet.scalars(select(ImageDerivedDay.at))) == instants[1:]
    assert presence_days.derive_days(pg_fleet) == 0
    first = pg_fleet.get(ImageDerivedDay, instants[1])
    assert first is not None and first.base is None


def test_days_forgotten_after_the_check_are_not_read(
    pg_fleet: Session,
    monkeypatch: pytest.MonkeyPatch,
    day0: datetime,  # noqa: F811 - the fixture imported above
) -> None:
    """A late apply can forget days between a search's `covered` and its read of the
    summaries: the read checks again in its own snapshot, so a check gone stale never makes
    it answer from days no longer derived (here the check always says yes: every answer over
    the forgotten days is still the generic evaluation's)."""
    image_presence.take_checkpoints(pg_fleet)
    presence_days.derive_days(pg_fleet)
    periods = _periods(pg_fleet)
    push_at(
        pg_fleet, "stage", [web("shop/web:4", init="busybox:3")], day0 + timedelta(days=1, hours=14)
    )
    stale = []
    for period in periods:
        checkpoint = image_presence.checkpoint_for(pg_fleet, period.since)
        if checkpoint is not None and not presence_days.covered(
            pg_fleet, checkpoint=checkpoint, until=period.until
        ):
            stale.append(period)
    assert len(stale) > 10, "the late apply forgot no day the periods read"
    monkeypatch.setattr(search_module, "covered", lambda _session, **_period: True)
    found = 0
    for path in RECOGNISED:
        for period in stale:
            summarised, generic = _both_ways(
                pg_fleet, monkeypatch, path, period=period, distinct=True
            )
            assert summarised == generic, (path, period)
            found += bool(generic[2])
    assert found > 10  # the answers compared are not empty
