"""The admin API's search back in time (`at`, `between` in POST /v1/admin/search): answers from
the stored versions with each version's validity window, and clear 400s for times it cannot
look at (unreadable, out of order, in the future, before the retention window)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from store.models import AuditEntry
from tests.ingest.conftest import Server
from tests.web.fleet import push_history

IMAGE = "$.spec.template.spec.containers[*].image"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_search_at_a_past_time_and_between_two(server: Server) -> None:
    agent = server.register_cluster()
    now = datetime.fromtimestamp(server.clock(), UTC)
    with server.sessions() as session:
        when = push_history(session, agent.cluster_id, now=now)
        session.commit()
    viewer = server.admin(role="viewer")
    mine = [agent.cluster_id]

    def search(**asked: object) -> dict:
        answer = viewer.json("POST", "/v1/admin/search", {"path": IMAGE, "clusters": mine, **asked})
        assert answer.status_code == 200, answer.text
        return answer.json()

    then = search(at=_iso(when.first + timedelta(hours=12)))["matches"]
    assert [(m["resource"]["name"], m["values"]) for m in then] == [
        ("job", ["history/job:1"]),
        ("web", ["history/web:1"]),
    ]
    web = then[1]
    assert web["cluster_id"] == agent.cluster_id
    assert datetime.fromisoformat(web["valid_from"]) == when.first
    assert datetime.fromisoformat(web["valid_until"]) == when.second
    # now: the job is gone and web runs v2, still current (no end)
    today = search()["matches"]
    assert [(m["resource"]["name"], m["values"]) for m in today] == [("web", ["history/web:2"])]
    assert "valid_from" not in today[0]
    latest = search(at=_iso(now))["matches"]
    assert [(m["resource"]["name"], m["valid_until"]) for m in latest] == [("web", None)]
    # A window that saw both versions of web and the deleted job; with +01:00 offsets.
    offset = timedelta(hours=1)
    start = (when.second - timedelta(hours=1) + offset).strftime("%Y-%m-%dT%H:%M:%S+01:00")
    end = (when.second + timedelta(hours=1) + offset).strftime("%Y-%m-%dT%H:%M:%S+01:00")
    window = search(between=[start, end], distinct=True)
    assert window["values"] == [
        {"value": "history/job:1", "occurrences": 1, "clusters": 1},
        {"value": "history/web:1", "occurrences": 1, "clusters": 1},
        {"value": "history/web:2", "occurrences": 1, "clusters": 1},
    ]
    with server.sessions() as session:
        audited = session.scalars(
            select(AuditEntry.details)
            .where(
                AuditEntry.action == "manifests.search",
                AuditEntry.actor == viewer.key_id.removesuffix("-key"),
            )
            .order_by(AuditEntry.id.desc())
        ).first()
    assert audited == {"path": IMAGE, "clusters": mine, "between": [start, end], "distinct": True}


def test_times_the_search_cannot_look_at_are_clear_400s(server: Server) -> None:
    viewer = server.admin(role="viewer")
    now = datetime.fromtimestamp(server.clock(), UTC)

    def refused(**asked: object) -> dict:
        answer = viewer.json("POST", "/v1/admin/search", {"path": IMAGE, **asked})
        assert answer.status_code == 400, answer.text
        return answer.json()

    bad = refused(at="last tuesday")
    assert bad["reason"] == "invalid_time"
    assert bad["detail"].startswith("at: 'last tuesday' is not an ISO 8601 time")
    naive = refused(at="2026-11-01T12:00")
    assert naive["reason"] == "invalid_time" and "has no time zone" in naive["detail"]
    backwards = refused(between=[_iso(now - timedelta(hours=1)), _iso(now - timedelta(hours=2))])
    assert backwards["reason"] == "invalid_time"
    assert backwards["detail"].startswith("between: the start ")
    future = refused(at=_iso(now + timedelta(days=2)))
    assert future["reason"] == "invalid_time" and "is in the future" in future["detail"]
    both = refused(at=_iso(now), between=[_iso(now), _iso(now)])
    assert "give one of them, not both" in both["detail"]
    one = refused(between=[_iso(now)])
    assert one["reason"] == "schema_violation"
    days = server.settings.retention_days
    old = refused(at=_iso(now - timedelta(days=days + 1)))
    assert old["reason"] == "before_retention"
    oldest = datetime.fromisoformat(old["oldest"])
    assert abs(oldest - (now - timedelta(days=days))) < timedelta(minutes=5)
    assert "before the oldest instant kept" in old["detail"]
    assert f"kept {days} days" in old["detail"]
