"""Webhook destinations (issue 13 point 5): private, loopback, link-local and metadata
addresses refused by default at registration and again at connect time, the checked address is
the one connected to (DNS rebinding), redirects are never followed, and production never sends a
generic webhook unsigned."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from reports.channels import ChannelError, DeliveryError, Outbound, check_channel, deliver
from reports.destinations import DestinationError, check_destination, post_json
from reports.model import ClusterReport
from settings import Settings
from store.models import Delivery
from tests.workers.conftest import Pipeline
from tests.workers.workloads import privileged

LOOPBACK = ("127.0.0.1/32",)


class Receiver:
    """A local HTTP receiver; `redirect_to` makes it answer 302 with that Location."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.redirect_to: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((self.path, dict(self.headers), body))
                if receiver.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect_to)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    started: list[Receiver] = []

    def start() -> Receiver:
        started.append(Receiver())
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


def _resolver(*addresses: str) -> Callable[[str, int], list[str]]:
    return lambda _host, _port: list(addresses)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("169.254.10.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("10.0.0.7", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("100.64.0.1", "not a public address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str, reason: str) -> None:
    with pytest.raises(DestinationError, match=reason):
        check_destination("https://hooks.example.com/x", resolver=_resolver(address))


def test_one_bad_address_among_good_ones_is_refused() -> None:
    """A name resolving to a public and a private address could be steered to either."""
    with pytest.raises(DestinationError, match=re.escape("10.0.0.7, a private address")):
        check_destination(
            "https://hooks.example.com/x", resolver=_resolver("93.184.215.14", "10.0.0.7")
        )
    checked = check_destination(
        "https://hooks.example.com:8443/x?y=1", resolver=_resolver("93.184.215.14")
    )
    assert (checked.address, checked.port, checked.target) == ("93.184.215.14", 8443, "/x?y=1")


def test_the_allow_list_admits_only_its_networks() -> None:
    assert check_destination(
        "http://hook.internal/x", allowed=("10.0.0.0/8",), resolver=_resolver("10.0.0.7")
    )
    with pytest.raises(DestinationError, match=re.escape("192.168.1.1")):
        check_destination(
            "http://hook.internal/x", allowed=("10.0.0.0/8",), resolver=_resolver("192.168.1.1")
        )


def test_post_connects_to_the_checked_address_once_resolved(
    receivers: Callable[[], Receiver],
) -> None:
    """DNS rebinding: the name is resolved once, checked, and that address is connected to;
    the name itself never reaches a second resolver (it does not exist in DNS at all)."""
    receiver = receivers()
    calls: list[str] = []

    def rebinding(host: str, _port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["10.9.9.9"]

    answer = post_json(
        f"http://rebind.k8smon.invalid:{receiver.port}/hook",
        b"{}",
        headers={"Content-Type": "application/json"},
        allowed=LOOPBACK,
        resolver=rebinding,
    )
    assert answer.status == 200 and calls == ["rebind.k8smon.invalid"]
    [(path, headers, _body)] = receiver.requests
    assert path == "/hook" and headers["Host"] == f"rebind.k8smon.invalid:{receiver.port}"

    # Without the allow-list the same loopback answer is refused before connecting.
    with pytest.raises(DestinationError, match="loopback"):
        post_json(
            f"http://rebind.k8smon.invalid:{receiver.port}/hook",
            b"{}",
            headers={},
            resolver=_resolver("127.0.0.1"),
        )
    assert len(receiver.requests) == 1


def _report(pipeline: Pipeline, cluster_id: str) -> ClusterReport:
    from reports.build import build_cluster_report  # noqa: PLC0415 - test helper

    return build_cluster_report(pipeline.session, cluster_id, public_url="https://m.example")


def test_delivery_refuses_loopback_without_the_allow_list(
    make_pipeline: Callable[..., Pipeline], receivers: Callable[[], Receiver]
) -> None:
    receiver = receivers()
    pipeline: Pipeline = make_pipeline()
    pipeline.push_and_process("ssrf", [privileged("x")], channel=f"{receiver.url}/hook")
    pipeline.run.run("k8smon.rescan", "ssrf")
    delivery = pipeline.session.scalars(select(Delivery).where(Delivery.cluster_id == "ssrf")).one()
    assert delivery.state == "pending" and "127.0.0.1, a loopback address" in (
        delivery.last_error or ""
    )
    assert receiver.requests == []


def test_redirects_are_never_followed(
    make_pipeline: Callable[..., Pipeline], receivers: Callable[[], Receiver]
) -> None:
    first, second = receivers(), receivers()
    first.redirect_to = f"{second.url}/elsewhere"
    pipeline: Pipeline = make_pipeline(webhook_allowed_networks=LOOPBACK)
    for channel in (f"{first.url}/hook", f"slack+{first.url}/hook"):
        pipeline.push_and_process("redirected", [privileged("x")])
        with pytest.raises(DeliveryError, match="302: redirects are not followed"):
            deliver(
                channel,
                _report(pipeline, "redirected"),
                key="redirected-1",
                settings=pipeline.ctx.settings,
            )
    assert len(first.requests) == 2 and second.requests == []


def test_production_never_sends_a_webhook_unsigned(
    test_settings: Settings,
    receivers: Callable[[], Receiver],
    make_pipeline: Callable[..., Pipeline],
) -> None:
    receiver = receivers()
    production = test_settings.replace(environment="production", webhook_allowed_networks=LOOPBACK)
    with pytest.raises(ChannelError, match="always signed in production"):
        check_channel(f"{receiver.url}/hook", settings=production)
    pipeline: Pipeline = make_pipeline()
    pipeline.push_and_process("unsigned", [privileged("x")])
    report = _report(pipeline, "unsigned")
    with pytest.raises(DeliveryError, match="not sent unsigned"):
        deliver(f"{receiver.url}/hook", report, key="unsigned-1", settings=production)
    assert receiver.requests == []

    # Slack webhooks carry no HMAC (Slack's URL is the secret): they are not affected.
    assert check_channel(f"slack+{receiver.url}/x", settings=production) == "slack-webhook"
    # The explicit relaxation for plain test installs, and a secret, both make it deliverable.
    for relaxed in (
        production.replace(webhook_allow_unsigned=True),
        production.replace(webhook_secret="s3cret"),
    ):
        assert check_channel(f"{receiver.url}/hook", settings=relaxed) == "webhook"
        deliver(
            f"{receiver.url}/hook", report, key="relaxed-1", settings=relaxed, outbound=Outbound()
        )
    signed = [h for _p, h, _b in receiver.requests if "X-K8sMon-Signature" in h]
    assert len(receiver.requests) == 2 and len(signed) == 1
    assert json.loads(receiver.requests[0][2])["event"] == "k8smon.scan.report"
