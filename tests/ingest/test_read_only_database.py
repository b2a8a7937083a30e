"""A read-only database (a standby after failover): pushes are answered 503 `unavailable` with
Retry-After, never 500, nothing of them is stored or enqueued, and pushes are accepted again
once the database takes writes. The real ingest app on a private PostgreSQL made read-only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from contracts.tasks import PROCESS_SNAPSHOT
from ingest.app import create_app
from settings import Settings
from store import migrate
from store.db import make_engine, make_session_factory
from tests.ingest.conftest import RecordingDispatcher, Server, start_server
from tests.ingest.test_push import TELEMETRY, _stored
from tests.support.manifests import cluster_objects, full_envelope
from tests.support.private_postgres import private_postgres, set_read_only
from tests.support.throwaway_postgres import ThrowawayPostgres

pytestmark = [pytest.mark.postgres]


@pytest.fixture(scope="module")
def private() -> Iterator[ThrowawayPostgres]:
    with private_postgres() as pg:
        yield pg


@pytest.fixture
def live(private: ThrowawayPostgres, tmp_path: Path) -> Iterator[Server]:
    engine = make_engine(private.url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    settings = Settings(
        database_url=private.url,
        secret_key="read-only-test-" + "x" * 32,
        instance_path=tmp_path,
        rate_limit_per_minute=1000,
    )
    dispatcher = RecordingDispatcher()
    app = create_app(settings, store=sessions, dispatch=dispatcher)
    http, thread, base_url = start_server(app)
    try:
        yield Server(base_url, app, sessions, dispatcher, settings)
    finally:
        http.shutdown()
        thread.join(timeout=5)
        set_read_only(private, False)
        engine.dispose()


def _assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert int(response.headers["Retry-After"]) > 0
    problem = response.json()
    assert problem["reason"] == "unavailable" and problem["status"] == 503
    assert "read-only" in problem["detail"]


def test_pushes_to_a_read_only_database_get_503_with_retry_after(
    live: Server, private: ThrowawayPostgres
) -> None:
    agent = live.register_cluster()
    first = agent.push("snapshots", full_envelope(cluster_objects(3)))
    assert first.status_code == 202, first.text
    before = _stored(live, agent.cluster_id)
    enqueued_before = list(live.dispatcher.calls)

    set_read_only(private, True)
    for objects in (4, 5):
        _assert_unavailable(agent.push("snapshots", full_envelope(cluster_objects(objects))))
        _assert_unavailable(agent.push("telemetry", TELEMETRY))
    metrics = requests.get(live.base_url + "/metrics", timeout=10).text
    assert 'reason="unavailable"' in metrics and 'reason="internal_error"' not in metrics

    set_read_only(private, False)
    assert _stored(live, agent.cluster_id) == before  # nothing half-stored
    assert live.dispatcher.calls == enqueued_before  # nothing enqueued for a refused push
    again = agent.push("snapshots", full_envelope(cluster_objects(4)))
    assert again.status_code == 202, again.text
    assert live.dispatcher.calls[-1] == (
        PROCESS_SNAPSHOT,
        [],
        {"snapshot_id": again.json()["snapshot_id"]},
    )
    assert agent.push("telemetry", TELEMETRY).status_code == 202
