"""Chat-ops replies: what `/k8smon status|findings|rescan|help` answers, and posting it back.

The ingest endpoint (`POST /chatops/slack`) verifies Slack's signature, checks the allow-list,
answers unknown commands and clusters at once, and enqueues everything else as the task
`k8smon.chatops_command` (contracts.tasks.CHATOPS_COMMAND) with one positional argument,
`request`: a plain dict `{"command", "args", "user_id", "response_url"}`.

The worker task is meant to be a thin wrapper around `run_chatops_command`::

    @app.task(name=names.CHATOPS_COMMAND, **COMMON)
    def chatops_command(self, request: dict) -> dict:
        return run_chatops_command(ctx.sessions, request=request,
                                   secret_key=ctx.settings.secret_key,
                                   public_url=ctx.settings.public_url)

which computes the reply in one read-only unit of work and posts it to Slack's
`response_url` (an ephemeral message). Nothing here raises for a bad cluster or command: the
user gets a helpful reply, never a stack trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from contracts.severity import Severity
from reports.links import report_link
from store.models import Cluster, Finding, TelemetryPing
from store.scans import latest_scan_run
from store.types import utcnow

COMMANDS = ("rescan", "status", "findings", "help")
OPEN = ("new", "open")
MAX_FINDING_LINES = 15
POST_TIMEOUT_S = 10.0

HELP_TEXT = (
    "*k8s-monitor* commands:\n"
    "• `/k8smon status <cluster>`: health, open findings by severity, last scan\n"
    "• `/k8smon findings <cluster> [severity]`: open findings (at or above a severity)\n"
    "• `/k8smon rescan <cluster>`: scan the cluster now\n"
    "• `/k8smon help`: this message"
)


@dataclass(frozen=True, slots=True)
class ChatCommand:
    name: str
    args: tuple[str, ...]


def parse_command(text: str) -> ChatCommand:
    """`"findings prod-eu high"` -> ChatCommand("findings", ("prod-eu", "high"))."""
    words = text.split()
    if not words:
        return ChatCommand("help", ())
    return ChatCommand(words[0].lower(), tuple(words[1:]))


def ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": text}


def _known_clusters(session: Session, *, limit: int = 10) -> list[str]:
    return list(session.scalars(select(Cluster.id).order_by(Cluster.id).limit(limit)))


def problem_with(session: Session, command: ChatCommand) -> str | None:
    """A helpful reply when the command cannot run (unknown command, missing or unknown
    cluster, bad severity); None when it is fine to enqueue."""
    if command.name not in COMMANDS:
        return f"Unknown command `{command.name}`.\n{HELP_TEXT}"
    if command.name == "help":
        return None
    if not command.args:
        return f"`{command.name}` needs a cluster: `/k8smon {command.name} <cluster>`."
    cluster_id = command.args[0]
    if session.get(Cluster, cluster_id) is None:
        known = _known_clusters(session)
        hint = f" Known clusters: {', '.join(f'`{c}`' for c in known)}." if known else ""
        return f"No cluster named `{cluster_id}`.{hint}"
    if command.name == "findings" and len(command.args) > 1:
        try:
            Severity.parse(command.args[1])
        except ValueError:
            names = ", ".join(s.value for s in Severity)
            return f"Unknown severity `{command.args[1]}`; use one of {names}."
    return None


def _open_by_severity(session: Session, cluster_id: str) -> dict[str, int]:
    rows = session.execute(
        select(Finding.severity, func.count())
        .where(Finding.cluster_id == cluster_id, Finding.status.in_(OPEN))
        .group_by(Finding.severity)
    )
    counts = {s.value: 0 for s in Severity}
    counts.update({severity: int(n) for severity, n in rows})
    return counts


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    minutes = int((now - when).total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // 1440} days ago"


def _severity_line(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    parts = [f"{n} {severity}" for severity, n in counts.items() if n]
    return f"{total} open" + (f" ({', '.join(parts)})" if parts else "")


def status_text(session: Session, cluster_id: str, *, link: str) -> str:
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        return f"No cluster named `{cluster_id}`."
    now = utcnow()
    ping = session.scalar(
        select(TelemetryPing)
        .where(TelemetryPing.cluster_id == cluster_id)
        .order_by(TelemetryPing.received_at.desc(), TelemetryPing.id.desc())
        .limit(1)
    )
    run = latest_scan_run(session, cluster_id)
    lines = [
        f"*{cluster.display_name}* (`{cluster.id}`, {cluster.status})"
        + (f", team {cluster.team}" if cluster.team else "")
    ]
    if ping is None:
        lines.append("Agent: no telemetry received yet")
    else:
        lines.append(
            f"Agent {ping.agent_version or '?'} · Kubernetes {ping.kubernetes_version or '?'}"
            f" · {ping.node_count if ping.node_count is not None else '?'} nodes"
            f" · last ping {_ago(ping.received_at, now)}"
            + (f" · {len(ping.errors)} collection errors" if ping.errors else "")
        )
    lines.append(f"Findings: {_severity_line(_open_by_severity(session, cluster_id))}")
    lines.append(
        f"Last scan: #{run.id} {_ago(run.finished_at, now)}" if run else "Last scan: none yet"
    )
    lines.append(f"Report: <{link}|open the report>")
    return "\n".join(lines)


def findings_text(session: Session, cluster_id: str, *, minimum: Severity | None, link: str) -> str:
    rows: Sequence[Finding] = session.scalars(
        select(Finding)
        .where(Finding.cluster_id == cluster_id, Finding.status.in_(OPEN))
        .order_by(Finding.rule_id, Finding.namespace, Finding.kind, Finding.name)
    ).all()
    if minimum is not None:
        rows = [f for f in rows if Severity(f.severity).at_least(minimum)]
    rows = sorted(rows, key=lambda f: -Severity(f.severity).rank)
    scope = f" at or above {minimum.value}" if minimum else ""
    if not rows:
        return f"No open findings{scope} in `{cluster_id}`. Report: <{link}|open the report>"
    lines = [f"*{len(rows)} open finding{'s' if len(rows) != 1 else ''}{scope}* in `{cluster_id}`:"]
    for f in rows[:MAX_FINDING_LINES]:
        where = f"{f.namespace}/" if f.namespace else ""
        lines.append(f"• [{f.severity}] {f.rule_id} {f.kind} {where}{f.name}: {f.message}")
    if len(rows) > MAX_FINDING_LINES:
        lines.append(f"…and {len(rows) - MAX_FINDING_LINES} more.")
    lines.append(f"Report: <{link}|open the report>")
    return "\n".join(lines)


def compute_reply(
    session: Session, *, request: Mapping[str, Any], secret_key: str, public_url: str
) -> dict[str, Any]:
    """The Slack message answering one chat-ops request (never raises for bad input)."""
    command = ChatCommand(
        str(request.get("command", "help")), tuple(str(a) for a in request.get("args") or ())
    )
    problem = problem_with(session, command)
    if problem is not None:
        return ephemeral(problem)
    if command.name == "help":
        return ephemeral(HELP_TEXT)
    cluster_id = command.args[0]
    link = report_link(secret_key=secret_key, public_url=public_url, cluster_id=cluster_id)
    if command.name == "status":
        return ephemeral(status_text(session, cluster_id, link=link))
    if command.name == "findings":
        minimum = Severity.parse(command.args[1]) if len(command.args) > 1 else None
        return ephemeral(findings_text(session, cluster_id, minimum=minimum, link=link))
    # rescan: the endpoint queued the scan; say so, with where things stand now.
    user = request.get("user_id")
    return ephemeral(
        f"Rescan of `{cluster_id}` queued"
        + (f" by <@{user}>" if user else "")
        + "; the team channel gets the report when it finishes.\n"
        + status_text(session, cluster_id, link=link)
    )


def post_response(
    response_url: str, message: Mapping[str, Any], *, timeout_s: float = POST_TIMEOUT_S
) -> int:
    """POST the reply to Slack's response_url; returns the HTTP status (raises on failure)."""
    answer = requests.post(response_url, json=dict(message), timeout=timeout_s)
    answer.raise_for_status()
    return answer.status_code


def run_chatops_command(
    sessions: sessionmaker[Session], *, request: Mapping[str, Any], secret_key: str, public_url: str
) -> dict[str, Any]:
    """The whole `k8smon.chatops_command` task: compute the reply, post it to response_url.

    `secret_key` signs the report links (the server's SECRET_KEY); `public_url` is where the
    admin pages and report links are served (settings.public_url).
    """
    with sessions() as session:
        message = compute_reply(
            session, request=request, secret_key=secret_key, public_url=public_url
        )
    status = post_response(str(request["response_url"]), message)
    return {"posted": status, "command": request.get("command")}
