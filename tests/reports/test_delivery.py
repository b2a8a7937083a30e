"""Report delivery against a local HTTP receiver: Slack Block Kit, signed webhooks, retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from reports.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from store.models import Delivery, ScanRun
from store.types import utcnow
from tests.workers.conftest import Pipeline
from tests.workers.workloads import fixed, privileged
from workers.services.delivery import deliver_due

SECRET = "webhook-secret-for-tests"
LOOPBACK = ("127.0.0.1/32",)  # the receiver is local: allowed explicitly, as an operator would


@dataclass
class Receiver:
    url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append((self.path, dict(self.headers), body))
            self.send_response(state.status)
            self.end_headers()
            self.wfile.write(b"ok" if state.status == 200 else b"nope")

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def test_slack_message_lists_new_then_resolved_findings(
    make_pipeline: Callable[..., Pipeline], receiver: Receiver
) -> None:
    pipeline: Pipeline = make_pipeline(
        public_url="https://monitor.example", webhook_allowed_networks=LOOPBACK
    )
    bad = privileged("payments", namespace="shop")
    pipeline.push_and_process(
        "slacky", [bad], team="shop-team", channel=f"slack+{receiver.url}/hooks/T1"
    )
    pipeline.run.run("k8smon.rescan", "slacky")

    path, headers, body = receiver.requests[-1]
    assert path == "/hooks/T1" and headers["Content-Type"].startswith("application/json")
    message = json.loads(body)
    blocks = message["blocks"]
    assert blocks[0]["type"] == "header" and "slacky" in blocks[0]["text"]["text"]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert any(
        "New" in s
        and "KM-101" in s
        and "Deployment shop/payments" in s
        and "securityContext.privileged" in s
        for s in sections
    )
    context = next(b for b in blocks if b["type"] == "context")
    assert "https://monitor.example/admin/clusters/slacky" in context["elements"][0]["text"]
    assert "slacky" in message["text"]

    sent = len(receiver.requests)
    pipeline.run.run("k8smon.rescan", "slacky")
    assert len(receiver.requests) == sent, "a scan with no news sends nothing"

    pipeline.push_and_process("slacky", [fixed(bad)])
    pipeline.run.run("k8smon.rescan", "slacky")
    second = json.loads(receiver.requests[-1][2])
    texts = [b["text"]["text"] for b in second["blocks"] if b["type"] == "section"]
    assert any(t.startswith("*Resolved") and "KM-101" in t for t in texts)
    assert not any(t.startswith("*New") for t in texts)


def test_webhook_is_signed_and_carries_each_violation(
    make_pipeline: Callable[..., Pipeline], receiver: Receiver
) -> None:
    pipeline: Pipeline = make_pipeline(webhook_secret=SECRET, webhook_allowed_networks=LOOPBACK)
    pipeline.push_and_process(
        "hooked", [privileged("api", namespace="core")], channel=f"{receiver.url}/k8s"
    )
    pipeline.run.run("k8smon.rescan", "hooked")

    _path, headers, body = receiver.requests[-1]
    assert verify(
        body,
        secret=SECRET,
        timestamp=headers[TIMESTAMP_HEADER],
        signature=headers[SIGNATURE_HEADER],
    )
    assert not verify(
        body + b" ",
        secret=SECRET,
        timestamp=headers[TIMESTAMP_HEADER],
        signature=headers[SIGNATURE_HEADER],
    )
    data = json.loads(body)
    assert data["event"] == "k8smon.scan.report" and data["cluster"]["id"] == "hooked"
    rule = next(r for r in data["new"] if r["rule_id"] == "KM-101")
    assert rule["cis"] == ["5.2.2"]
    violation = rule["violations"][0]
    assert (
        violation["kind"],
        violation["namespace"],
        violation["name"],
        violation["container"],
    ) == ("Deployment", "core", "api", "main")
    assert violation["path"].endswith("securityContext.privileged")


def test_a_failed_delivery_is_retried_and_never_blocks_the_scan(
    make_pipeline: Callable[..., Pipeline], receiver: Receiver
) -> None:
    pipeline: Pipeline = make_pipeline(webhook_allowed_networks=LOOPBACK)
    receiver.status = 500
    pipeline.push_and_process("flaky", [privileged("x")], channel=f"{receiver.url}/down")
    pipeline.run.run("k8smon.rescan", "flaky")

    run = pipeline.session.scalars(select(ScanRun).where(ScanRun.cluster_id == "flaky")).one()
    assert run.state == "done"
    delivery = pipeline.session.scalars(
        select(Delivery).where(Delivery.cluster_id == "flaky")
    ).one()
    assert delivery.state == "pending" and delivery.attempts == 1
    assert "500" in (delivery.last_error or "") and delivery.next_attempt_at > utcnow()

    receiver.status = 200
    result = deliver_due(
        pipeline.ctx.sessions, settings=pipeline.ctx.settings, now=utcnow() + timedelta(minutes=5)
    )
    pipeline.session.refresh(delivery)
    assert result["sent"] == 1 and delivery.state == "sent" and delivery.attempts == 2
    assert len(receiver.requests) == 2
