"""Search back in time (store.search with a `Period`): the versions current at an instant or
during a period, on PostgreSQL and SQLite alike, and the one check of the times asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from contracts.instants import InstantError, parse_instant
from store.search import Period, PeriodError, run_search, search_period
from store.snapshots import apply_pending, stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import config_map, deployment, full_envelope

LIMIT = 30.0  # generous: these tests are about answers, not speed
IMAGE = "$.spec.template.spec.containers[*].image"


def push_at(session: Session, cluster_id: str, objects: list[dict[str, Any]], at: datetime) -> None:
    stage_snapshot(session, cluster_id, envelope=full_envelope(objects), received_at=at)
    apply_pending(session, cluster_id)


@pytest.fixture
def day0() -> datetime:
    return (datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)


@pytest.fixture
def history(any_db_session: Session, day0: datetime) -> Session:
    """prod: web runs img:1 from day 0, img:2 from day 2; job (img:job) lives days 1-3 only.
    stage: api runs img:api from day 0 on; canary runs img:canary from 12:00 to 13:00 of day 5."""
    session = any_db_session
    make_cluster(session, "prod")
    make_cluster(session, "stage")
    web1, web2 = deployment("web", image="img:1"), deployment("web", image="img:2")
    job = deployment("job", image="img:job")
    push_at(session, "prod", [web1, config_map("cfg")], day0)
    push_at(session, "prod", [web1, config_map("cfg"), job], day0 + timedelta(days=1))
    push_at(session, "prod", [web2, config_map("cfg"), job], day0 + timedelta(days=2))
    push_at(session, "prod", [web2, config_map("cfg")], day0 + timedelta(days=3))
    api = deployment("api", image="img:api")
    canary = deployment("canary", image="img:canary")
    push_at(session, "stage", [api], day0)
    push_at(session, "stage", [api, canary], day0 + timedelta(days=5, hours=12))
    push_at(session, "stage", [api], day0 + timedelta(days=5, hours=13))
    return session


def found(session: Session, period: Period | None, **options: Any) -> dict[tuple[str, str], Any]:
    result = run_search(session, IMAGE, timeout_seconds=LIMIT, period=period, **options)
    return {(m.cluster_id, m.ref.name): m for m in result.matches}


def at(moment: datetime) -> Period:
    return Period(moment, moment)


def test_the_version_current_at_a_time_is_found_not_the_one_replaced_before(
    history: Session, day0: datetime
) -> None:
    matches = found(history, at(day0 + timedelta(days=1, hours=6)))
    assert matches[("prod", "web")].values == ["img:1"]
    window = matches[("prod", "web")].validity
    assert window is not None
    assert (window.first_seen, window.superseded_at) == (day0, day0 + timedelta(days=2))
    later = found(history, at(day0 + timedelta(days=2, hours=6)))
    assert later[("prod", "web")].values == ["img:2"]  # img:1 was replaced on day 2
    assert all(m.values != ["img:1"] for m in later.values())
    # the version that is still current has no end
    assert later[("prod", "web")].validity.superseded_at is None  # type: ignore[union-attr]


def test_a_deleted_resource_is_found_at_a_time_it_existed(history: Session, day0: datetime) -> None:
    then = found(history, at(day0 + timedelta(days=2, hours=1)))
    assert then[("prod", "job")].values == ["img:job"]
    assert then[("prod", "job")].validity.superseded_at == day0 + timedelta(days=3)  # type: ignore[union-attr]
    assert ("prod", "job") not in found(history, at(day0 + timedelta(days=4)))
    assert ("prod", "job") not in found(history, None)  # nor now
    assert ("prod", "job") not in found(history, at(day0 + timedelta(hours=1)))  # nor before


def test_between_catches_a_version_that_lived_only_inside_the_window(
    history: Session, day0: datetime
) -> None:
    window = Period(day0 + timedelta(days=5), day0 + timedelta(days=6))
    matches = found(history, window)
    assert matches[("stage", "canary")].values == ["img:canary"]
    validity = matches[("stage", "canary")].validity
    assert validity is not None
    assert validity.first_seen == day0 + timedelta(days=5, hours=12)
    assert validity.superseded_at == day0 + timedelta(days=5, hours=13)
    # neither instant at the window's ends saw it
    assert ("stage", "canary") not in found(history, at(window.since))
    assert ("stage", "canary") not in found(history, at(window.until))


def test_between_lists_every_version_of_the_window_with_distinct_counts(
    history: Session, day0: datetime
) -> None:
    window = Period(day0 + timedelta(days=1), day0 + timedelta(days=2, hours=1))
    result = run_search(history, IMAGE, timeout_seconds=LIMIT, period=window)
    webs = [m for m in result.matches if m.ref.name == "web"]
    assert [m.values for m in webs] == [["img:1"], ["img:2"]]  # oldest version first
    distinct = run_search(history, IMAGE, timeout_seconds=LIMIT, period=window, distinct=True)
    counts = {v.value: (v.occurrences, v.clusters) for v in distinct.values}
    assert counts == {"img:1": (1, 1), "img:2": (1, 1), "img:job": (1, 1), "img:api": (1, 1)}


def test_scope_and_limit_apply_back_in_time(history: Session, day0: datetime) -> None:
    moment = at(day0 + timedelta(days=2, hours=1))
    assert set(found(history, moment, cluster_ids=["stage"])) == {("stage", "api")}
    assert set(found(history, moment, kind="ConfigMap")) == set()  # no image in a ConfigMap
    result = run_search(history, IMAGE, timeout_seconds=LIMIT, period=moment, limit=2)
    assert result.truncated and len(result.matches) == 2
    listed = [(m.cluster_id, m.ref.name) for m in result.matches]
    assert listed == [("prod", "job"), ("prod", "web")]


# ---- the one check of the times asked for ---------------------------------------------------


NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def period(**asked: Any) -> Period | None:
    return search_period(
        at=asked.get("at"), between=asked.get("between"), now=NOW, retention_days=30
    )


def test_times_with_z_or_an_offset_are_read_as_utc() -> None:
    assert period(at="2026-11-20T12:00Z") == at(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    assert period(at="2026-11-20T13:00:00+01:00") == at(datetime(2026, 11, 20, 12, tzinfo=UTC))
    assert period(between=["2026-11-10T00:00Z", "2026-11-11T00:00Z"]) == Period(
        datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)
    )
    assert period() is None


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        ({"at": "yesterday"}, "at: 'yesterday' is not an ISO 8601 time"),
        ({"at": "2026-11-20T12:00"}, "at: '2026-11-20T12:00' has no time zone"),
        ({"at": ""}, "at: give an ISO 8601 time such as"),
        ({"between": ["2026-11-10T00:00Z", "soon"]}, "between: 'soon' is not an ISO 8601"),
        ({"between": ["2026-11-10T00:00Z"]}, "between: give two times"),
        (
            {"between": ["2026-11-12T00:00Z", "2026-11-11T00:00Z"]},
            "between: the start 2026-11-12T00:00:00Z is after the end 2026-11-11T00:00:00Z",
        ),
        ({"at": "2026-12-05T00:00Z"}, "at: 2026-12-05T00:00:00Z is in the future"),
        ({"at": "2026-11-01T00:00Z", "between": ["a", "b"]}, "give one of them, not both"),
        ({"at": "0001-01-01T00:00+01:00"}, "at: '0001-01-01T00:00+01:00' is out of range"),
    ],
)
def test_unreadable_or_impossible_times_are_refused_naming_the_parameter(
    asked: dict[str, Any], message: str
) -> None:
    with pytest.raises(PeriodError) as refused:
        period(**asked)
    assert message in str(refused.value)
    assert refused.value.oldest is None


def test_a_time_before_the_retention_window_names_the_oldest_instant_kept() -> None:
    with pytest.raises(PeriodError) as refused:
        period(at="2026-11-01T00:00Z")
    assert refused.value.oldest == datetime(2026, 11, 4, 12, 0, tzinfo=UTC)
    assert "before the oldest instant kept, 2026-11-04T12:00:00Z" in str(refused.value)
    assert "K8SMON_RETENTION_DAYS" in str(refused.value)
    with pytest.raises(PeriodError):
        period(between=["2026-11-01T00:00Z", "2026-12-01T00:00Z"])
    assert period(at="2026-11-04T12:00Z") == at(datetime(2026, 11, 4, 12, tzinfo=UTC))


def test_the_parser_is_the_one_the_cli_uses() -> None:
    with pytest.raises(InstantError, match="--at: 'x' is not an ISO 8601 time"):
        parse_instant("x", name="--at")
