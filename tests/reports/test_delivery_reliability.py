"""Deliveries on PostgreSQL and SQLite against a real HTTP receiver: one idempotency key per
delivery, the content bound to its scan, one commit per acknowledgement, capped backoff, the
dead letter and an admin's re-send."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from reports.channels import Outbound
from reports.destinations import system_resolver
from store.db import unit_of_work
from store.deliveries import CLAIM_LEASE, resend
from store.models import Delivery
from store.types import utcnow
from tests.fakes.receiver import WebhookReceiver, running_receiver
from tests.workers.conftest import Pipeline
from tests.workers.workloads import privileged
from workers.services.delivery import deliver_due

LOOPBACK = ("127.0.0.1/32",)


@pytest.fixture(params=["postgresql", "sqlite"])
def make_any_pipeline(request: pytest.FixtureRequest) -> Callable[..., Pipeline]:
    name = "make_pipeline" if request.param == "postgresql" else "make_sqlite_pipeline"
    build: Callable[..., Pipeline] = request.getfixturevalue(name)
    return build


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running_receiver() as running:
        yield running


def deliveries(pipeline: Pipeline) -> list[Delivery]:
    """Every delivery as committed (read in a session of its own, then detached)."""
    with unit_of_work(pipeline.ctx.sessions) as session:
        rows = list(session.scalars(select(Delivery).order_by(Delivery.id)))
        session.expunge_all()
    return rows


def send_due(pipeline: Pipeline, *, at: datetime, outbound: Outbound | None = None) -> dict:
    return deliver_due(
        pipeline.ctx.sessions, settings=pipeline.ctx.settings, now=at, outbound=outbound
    )


def test_every_attempt_carries_the_same_idempotency_key(
    make_any_pipeline: Callable[..., Pipeline], receiver: WebhookReceiver
) -> None:
    pipeline = make_any_pipeline(webhook_allowed_networks=LOOPBACK)
    receiver.status = 503
    pipeline.push_and_process("keyed", [privileged("api")], channel=f"{receiver.url}/hook")
    pipeline.run.run("k8smon.rescan", "keyed")
    [delivery] = deliveries(pipeline)
    assert delivery.state == "pending" and delivery.attempts == 1

    receiver.status = 200
    assert send_due(pipeline, at=utcnow() + timedelta(minutes=5))["sent"] == 1
    first, second = receiver.requests
    assert first.key == second.key == delivery.idempotency_key
    assert len(delivery.idempotency_key) == 32
    assert first.json()["delivery_id"] == second.json()["delivery_id"] == delivery.idempotency_key
    [after] = deliveries(pipeline)
    assert after.state == "sent" and after.attempts == 2
    # Nothing is due any more: a later run sends nothing.
    assert send_due(pipeline, at=utcnow() + timedelta(days=2)) == {
        "sent": 0,
        "failed": 0,
        "dead_lettered": 0,
    }
    assert len(receiver.requests) == 2


def test_a_message_sent_after_the_next_scan_still_describes_its_own_scan(
    make_any_pipeline: Callable[..., Pipeline], receiver: WebhookReceiver
) -> None:
    """The race an operator saw: a delivery retried after a second scan ("0 new") said
    "0 new" too. Its content is bound when its scan finishes."""
    pipeline = make_any_pipeline(webhook_allowed_networks=LOOPBACK)
    receiver.status = 503
    pipeline.push_and_process("racy", [privileged("api")], channel=f"slack+{receiver.url}/s")
    first = pipeline.run.run("k8smon.rescan", "racy")
    second = pipeline.run.run("k8smon.rescan", "racy")  # nothing changed: no news, no message
    assert first["counts"]["new"] >= 1 and second["counts"]["new"] == 0
    [delivery] = deliveries(pipeline)
    assert delivery.scan_run_id == first["scan_id"]

    receiver.status = 200
    assert send_due(pipeline, at=utcnow() + timedelta(minutes=5))["sent"] == 1
    message = receiver.requests[-1].json()
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert sections[0].startswith(f"*Scan #{first['scan_id']}*")
    assert f"{first['counts']['new']} new" in sections[0]
    assert any(s.startswith("*New") and "KM-101" in s for s in sections)


class WorkerKilled(BaseException):
    """Stands for SIGKILL in the middle of a batch: nothing after it runs."""


def test_acknowledged_reports_are_never_sent_again_after_a_crash_mid_batch(
    make_any_pipeline: Callable[..., Pipeline], receiver: WebhookReceiver
) -> None:
    pipeline = make_any_pipeline(webhook_allowed_networks=LOOPBACK)
    receiver.status = 503
    for name in ("b1", "b2", "b3"):
        pipeline.push_and_process(name, [privileged("api")], channel=f"{receiver.url}/{name}")
        pipeline.run.run("k8smon.rescan", name)
    assert [d.state for d in deliveries(pipeline)] == ["pending"] * 3
    receiver.requests.clear()
    receiver.status = 200

    calls = 0

    def dies_at_the_third_connection(host: str, port: int) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise WorkerKilled
        return system_resolver(host, port)

    at = utcnow() + timedelta(minutes=5)
    with pytest.raises(WorkerKilled):
        send_due(pipeline, at=at, outbound=Outbound(resolver=dies_at_the_third_connection))
    acknowledged = list(receiver.answered)
    assert len(acknowledged) == 2
    states = [d.state for d in deliveries(pipeline)]
    assert states == ["sent", "sent", "pending"], "each acknowledgement is committed at once"

    # The one in flight is leased to the dead worker for a while, then sent by the next run.
    assert send_due(pipeline, at=at + CLAIM_LEASE / 2)["sent"] == 0
    assert send_due(pipeline, at=at + CLAIM_LEASE)["sent"] == 1
    seen = receiver.times_seen()
    assert all(seen[key] == 1 for key in acknowledged), "an acknowledged report was re-sent"
    assert sorted(seen) == sorted(d.idempotency_key for d in deliveries(pipeline))
    assert [d.state for d in deliveries(pipeline)] == ["sent"] * 3


def test_a_receiver_down_is_retried_with_capped_backoff_then_dead_lettered_and_resent(
    make_any_pipeline: Callable[..., Pipeline],
    receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline = make_any_pipeline(
        webhook_allowed_networks=LOOPBACK,
        delivery_backoff_seconds=60,
        delivery_backoff_cap_seconds=240,
        delivery_retry_hours=0.5,
    )
    receiver.stop()  # down: connections refused
    pipeline.push_and_process("down", [privileged("api")], channel=f"{receiver.url}/hook")
    pipeline.run.run("k8smon.rescan", "down")
    [delivery] = deliveries(pipeline)
    window_end = delivery.created_at + timedelta(hours=0.5)

    waits = []
    at = delivery.last_attempt_at
    assert at is not None
    with caplog.at_level(logging.WARNING, logger="k8smon.workers"):
        while delivery.state == "pending":
            assert delivery.next_attempt_at is not None
            waits.append(round((delivery.next_attempt_at - at).total_seconds()))
            at = delivery.next_attempt_at
            send_due(pipeline, at=at)
            [delivery] = deliveries(pipeline)
    assert waits[:5] == [60, 120, 240, 240, 240]
    assert delivery.state == "dead" and delivery.dead_at is not None
    assert delivery.dead_at >= window_end, "retried for the whole window"
    assert delivery.attempts == len(waits) + 1
    assert "refused" in (delivery.last_error or "").lower()
    [dead_log] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "dead-lettered" in dead_log.getMessage()
    assert "127.0.0.1/…" in dead_log.getMessage() and "/hook" not in dead_log.getMessage()
    assert send_due(pipeline, at=at + timedelta(days=1))["sent"] == 0, "a dead letter waits"

    receiver.start()  # back, on the same port
    with unit_of_work(pipeline.ctx.sessions) as session:
        assert resend(session, delivery.id).state == "pending"
    assert send_due(pipeline, at=utcnow())["sent"] == 1
    [sent] = deliveries(pipeline)
    assert sent.state == "sent" and sent.dead_at is None
    assert [r.key for r in receiver.requests] == [delivery.idempotency_key]
    assert json.loads(receiver.requests[0].body)["cluster"]["id"] == "down"
