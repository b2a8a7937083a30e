"""Delivery channels: the one registry of the ways a report reaches a team.

A cluster's `channel` is a string; exactly one `Channel` in `CHANNELS` claims it. Registration
(admin API, CLI) calls `check_channel`, which refuses a channel that no configured method can
reach; delivery calls `deliver`. A new channel kind is one class added to `CHANNELS`.

| form                                      | channel        | how it is sent                    |
|-------------------------------------------|----------------|-----------------------------------|
| `#payments-sec`                           | Slack bot      | Web API `chat.postMessage`, token |
| `https://hooks.slack.com/services/…`      | Slack webhook  | incoming webhook, Block Kit       |
| `slack+https://…` (`slack+http://…`)       | Slack webhook  | the same, for a proxy or a fake   |
| any other `https://…` (`http://…`)        | webhook        | JSON, HMAC-SHA256 signed          |
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from reports.destinations import (
    DestinationError,
    Resolver,
    check_destination,
    post_json,
    system_resolver,
)
from reports.model import ClusterReport
from reports.slack import build_message
from reports.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    payload,
    sign,
)

SLACK_CHANNEL_NAME = re.compile(r"#[a-z0-9][a-z0-9._-]{0,79}")
SLACK_WEBHOOK_PREFIX = "https://hooks.slack.com/"
FORCED_SLACK_PREFIX = "slack+"
TIMEOUT_S = 10.0


class ChannelError(ValueError):
    """The channel cannot be used; the message is the reason, shown to the operator."""


class DeliveryError(Exception):
    """The receiver did not accept the report (the delivery is retried later)."""


class ChannelSettings(Protocol):
    """The settings channels read (settings.Settings has them all)."""

    @property
    def is_production(self) -> bool: ...
    @property
    def slack_bot_token(self) -> str | None: ...
    @property
    def slack_api_url(self) -> str: ...
    @property
    def webhook_secret(self) -> str | None: ...
    @property
    def webhook_allow_unsigned(self) -> bool: ...
    @property
    def webhook_allowed_networks(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Outbound:
    """How outbound connections are made: the resolver (tests swap it) and a clock."""

    resolver: Resolver = system_resolver
    clock: Callable[[], float] = time.time

    def now(self) -> float:
        return self.clock()


class Channel(Protocol):
    """One way of delivering a report."""

    kind: str

    def claims(self, spec: str) -> bool:
        """True when the channel string has this channel's form."""

    def check(self, spec: str, *, settings: ChannelSettings, outbound: Outbound) -> None:
        """Raise ChannelError unless the configuration can reach the channel."""

    def send(
        self,
        spec: str,
        report: ClusterReport,
        *,
        key: str,
        settings: ChannelSettings,
        outbound: Outbound,
    ) -> None:
        """Deliver the report; raise DeliveryError unless the receiver accepted it. `key` is
        the delivery's idempotency key, the same on every attempt (sent where the receiver
        can read it)."""


def _checked_url(url: str, *, settings: ChannelSettings, outbound: Outbound) -> None:
    try:
        check_destination(
            url, allowed=settings.webhook_allowed_networks, resolver=outbound.resolver
        )
    except DestinationError as problem:
        raise ChannelError(str(problem)) from None


def _post(
    url: str,
    body: bytes,
    *,
    headers: dict[str, str],
    settings: ChannelSettings,
    outbound: Outbound,
    who: str,
) -> None:
    try:
        answer = post_json(
            url,
            body,
            headers=headers,
            allowed=settings.webhook_allowed_networks,
            timeout_s=TIMEOUT_S,
            resolver=outbound.resolver,
        )
    except DestinationError as problem:
        raise DeliveryError(str(problem)) from problem
    if 300 <= answer.status < 400:
        raise DeliveryError(f"{who} answered {answer.status}: redirects are not followed")
    if not 200 <= answer.status < 300:
        detail = answer.body[:200].decode("utf-8", "replace")
        raise DeliveryError(f"{who} answered {answer.status}: {detail}")


class SlackBotChannel:
    """`#channel`: the Slack Web API's chat.postMessage with SLACK_BOT_TOKEN."""

    kind = "slack-bot"

    def claims(self, spec: str) -> bool:
        return spec.startswith("#")

    def check(self, spec: str, *, settings: ChannelSettings, outbound: Outbound) -> None:
        if not SLACK_CHANNEL_NAME.fullmatch(spec):
            raise ChannelError(
                f"{spec!r} is not a Slack channel name (#, then lowercase letters, digits, "
                "'-', '_' or '.', at most 80)"
            )
        if not settings.slack_bot_token:
            raise ChannelError(
                f"{spec} needs the Slack Web API, but SLACK_BOT_TOKEN is not configured on "
                "the server: set it, or give an incoming-webhook URL "
                "(https://hooks.slack.com/services/…)"
            )

    def send(
        self,
        spec: str,
        report: ClusterReport,
        *,
        key: str,
        settings: ChannelSettings,
        outbound: Outbound,
    ) -> None:
        if not settings.slack_bot_token:
            raise DeliveryError("SLACK_BOT_TOKEN is not configured")
        message = build_message(report)
        client = WebClient(  # no retries here: failed deliveries are retried with backoff
            token=settings.slack_bot_token,
            base_url=settings.slack_api_url,
            timeout=int(TIMEOUT_S),
            retry_handlers=[],
        )
        try:
            client.chat_postMessage(channel=spec, text=message.text, blocks=message.blocks)
        except SlackClientError as problem:
            raise DeliveryError(f"slack chat.postMessage failed: {problem}") from problem
        except OSError as problem:
            raise DeliveryError(f"{type(problem).__name__}: {problem}") from problem


class SlackWebhookChannel:
    """A Slack incoming-webhook URL (or `slack+URL` for a proxy or a fake Slack)."""

    kind = "slack-webhook"

    def claims(self, spec: str) -> bool:
        return spec.startswith((SLACK_WEBHOOK_PREFIX, FORCED_SLACK_PREFIX))

    def check(self, spec: str, *, settings: ChannelSettings, outbound: Outbound) -> None:
        _checked_url(spec.removeprefix(FORCED_SLACK_PREFIX), settings=settings, outbound=outbound)

    def send(
        self,
        spec: str,
        report: ClusterReport,
        *,
        key: str,
        settings: ChannelSettings,
        outbound: Outbound,
    ) -> None:
        message = build_message(report)
        body = json.dumps({"text": message.text, "blocks": message.blocks}).encode("utf-8")
        _post(
            spec.removeprefix(FORCED_SLACK_PREFIX),
            body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "k8s-monitor",
                IDEMPOTENCY_HEADER: key,
            },
            settings=settings,
            outbound=outbound,
            who="slack",
        )


class WebhookChannel:
    """Any other http(s) URL: the report as JSON, signed with K8SMON_WEBHOOK_SECRET."""

    kind = "webhook"

    def claims(self, spec: str) -> bool:
        return spec.startswith(("https://", "http://"))

    @staticmethod
    def _unsigned_refused(settings: ChannelSettings) -> bool:
        return (
            settings.is_production
            and not settings.webhook_secret
            and not settings.webhook_allow_unsigned
        )

    def check(self, spec: str, *, settings: ChannelSettings, outbound: Outbound) -> None:
        if self._unsigned_refused(settings):
            raise ChannelError(
                "webhook deliveries are always signed in production, but K8SMON_WEBHOOK_SECRET "
                "is not configured on the server"
            )
        _checked_url(spec, settings=settings, outbound=outbound)

    def send(
        self,
        spec: str,
        report: ClusterReport,
        *,
        key: str,
        settings: ChannelSettings,
        outbound: Outbound,
    ) -> None:
        if self._unsigned_refused(settings):
            raise DeliveryError("K8SMON_WEBHOOK_SECRET is not configured: not sent unsigned")
        body = json.dumps(
            payload(report, delivery_id=key), sort_keys=True, separators=(",", ":"), default=str
        ).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "k8s-monitor",
            IDEMPOTENCY_HEADER: key,
        }
        if settings.webhook_secret:
            timestamp = str(int(outbound.now()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(
                body, secret=settings.webhook_secret, timestamp=timestamp
            )
        _post(spec, body, headers=headers, settings=settings, outbound=outbound, who="webhook")


CHANNELS: tuple[Channel, ...] = (SlackBotChannel(), SlackWebhookChannel(), WebhookChannel())

FORMS = "a Slack channel (#name), a Slack incoming-webhook URL or an http(s) webhook URL"


def channel_for(spec: str) -> Channel:
    """The channel that claims the string; ChannelError when none does."""
    for channel in CHANNELS:
        if channel.claims(spec):
            return channel
    raise ChannelError(f"{spec!r} is not {FORMS}")


def describe(spec: str) -> str:
    """The channel for logs: a URL's scheme and host only (a Slack webhook URL's path is its
    secret)."""
    parts = urlsplit(spec.removeprefix(FORCED_SLACK_PREFIX))
    if parts.scheme and parts.netloc:
        return f"{parts.scheme}://{parts.hostname or ''}/…"
    return spec


def check_channel(spec: str, *, settings: ChannelSettings, outbound: Outbound | None = None) -> str:
    """Raise ChannelError unless a configured method can reach the channel; returns its kind."""
    channel = channel_for(spec)
    channel.check(spec, settings=settings, outbound=outbound or Outbound())
    return channel.kind


def deliver(
    spec: str,
    report: ClusterReport,
    *,
    key: str,
    settings: ChannelSettings,
    outbound: Outbound | None = None,
) -> None:
    """Send the report to the channel with its delivery's idempotency key; raise DeliveryError
    (retried later) on any failure."""
    try:
        channel = channel_for(spec)
    except ChannelError as problem:
        raise DeliveryError(str(problem)) from None
    channel.send(spec, report, key=key, settings=settings, outbound=outbound or Outbound())
