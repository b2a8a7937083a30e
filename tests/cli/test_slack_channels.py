"""`--channel '#team'` end to end: registered with the CLI against a live server, delivered by a
real in-process scan through the Slack Web API (a fake Slack on 127.0.0.1), and channels that
no configured method can reach refused at registration with the reason."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from settings import Settings
from store.models import Cluster, Delivery
from tests.cli.conftest import Operator
from tests.fakes.slack import BOT_TOKEN, FakeSlack
from tests.support.manifests import deployment
from tests.web.fleet import privileged, push


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def test_settings(test_settings: Settings, fake_slack: FakeSlack) -> Settings:
    """The operator's server, configured with a bot token and the fake Slack's API URL."""
    return test_settings.replace(slack_bot_token=BOT_TOKEN, slack_api_url=fake_slack.api_url)


def _register(operator: Operator, key: Path, name: str, channel: str) -> object:
    return operator.run(
        "clusters", "register", name, "--public-key", str(key), "--channel", channel
    )


def test_hash_channel_is_delivered_with_chat_post_message(
    operator: Operator, agent_public_key: Callable[[str], Path], fake_slack: FakeSlack
) -> None:
    result = _register(operator, agent_public_key("edge"), "edge-1", "#edge-sec")
    assert result.exit_code == 0, result.output
    before = len(fake_slack.posts("chat.postMessage"))
    with operator.fleet.sessions() as session:
        push(session, "edge-1", [privileged(deployment("payments", namespace="shop"))])
        session.commit()
    operator.fleet.scan("edge-1")

    posts = fake_slack.posts("chat.postMessage")[before:]
    [post] = [p for p in posts if p.body.get("channel") == "#edge-sec"]
    assert post.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    assert "edge-1" in post.body["text"]
    sections = [b["text"]["text"] for b in post.body["blocks"] if b["type"] == "section"]
    assert any("KM-101" in s and "Deployment shop/payments" in s for s in sections)
    with operator.fleet.sessions() as session:
        delivery = session.scalars(select(Delivery).where(Delivery.cluster_id == "edge-1")).one()
        assert (delivery.state, delivery.channel) == ("sent", "#edge-sec")


def test_the_seeded_team_channel_gets_its_report_too(
    fake_slack: FakeSlack, operator: Operator
) -> None:
    """build_fleet scanned prod-eu (channel #payments-sec) through the same path."""
    channels = [p.body["channel"] for p in fake_slack.posts("chat.postMessage")]
    assert "#payments-sec" in channels


def test_unreachable_channels_are_refused_at_registration(
    operator: Operator, agent_public_key: Callable[[str], Path]
) -> None:
    key = agent_public_key("nowhere")
    cases = {
        "payments-sec": "is not a Slack channel (#name)",
        "#Payments Sec": "is not a Slack channel name",
        "ftp://files.example/report": "is not a Slack channel (#name)",
        "http://127.0.0.1:8080/hook": "127.0.0.1, a loopback address",
        "http://169.254.169.254/latest/meta-data": "a cloud metadata address",
        "https://hooks.slack.com@10.0.0.5/services/x": "credentials in the URL",
        "http://10.1.2.3/hook": "a private address",
        "slack+http://[::1]:9/hook": "a loopback address",
    }
    for channel, reason in cases.items():
        result = _register(operator, key, "nowhere-1", channel)
        assert result.exit_code != 0, channel
        assert "422" in result.output or "Unreachable channel" in result.output, result.output
        assert reason in result.output, (channel, result.output)

    # Without a bot token, a #channel has no way to be reached.
    context = operator.fleet.app.extensions["k8smon.ingest"]
    context.settings = context.settings.replace(slack_bot_token=None)
    refused = _register(operator, key, "nowhere-1", "#payments-sec")
    assert refused.exit_code != 0
    assert "SLACK_BOT_TOKEN is not configured" in refused.output
    update = operator.run("clusters", "update", "prod-eu", "--channel", "#other")
    assert update.exit_code != 0 and "SLACK_BOT_TOKEN" in update.output
    with operator.fleet.sessions() as session:
        assert session.get(Cluster, "nowhere-1") is None
        assert session.get(Cluster, "prod-eu").channel == "#payments-sec"

    # An operator allow-list admits a private receiver explicitly.
    context.settings = context.settings.replace(webhook_allowed_networks=("10.0.0.0/8",))
    allowed = _register(operator, key, "nowhere-1", "http://10.1.2.3/hook")
    assert allowed.exit_code == 0, allowed.output
