"""`#channel` delivery on a real Celery worker (subprocess, real Redis and PostgreSQL): the worker
reads SLACK_BOT_TOKEN and K8SMON_SLACK_API_URL from its environment and posts the scan report
with chat.postMessage to a fake Slack on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from store import migrate
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import Delivery
from store.snapshots import stage_snapshot
from tests.fakes.slack import BOT_TOKEN, FakeSlack
from tests.support.factories import make_cluster
from tests.support.manifests import full_envelope
from tests.support.services import ThrowawayDatabase
from tests.workers.celery_rig import CeleryRig, running, wait_for
from tests.workers.workloads import privileged

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def database(postgres_server_url: str) -> Iterator[ThrowawayDatabase]:
    created = ThrowawayDatabase.create(postgres_server_url)
    engine = make_engine(created.url)
    migrate.upgrade(engine)
    engine.dispose()
    yield created
    created.drop()


def test_a_real_worker_posts_to_the_slack_web_api(
    database: ThrowawayDatabase, redis_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database.url)
    sessions = make_session_factory(engine)
    with FakeSlack() as slack:
        rig = CeleryRig.create(
            database_url=database.url,
            redis_url=redis_url,
            tmp=tmp_path,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            K8SMON_SLACK_API_URL=slack.api_url,
            # This test starts its one scan itself (rescan); a push's own scan would make two.
            K8SMON_SCAN_ON_PUSH="false",
        )
        with running(rig):
            with unit_of_work(sessions) as session:
                make_cluster(session, "bot-1", team="payments", channel="#payments-sec")
                snapshot_id = stage_snapshot(
                    session, "bot-1", envelope=full_envelope([privileged("api", namespace="pay")])
                ).snapshot_id
            rig.start_worker()
            client = rig.client()
            # Applied before the rescan is sent: the two go to different queues (snapshots,
            # default), so their order is not the order they were sent in.
            client.send_task("k8smon.process_snapshot", args=[snapshot_id]).get(timeout=90)
            client.send_task("k8smon.rescan", args=["bot-1"])
            try:
                wait_for(
                    lambda: slack.posts("chat.postMessage"),
                    timeout=90,
                    what="chat.postMessage from the worker",
                )
            except AssertionError:
                raise AssertionError(rig.logs()) from None
            [post, *_] = slack.posts("chat.postMessage")
            assert post.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
            assert post.body["channel"] == "#payments-sec"
            assert any(
                "KM-101" in block["text"]["text"]
                for block in post.body["blocks"]
                if block["type"] == "section"
            )

            def sent() -> bool:
                with unit_of_work(sessions) as session:
                    states = session.scalars(
                        select(Delivery.state).where(Delivery.cluster_id == "bot-1")
                    ).all()
                return bool(states) and set(states) == {"sent"}

            wait_for(sent, timeout=30, what="the delivery to be marked sent")
    engine.dispose()
