"""Slack slash commands end to end: Slack's documented signature example, the allow-list,
immediate replies, queued work posted to a local HTTP receiver standing in for response_url,
and signed expiring report links."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts.tasks import CHATOPS_COMMAND
from reports.links import LinkError, cluster_of_token, report_token
from settings import Settings
from store.models import AuditEntry, ScanRun
from tests.web.fleet import Fleet, build_fleet

# Slack's documented example ("Verifying requests from Slack").
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = "1531420618"
SLACK_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    "channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    "command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    "%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    "trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
NOW = int(SLACK_TIMESTAMP) + 30


class Receiver:
    """A local HTTP server standing in for Slack's response_url; records every POST."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                return

        self.received = received
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/commands/T1/42/abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


class RecordingDispatcher:
    """The workers' in-process dispatcher (which runs `k8smon.chatops_command` as the worker
    does), recording which tasks were sent."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[str] = []

    def __call__(
        self, task_name: str, *, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
    ) -> None:
        self.sent.append(task_name)
        self.inner(task_name, args=args, kwargs=kwargs)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def chat(db_session: Session, test_settings: Settings) -> tuple[Fleet, RecordingDispatcher]:
    settings = test_settings.replace(
        slack_signing_secret=SLACK_SECRET,
        slack_allowed_users=("U2CERLKJA", "UOPS"),
        public_url="https://k8smon.example",
        slack_response_hosts=("hooks.slack.com", "127.0.0.1"),  # the local receiver
    )
    fleet = build_fleet(db_session, settings, clock=lambda: float(NOW))
    dispatcher = RecordingDispatcher(fleet.dispatcher)
    fleet.app.extensions["k8smon.ingest"].dispatch = dispatcher
    return fleet, dispatcher


def _signed(
    client: FlaskClient, body: str, *, timestamp: str = str(NOW), signature: str | None = None
) -> Any:
    if signature is None:
        digest = hmac.new(
            SLACK_SECRET.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256
        ).hexdigest()
        signature = f"v0={digest}"
    return client.post(
        "/chatops/slack",
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature,
        },
    )


def _command(text: str, response_url: str, *, user: str = "UOPS") -> str:
    return urlencode(
        {
            "command": "/k8smon",
            "text": text,
            "user_id": user,
            "user_name": "ops",
            "response_url": response_url,
        }
    )


def test_slack_documented_example_is_accepted(chat: tuple[Fleet, RecordingDispatcher]) -> None:
    fleet, dispatcher = chat
    client = fleet.app.test_client()
    answer = _signed(client, SLACK_BODY, timestamp=SLACK_TIMESTAMP, signature=SLACK_SIGNATURE)
    assert answer.status_code == 200
    reply = answer.get_json()
    assert reply["response_type"] == "ephemeral"
    assert "/k8smon status <cluster>" in reply["text"]  # empty text: help
    assert dispatcher.sent == []


def test_altered_unsigned_or_stale_requests_are_refused(
    chat: tuple[Fleet, RecordingDispatcher],
) -> None:
    fleet, dispatcher = chat
    client = fleet.app.test_client()
    altered = SLACK_BODY.replace("text=", "text=rescan+prod-eu")
    assert (
        _signed(client, altered, timestamp=SLACK_TIMESTAMP, signature=SLACK_SIGNATURE).status_code
        == 401
    )
    assert client.post("/chatops/slack", data=SLACK_BODY).status_code == 401
    assert _signed(client, SLACK_BODY, timestamp="not-a-number").status_code == 401
    stale = str(NOW - 301)
    answer = _signed(client, SLACK_BODY, timestamp=stale)
    assert answer.status_code == 401
    assert answer.get_json()["reason"] == "bad_slack_signature"
    assert dispatcher.sent == []


def test_users_off_the_allow_list_are_turned_away(
    chat: tuple[Fleet, RecordingDispatcher], receiver: Receiver
) -> None:
    fleet, dispatcher = chat
    answer = _signed(
        fleet.app.test_client(), _command("rescan prod-eu", receiver.url, user="UEVIL")
    )
    assert "not on the k8s-monitor allow-list" in answer.get_json()["text"]
    assert dispatcher.sent == [] and receiver.received == []


def test_unknown_commands_and_clusters_get_a_helpful_reply(
    chat: tuple[Fleet, RecordingDispatcher], receiver: Receiver
) -> None:
    fleet, dispatcher = chat
    client = fleet.app.test_client()
    unknown = _signed(client, _command("deploy prod-eu", receiver.url)).get_json()["text"]
    assert "Unknown command `deploy`" in unknown and "/k8smon rescan <cluster>" in unknown
    cluster = _signed(client, _command("status prod-us", receiver.url)).get_json()["text"]
    assert "No cluster named `prod-us`" in cluster and "`prod-eu`" in cluster
    missing = _signed(client, _command("findings", receiver.url)).get_json()["text"]
    assert "needs a cluster" in missing
    severity = _signed(client, _command("findings prod-eu urgent", receiver.url))
    assert "Unknown severity `urgent`" in severity.get_json()["text"]
    assert dispatcher.sent == [] and receiver.received == []


def test_status_is_acknowledged_then_posted_with_a_signed_report_link(
    chat: tuple[Fleet, RecordingDispatcher], receiver: Receiver
) -> None:
    fleet, dispatcher = chat
    client = fleet.app.test_client()
    ack = _signed(client, _command("status prod-eu", receiver.url))
    assert ack.status_code == 200
    assert ack.get_json() == {
        "response_type": "ephemeral",
        "text": "Fetching the status of `prod-eu`… the answer follows here.",
    }
    assert dispatcher.sent == [CHATOPS_COMMAND]
    [posted] = receiver.received
    assert posted["response_type"] == "ephemeral"
    text = posted["text"]
    assert "*prod-eu*" in text and "Kubernetes v1.31.2" in text and "1 critical" in text
    link = text.split("Report: <")[1].split("|")[0]
    assert link.startswith("https://k8smon.example/chatops/reports/")
    page = client.get(link.removeprefix("https://k8smon.example"))
    assert page.status_code == 200
    assert "KM-101" in page.get_data(as_text=True)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    # Sign-in is not needed, but the link cannot be altered to show another cluster.
    token = link.rsplit("/", 1)[1]
    forged = token.replace(token.split(".")[0], report_token("guess", "staging-us").split(".")[0])
    assert client.get(f"/chatops/reports/{forged}").status_code == 403
    assert client.get(f"/chatops/reports/{token[:-2]}xx").status_code == 403


def test_findings_filtered_by_severity(
    chat: tuple[Fleet, RecordingDispatcher], receiver: Receiver
) -> None:
    fleet, _dispatcher = chat
    _signed(fleet.app.test_client(), _command("findings prod-eu critical", receiver.url))
    [posted] = receiver.received
    lines = [line for line in posted["text"].splitlines() if line.startswith("•")]
    assert lines and all(line.startswith("• [critical]") for line in lines)
    assert any("KM-101 Deployment shop/web" in line for line in lines)


def test_rescan_queues_a_scan_audits_it_and_reports_back(
    chat: tuple[Fleet, RecordingDispatcher], receiver: Receiver
) -> None:
    fleet, dispatcher = chat
    with fleet.sessions() as session:
        before = session.scalar(select(func.count()).select_from(ScanRun))
    ack = _signed(fleet.app.test_client(), _command("rescan prod-eu", receiver.url))
    assert "Rescan of `prod-eu`" in ack.get_json()["text"]
    assert dispatcher.sent == ["k8smon.rescan", CHATOPS_COMMAND]
    with fleet.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ScanRun)) == before + 1
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "scan.trigger"))
        assert entry.actor == "slack:UOPS" and entry.target == "prod-eu"
    [posted] = receiver.received
    assert posted["text"].startswith("Rescan of `prod-eu` queued by <@UOPS>")


def test_chatops_is_off_without_a_signing_secret(
    db_session: Session, test_settings: Settings
) -> None:
    fleet = build_fleet(db_session, test_settings)
    answer = _signed(
        fleet.app.test_client(), SLACK_BODY, timestamp=SLACK_TIMESTAMP, signature=SLACK_SIGNATURE
    )
    assert answer.status_code == 404


def test_report_links_expire() -> None:
    token = report_token("k" * 40, "prod-eu")
    assert cluster_of_token("k" * 40, token) == "prod-eu"
    with pytest.raises(LinkError, match="expired"):
        cluster_of_token("k" * 40, token, now=4_102_444_800.0)  # year 2100
    with pytest.raises(LinkError, match="not valid"):
        cluster_of_token("another secret" * 3, token)


def test_oversized_bodies_and_a_broken_queue_get_clear_answers(
    chat: tuple[Fleet, RecordingDispatcher], receiver: Receiver
) -> None:
    fleet, dispatcher = chat
    client = fleet.app.test_client()
    huge = _command("status prod-eu", receiver.url) + "&pad=" + "x" * 20_000
    assert _signed(client, huge).status_code == 413
    no_url = _signed(client, urlencode({"text": "rescan prod-eu", "user_id": "UOPS"}))
    assert "no response_url" in no_url.get_json()["text"]
    assert dispatcher.sent == []

    def broken(task_name: str, **_kwargs: Any) -> None:
        raise ConnectionError("broker down")

    fleet.app.extensions["k8smon.ingest"].dispatch = broken
    answer = _signed(client, _command("status prod-eu", receiver.url))
    assert answer.status_code == 200
    assert "task queue is unavailable" in answer.get_json()["text"]
    assert receiver.received == []
