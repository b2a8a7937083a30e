"""Chat-ops hardening: agent-supplied text is data in every reply (issue 13 point 4), a signed
request is accepted once (point 6, in-process and through Redis shared by two web workers),
replies go only to Slack's hosts, and a new command is one entry of the command table."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts.tasks import CHATOPS_COMMAND
from ingest.app import create_app
from reports import chatops
from reports.build import build_cluster_report
from reports.slack import build_message
from settings import Settings
from store.models import AuditEntry
from store.telemetry import record_telemetry
from tests.chatops.test_slack import NOW, SLACK_SECRET, Receiver, RecordingDispatcher
from tests.support.factories import make_cluster
from tests.support.manifests import deployment
from tests.web.fleet import Fleet, build_fleet, privileged, push

EVIL_NAME = "<https://evil.example|Open the report>"
MENTIONS = ("<!channel>", "<!here>", "<!everyone>", "<https://evil.example|")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def chat_settings(test_settings: Settings) -> Settings:
    return test_settings.replace(
        slack_signing_secret=SLACK_SECRET,
        slack_allowed_users=("UOPS",),
        public_url="https://k8smon.example",
        slack_response_hosts=("hooks.slack.com", "127.0.0.1"),
    )


@pytest.fixture
def chat(db_session: Session, chat_settings: Settings) -> tuple[Fleet, RecordingDispatcher]:
    fleet = build_fleet(db_session, chat_settings, clock=lambda: float(NOW))
    dispatcher = RecordingDispatcher(fleet.dispatcher)
    fleet.app.extensions["k8smon.ingest"].dispatch = dispatcher
    return fleet, dispatcher


def _signed(client: FlaskClient, body: str) -> Any:
    digest = hmac.new(SLACK_SECRET.encode(), f"v0:{NOW}:{body}".encode(), hashlib.sha256)
    return client.post(
        "/chatops/slack",
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(NOW),
            "X-Slack-Signature": f"v0={digest.hexdigest()}",
        },
    )


def _command(text: str, response_url: str, *, nonce: str = "") -> str:
    fields = {"text": text, "user_id": "UOPS", "user_name": "ops", "response_url": response_url}
    if nonce:
        fields["trigger_id"] = nonce
    return urlencode(fields)


def _seed_evil(fleet: Fleet) -> None:
    """A cluster whose agent-supplied strings try to ping everyone and plant a link."""
    with fleet.sessions() as session:
        make_cluster(session, "evil", display_name="<!channel> ops", team="<!here>")
        bad = privileged(deployment("web", namespace="shop"))
        bad["metadata"]["name"] = EVIL_NAME
        bad["metadata"]["namespace"] = "<!everyone>"
        push(session, "evil", [bad])
        record_telemetry(
            session,
            "evil",
            payload={"agent_version": "<!channel>", "kubernetes_version": EVIL_NAME},
        )
        session.commit()
    fleet.scan("evil")


def _assert_inert(text: str) -> None:
    for mention in MENTIONS:
        assert mention not in text, (mention, text)


def test_agent_supplied_strings_are_escaped_in_chatops_replies(
    chat: tuple[Fleet, RecordingDispatcher], receiver: Receiver
) -> None:
    fleet, _dispatcher = chat
    _seed_evil(fleet)
    client = fleet.app.test_client()
    for text in ("status evil", "findings evil", "rescan evil"):
        assert _signed(client, _command(text, receiver.url)).status_code == 200
    assert len(receiver.received) == 3
    status, findings, rescan = (posted["text"] for posted in receiver.received)
    for text in (status, findings, rescan):
        _assert_inert(text)
        assert text.count("<https://k8smon.example/chatops/reports/") == 1  # our link only
    assert "*&lt;!channel&gt; ops*" in status and "team &lt;!here&gt;" in status
    assert "Agent &lt;!channel&gt;" in status
    assert "&lt;!everyone&gt;/&lt;https://evil.example|Open the report&gt;" in findings

    # The user's own words are echoed as data too.
    unknown = _signed(client, _command("<!channel> x", receiver.url)).get_json()["text"]
    assert "Unknown command `&lt;!channel&gt;`" in unknown
    missing = _signed(client, _command("status <!here>", receiver.url)).get_json()["text"]
    assert "No cluster named `&lt;!here&gt;`" in missing
    _assert_inert(unknown + missing)


def test_agent_supplied_strings_are_escaped_in_scheduled_messages(
    chat: tuple[Fleet, RecordingDispatcher],
) -> None:
    fleet, _dispatcher = chat
    _seed_evil(fleet)
    with fleet.sessions() as session:
        report = build_cluster_report(session, "evil", public_url="https://k8smon.example")
    message = build_message(report)
    texts = [message.text]
    for block in message.blocks:
        texts.append((block.get("text") or {}).get("text", ""))
        texts.extend(e.get("text", "") for e in block.get("elements") or [])
    assert any("&lt;https://evil.example|Open the report&gt;" in t for t in texts)
    for text in texts:
        if text:
            _assert_inert(text)


def test_a_signed_request_is_accepted_once(
    chat: tuple[Fleet, RecordingDispatcher], receiver: Receiver
) -> None:
    fleet, dispatcher = chat
    client = fleet.app.test_client()
    body = _command("rescan prod-eu", receiver.url)
    first = _signed(client, body)
    assert first.status_code == 200 and "Rescan of `prod-eu`" in first.get_json()["text"]
    again = _signed(client, body)
    assert again.status_code == 409
    assert again.get_json()["reason"] == "replayed_slack_request"
    assert dispatcher.sent == ["k8smon.rescan", CHATOPS_COMMAND]  # one rescan, not two
    with fleet.sessions() as session:
        audits = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "scan.trigger", AuditEntry.source == "chatops")
        )
    assert audits == 1 and len(receiver.received) == 1
    # A different request (another trigger id) in the same second is fine.
    other = _signed(client, _command("rescan prod-eu", receiver.url, nonce="t2"))
    assert other.status_code == 200


def test_replays_are_refused_across_web_workers_through_redis(
    chat: tuple[Fleet, RecordingDispatcher],
    chat_settings: Settings,
    receiver: Receiver,
    redis_url: str,
    redis_key_prefix: str,
) -> None:
    fleet, dispatcher = chat
    client = redis.Redis.from_url(redis_url)
    try:
        workers = [
            create_app(
                replace(chat_settings, redis_url=redis_url),
                store=fleet.sessions,
                dispatch=dispatcher,
                clock=lambda: float(NOW),
                redis_client=client,
                redis_prefix=redis_key_prefix,
            )
            for _ in range(2)
        ]
        body = _command("status prod-eu", receiver.url)
        assert _signed(workers[0].test_client(), body).status_code == 200
        replayed = _signed(workers[1].test_client(), body)
        assert replayed.status_code == 409
        assert replayed.get_json()["reason"] == "replayed_slack_request"
        assert client.keys(f"{redis_key_prefix}*")
    finally:
        client.close()


@pytest.mark.parametrize(
    "response_url",
    [
        "https://evil.example/commands/T1/1/x",
        "http://hooks.slack.com/commands/T1/1/x",
        "https://hooks.slack.com.evil.example/commands/T1/1/x",
        "https://user:pw@hooks.slack.com/commands/T1/1/x",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_replies_go_only_to_slack_hosts(
    chat: tuple[Fleet, RecordingDispatcher], response_url: str
) -> None:
    fleet, dispatcher = chat
    answer = _signed(fleet.app.test_client(), _command("status prod-eu", response_url))
    assert answer.status_code == 400
    assert answer.get_json()["reason"] == "bad_response_url"
    assert dispatcher.sent == []


def test_the_worker_posts_only_to_slack_hosts(
    chat: tuple[Fleet, RecordingDispatcher], receiver: Receiver
) -> None:
    fleet, _dispatcher = chat
    request = {
        "command": "status",
        "args": ["prod-eu"],
        "user_id": "U",
        "response_url": receiver.url,
    }
    with pytest.raises(chatops.ResponseUrlError, match="not on Slack's hosts"):
        chatops.run_chatops_command(
            fleet.sessions,
            request=request,
            secret_key="k" * 40,
            public_url="https://k8smon.example",
            response_hosts=("hooks.slack.com",),
        )
    assert receiver.received == []


def test_a_new_command_is_one_table_entry(
    chat: tuple[Fleet, RecordingDispatcher],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet, dispatcher = chat

    def owner(session: Session, command: chatops.ChatCommand, _c: chatops.ReplyContext) -> str:
        cluster = session.get(chatops.Cluster, command.args[0])
        return f"{command.args[0]} belongs to {chatops.escape(cluster.team or '?')}"

    table = {
        **chatops.COMMANDS,
        "owner": chatops.CommandSpec(
            name="owner", usage="<cluster>", help="who owns it", reply=owner, ack="Asking about"
        ),
        "version": chatops.CommandSpec(
            name="version",
            usage="",
            help="the server version",
            reply=lambda *_args: "k8s-monitor, the one under test",
            needs_cluster=False,
            queued=False,
        ),
    }
    monkeypatch.setattr(chatops, "COMMANDS", table)
    client = fleet.app.test_client()
    helped = _signed(client, _command("help", receiver.url)).get_json()["text"]
    assert "`/k8smon owner <cluster>`: who owns it" in helped
    assert "`/k8smon version`: the server version" in helped
    now = _signed(client, _command("version", receiver.url)).get_json()["text"]
    assert now == "k8s-monitor, the one under test"
    ack = _signed(client, _command("owner prod-eu", receiver.url)).get_json()["text"]
    assert ack == "Asking about `prod-eu`… the answer follows here."
    assert dispatcher.sent == [CHATOPS_COMMAND]
    assert receiver.received[-1]["text"] == "prod-eu belongs to payments"
    missing = _signed(client, _command("owner", receiver.url)).get_json()["text"]
    assert "needs a cluster" in missing
