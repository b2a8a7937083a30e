"""`k8smon search --at` / `--between` as an operator runs it, against a live server: answers from
the stored versions with their validity windows; bad times refused before or by the server."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.cli.conftest import Operator
from tests.support.factories import make_cluster
from tests.web.fleet import History, push_history

IMAGE = "$.spec.template.spec.containers[*].image"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def history(operator: Operator) -> History:
    with operator.fleet.sessions() as session:
        make_cluster(session, "archive")
        when = push_history(session, "archive", now=datetime.now(UTC))
        session.commit()
    return when


def test_which_clusters_ran_an_image_at_a_past_time(operator: Operator, history: History) -> None:
    moment = _iso(history.first + timedelta(hours=12))
    result = operator.run("search", IMAGE, "--at", moment, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    # the seeded fleet was pushed just now: at that time only the archive cluster existed
    assert [(r["cluster"], r["name"], r["value"]) for r in rows] == [
        ("archive", "job", "history/job:1"),
        ("archive", "web", "history/web:1"),
    ]
    assert datetime.fromisoformat(rows[1]["valid_from"]) == history.first
    assert datetime.fromisoformat(rows[1]["valid_until"]) == history.second
    table = operator.run("search", IMAGE, "--at", moment, "--cluster", "archive")
    assert result.exit_code == 0, table.output
    assert f"at {moment}" in table.stdout and "valid from" in table.stdout
    assert "history/web:1" in table.stdout
    now = operator.run("search", IMAGE, "--cluster", "archive", "--format", "csv")
    assert [r["value"] for r in csv.DictReader(io.StringIO(now.stdout))] == ["history/web:2"]
    assert "valid_from" not in now.stdout.splitlines()[0]


def test_between_lists_the_deleted_job_and_the_still_current_version(
    operator: Operator, history: History
) -> None:
    result = operator.run(
        "search",
        IMAGE,
        "--cluster",
        "archive",
        "--between",
        _iso(history.second + timedelta(hours=1)),
        _iso(history.third + timedelta(hours=1)),
    )
    assert result.exit_code == 0, result.output
    assert "history/job:1" in result.stdout  # deleted at `third`, inside the window
    assert "still current" in result.stdout  # web:2 has no end
    distinct = operator.run(
        "search",
        IMAGE,
        "--distinct",
        "--between",
        _iso(history.second + timedelta(hours=1)),
        _iso(history.third + timedelta(hours=1)),
        "--format",
        "json",
    )
    assert json.loads(distinct.stdout) == [
        {"value": "history/job:1", "occurrences": 1, "clusters": 1},
        {"value": "history/web:2", "occurrences": 1, "clusters": 1},
    ]


def test_bad_times_are_clear_errors(operator: Operator) -> None:
    unreadable = operator.run("search", IMAGE, "--at", "last tuesday")
    assert unreadable.exit_code == 2
    assert "--at: 'last tuesday' is not an ISO 8601 time" in unreadable.stderr
    naive = operator.run("search", IMAGE, "--between", "2026-11-01T00:00", "2026-11-02T00:00Z")
    assert naive.exit_code == 2 and "--between: '2026-11-01T00:00' has no time zone" in naive.stderr
    both = operator.run("search", IMAGE, "--at", "2026-11-01T00:00Z", "--between", "a", "b")
    assert both.exit_code == 2 and "--at or --between, not both" in both.stderr
    now = datetime.now(UTC)
    backwards = operator.run(
        "search", IMAGE, "--between", _iso(now - timedelta(hours=1)), _iso(now - timedelta(hours=2))
    )
    assert backwards.exit_code == 6
    assert backwards.stderr.startswith("error: 400 bad request (invalid_time): between: the start")
    days = operator.fleet.settings.retention_days
    old = operator.run("search", IMAGE, "--at", _iso(now - timedelta(days=days + 1)))
    assert old.exit_code == 6
    assert "(before_retention)" in old.stderr
    assert "is before the oldest instant kept" in old.stderr and "Traceback" not in old.output
