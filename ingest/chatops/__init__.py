"""Chat-ops: the Slack slash command endpoint and the signed report links it hands out.

`POST /chatops/slack` verifies Slack's v0 signature (slack_sdk's SignatureVerifier, 5-minute
window) before reading anything else and refuses a signature seen before (409, replay), then
checks the allow-list (settings.slack_allowed_users) and that `response_url` is on Slack's hosts
(settings.slack_response_hosts). What each command does comes from the one command table,
reports.chatops.COMMANDS: immediate commands, unknown commands and unknown clusters get their
reply directly; queued ones are audited and their tasks enqueued as the table says, then
`k8smon.chatops_command` is enqueued, acknowledged with an ephemeral message, and the worker
posts the result to Slack's `response_url`. `GET /chatops/reports/<token>` opens a
cluster's report from a signed, expiring link without sign-in.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Response, jsonify, request
from slack_sdk.signature import Clock, SignatureVerifier
from sqlalchemy.orm import Session

from contracts.tasks import CHATOPS_COMMAND
from ingest.context import ctx
from ingest.dispatch import enqueue_after_commit
from ingest.problems import Problem
from reports import chatops
from reports.build import build_cluster_report
from reports.html import render_html
from reports.links import LinkError, cluster_of_token
from reports.slack import escape
from store.audit import record_action
from store.errors import ClusterNotFound

MAX_SLASH_BODY = 16 * 1024
REPLAY_KEY = "slack-chatops"
# slack_sdk accepts a timestamp up to 5 minutes either side of now: remember a signature for
# as long as it could be accepted again.
REPLAY_TTL_S = 2 * 5 * 60 + 1
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)


class _ContextClock(Clock):
    """slack_sdk's clock, reading the app's (injectable) clock."""

    def now(self) -> float:
        return ctx().clock()


def _slack_reply(message: dict[str, Any]) -> Response:
    response = jsonify(message)
    response.headers["Cache-Control"] = "no-store"
    return response


def _verified_body() -> bytes:
    secret = ctx().settings.slack_signing_secret
    if not secret:
        raise Problem(404, "chatops_disabled", "Not found", "chat-ops is not configured")
    if (request.content_length or 0) > MAX_SLASH_BODY:
        raise Problem(413, "body_too_large", "Payload too large")
    body = request.stream.read(MAX_SLASH_BODY + 1)  # never more than the cap in memory
    if len(body) > MAX_SLASH_BODY:
        raise Problem(413, "body_too_large", "Payload too large")
    verifier = SignatureVerifier(secret, clock=_ContextClock())
    try:
        valid = verifier.is_valid(
            body,
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
        )
    except ValueError:  # a timestamp that is not a number
        valid = False
    if not valid:
        raise Problem(
            401,
            "bad_slack_signature",
            "Unauthorised",
            "the Slack signature is missing, wrong or older than 5 minutes",
            public_detail=False,
        )
    if not _first_use(request.headers.get("X-Slack-Signature", "")):
        raise Problem(
            409,
            "replayed_slack_request",
            "Conflict",
            "this signed Slack request was received before; each is accepted once",
        )
    return body


def _first_use(signature: str) -> bool:
    """Remember the signature for its window (Redis when configured, else this process)."""
    return ctx().nonces.first_use(REPLAY_KEY, signature, ttl=REPLAY_TTL_S)


def _answer_now(
    session: Session, command: chatops.ChatCommand, *, has_response_url: bool
) -> str | None:
    """The reply when nothing needs queueing: an immediate command, a problem, or nowhere to
    answer."""
    problem = chatops.problem_with(session, command)
    if problem is not None:
        return problem
    spec = chatops.COMMANDS[command.name]
    if not spec.queued:
        context = chatops.ReplyContext(link=ctx().settings.public_url, user_id="")
        return spec.reply(session, command, context)
    if not has_response_url:
        return "Slack sent no response_url, so the answer has nowhere to go; try again."
    return None


def _unavailable() -> Response:
    return _slack_reply(
        chatops.ephemeral("The task queue is unavailable right now; try again in a minute.")
    )


def slash_command() -> Response:
    body = _verified_body()
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    context = ctx()
    user_id = form.get("user_id", "")
    if user_id not in context.settings.slack_allowed_users:
        return _slack_reply(
            chatops.ephemeral(
                f"Sorry, <@{escape(user_id)}> is not on the k8s-monitor allow-list; "
                "ask the security team."
            )
        )
    response_url = form.get("response_url", "")
    if response_url:
        try:
            chatops.check_response_url(response_url, hosts=context.settings.slack_response_hosts)
        except chatops.ResponseUrlError as problem:
            raise Problem(400, "bad_response_url", "Bad request", str(problem)) from None
    command = chatops.parse_command(form.get("text", ""))
    with context.sessions() as session:
        answer = _answer_now(session, command, has_response_url=bool(response_url))
        if answer is not None:
            return _slack_reply(chatops.ephemeral(answer))
        spec = chatops.COMMANDS[command.name]
        cluster_id = command.args[0] if spec.needs_cluster else None
        if spec.audit_action:
            record_action(
                session,
                actor=f"slack:{user_id}",
                action=spec.audit_action,
                target=cluster_id or "",
                source="chatops",
                details={"user_name": form.get("user_name")},
            )
            session.commit()
    for task in spec.enqueues:
        if not enqueue_after_commit(
            context.dispatch, task, kwargs={"cluster_id": cluster_id} if cluster_id else {}
        ):
            return _unavailable()
    queued = enqueue_after_commit(
        context.dispatch,
        CHATOPS_COMMAND,
        kwargs={
            "request": {
                "command": command.name,
                "args": list(command.args),
                "user_id": user_id,
                "response_url": response_url,
            },
        },
    )
    if not queued and not spec.enqueues:
        return _unavailable()
    return _slack_reply(chatops.ephemeral(chatops.acknowledgement(command)))


def shared_report(token: str) -> Response:
    context = ctx()
    try:
        cluster_id = cluster_of_token(context.settings.secret_key, token)
    except LinkError as problem:
        return _report_response(
            f"<!doctype html><title>Link not valid</title><h1>{problem}</h1>", 403
        )
    with context.sessions() as session:
        try:
            report = build_cluster_report(
                session, cluster_id, public_url=context.settings.public_url
            )
        except ClusterNotFound:  # deleted since the link was made
            return _report_response(
                "<!doctype html><title>Gone</title><h1>This cluster no longer exists.</h1>", 404
            )
    return _report_response(render_html(report), 200)


def _report_response(html: str, status: int) -> Response:
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = REPORT_CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def make_blueprint() -> Blueprint:
    """A fresh chat-ops blueprint (one per app)."""
    blueprint = Blueprint("chatops", __name__, url_prefix="/chatops")
    blueprint.add_url_rule("/slack", "slash_command", slash_command, methods=["POST"])
    blueprint.add_url_rule("/reports/<token>", "shared_report", shared_report, methods=["GET"])
    return blueprint
