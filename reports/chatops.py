"""Chat-ops: the one command table of `/k8smon …`, the replies, and posting them back.

`COMMANDS` declares every command once: its help line, whether it needs a cluster, whether it
is answered at once or queued, what it enqueues and audits first, the acknowledgement, and the
reply function. The ingest endpoint (`POST /chatops/slack`, ingest.chatops) and the worker task
`k8smon.chatops_command` (contracts.tasks.CHATOPS_COMMAND, one argument `request`: a plain dict
`{"command", "args", "user_id", "response_url"}`) both read it, so a new command is one entry
here, and an unknown one gets the help text, never an error.

Every string that is not ours (object names, messages, agent and Kubernetes versions, the
user's own arguments) is escaped for Slack mrkdwn (`&`, `<`, `>`), so `<!channel>` or
`<https://evil|Open>` in an object name is shown, never acted on. Replies are posted only to
`response_url`s on Slack's hosts (settings.slack_response_hosts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from contracts.severity import Severity
from contracts.states import FindingStatus
from contracts.tasks import RESCAN
from reports.links import report_link
from reports.slack import escape
from store.models import Cluster, Finding, TelemetryPing
from store.scans import latest_scan_run
from store.types import utcnow

OPEN = FindingStatus.unresolved()
MAX_FINDING_LINES = 15
POST_TIMEOUT_S = 10.0
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ResponseUrlError(ValueError):
    """The response_url is not on one of Slack's hosts (or the configured ones)."""


@dataclass(frozen=True, slots=True)
class ChatCommand:
    name: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What a reply may need besides the database: the report link and who asked."""

    link: str
    user_id: str


Reply = Callable[[Session, ChatCommand, ReplyContext], str]
ArgumentCheck = Callable[[ChatCommand], str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandSpec:
    """One chat-ops command, declared once."""

    name: str
    usage: str  # the arguments after the name, for the help text
    help: str
    reply: Reply
    needs_cluster: bool = True
    queued: bool = True  # answered by the worker through response_url, else at once
    ack: str = "Working on"  # "<ack> `<cluster>`… the answer follows here."
    enqueues: tuple[str, ...] = ()  # tasks sent with the cluster id before the reply
    audit_action: str | None = None  # recorded, with the Slack user, before enqueueing
    check: ArgumentCheck | None = None


def parse_command(text: str) -> ChatCommand:
    """`"findings prod-eu high"` -> ChatCommand("findings", ("prod-eu", "high"))."""
    words = text.split()
    if not words:
        return ChatCommand("help", ())
    return ChatCommand(words[0].lower(), tuple(words[1:]))


def ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": text}


def code(text: str) -> str:
    """Someone else's text as inline code: escaped, and without backticks to break out."""
    quoted = escape(text.replace("`", "'"))
    return f"`{quoted}`"


def _known_clusters(session: Session, *, limit: int = 10) -> list[str]:
    return list(session.scalars(select(Cluster.id).order_by(Cluster.id).limit(limit)))


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
        return f"No cluster named {code(cluster_id)}."
    now = utcnow()
    ping = session.scalar(
        select(TelemetryPing)
        .where(TelemetryPing.cluster_id == cluster_id)
        .order_by(TelemetryPing.received_at.desc(), TelemetryPing.id.desc())
        .limit(1)
    )
    run = latest_scan_run(session, cluster_id)
    lines = [
        f"*{escape(cluster.display_name)}* ({code(cluster.id)}, {escape(cluster.status)})"
        + (f", team {escape(cluster.team)}" if cluster.team else "")
    ]
    if ping is None:
        lines.append("Agent: no telemetry received yet")
    else:
        nodes = ping.node_count if ping.node_count is not None else "?"
        lines.append(
            f"Agent {escape(ping.agent_version or '?')}"
            f" · Kubernetes {escape(ping.kubernetes_version or '?')}"
            f" · {nodes} nodes · last ping {_ago(ping.received_at, now)}"
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
        return f"No open findings{scope} in {code(cluster_id)}. Report: <{link}|open the report>"
    plural = "s" if len(rows) != 1 else ""
    lines = [f"*{len(rows)} open finding{plural}{scope}* in {code(cluster_id)}:"]
    for f in rows[:MAX_FINDING_LINES]:
        where = f"{f.namespace}/" if f.namespace else ""
        lines.append(
            f"• [{escape(f.severity)}] {escape(f.rule_id)} {escape(f.kind)} "
            f"{escape(where + f.name)}: {escape(f.message)}"
        )
    if len(rows) > MAX_FINDING_LINES:
        lines.append(f"…and {len(rows) - MAX_FINDING_LINES} more.")
    lines.append(f"Report: <{link}|open the report>")
    return "\n".join(lines)


def _check_severity(command: ChatCommand) -> str | None:
    if len(command.args) > 1:
        try:
            Severity.parse(command.args[1])
        except ValueError:
            names = ", ".join(s.value for s in Severity)
            return f"Unknown severity {code(command.args[1])}; use one of {names}."
    return None


def _status(session: Session, command: ChatCommand, context: ReplyContext) -> str:
    return status_text(session, command.args[0], link=context.link)


def _findings(session: Session, command: ChatCommand, context: ReplyContext) -> str:
    minimum = Severity.parse(command.args[1]) if len(command.args) > 1 else None
    return findings_text(session, command.args[0], minimum=minimum, link=context.link)


def _rescan(session: Session, command: ChatCommand, context: ReplyContext) -> str:
    # The endpoint queued the scan; say so, with where things stand now.
    by = f" by <@{escape(context.user_id)}>" if context.user_id else ""
    return (
        f"Rescan of {code(command.args[0])} queued{by}; the team channel gets the report "
        "when it finishes.\n" + status_text(session, command.args[0], link=context.link)
    )


def _help(_session: Session, _command: ChatCommand, _context: ReplyContext) -> str:
    return help_text()


_TABLE = (
    CommandSpec(
        name="status",
        usage="<cluster>",
        help="health, open findings by severity, last scan",
        reply=_status,
        ack="Fetching the status of",
    ),
    CommandSpec(
        name="findings",
        usage="<cluster> [severity]",
        help="open findings (at or above a severity)",
        reply=_findings,
        ack="Collecting the findings of",
        check=_check_severity,
    ),
    CommandSpec(
        name="rescan",
        usage="<cluster>",
        help="scan the cluster now",
        reply=_rescan,
        ack="Rescan of",
        enqueues=(RESCAN,),
        audit_action="scan.trigger",
    ),
    CommandSpec(
        name="help",
        usage="",
        help="this message",
        reply=_help,
        needs_cluster=False,
        queued=False,
    ),
)
COMMANDS: Mapping[str, CommandSpec] = MappingProxyType({c.name: c for c in _TABLE})


def help_text(commands: Mapping[str, CommandSpec] | None = None) -> str:
    table = COMMANDS if commands is None else commands
    lines = ["*k8s-monitor* commands:"]
    for spec in table.values():
        usage = f" {spec.usage}" if spec.usage else ""
        lines.append(f"• `/k8smon {spec.name}{usage}`: {spec.help}")
    return "\n".join(lines)


HELP_TEXT = help_text()


def spec_of(command: ChatCommand) -> CommandSpec | None:
    return COMMANDS.get(command.name)


def problem_with(session: Session, command: ChatCommand) -> str | None:
    """A helpful reply when the command cannot run (unknown command, missing or unknown
    cluster, bad arguments); None when it is fine to answer or enqueue."""
    spec = spec_of(command)
    if spec is None:
        return f"Unknown command {code(command.name)}.\n{help_text()}"
    if not spec.needs_cluster:
        return None
    if not command.args:
        return f"{code(command.name)} needs a cluster: `/k8smon {spec.name} <cluster>`."
    cluster_id = command.args[0]
    if session.get(Cluster, cluster_id) is None:
        known = _known_clusters(session)
        hint = f" Known clusters: {', '.join(code(c) for c in known)}." if known else ""
        return f"No cluster named {code(cluster_id)}.{hint}"
    return spec.check(command) if spec.check else None


def acknowledgement(command: ChatCommand) -> str:
    spec = spec_of(command)
    verb = spec.ack if spec else "Working on"
    target = f" {code(command.args[0])}" if command.args else ""
    return f"{verb}{target}… the answer follows here."


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
    spec = COMMANDS[command.name]
    link = (
        report_link(secret_key=secret_key, public_url=public_url, cluster_id=command.args[0])
        if spec.needs_cluster
        else public_url
    )
    context = ReplyContext(link=link, user_id=str(request.get("user_id") or ""))
    return ephemeral(spec.reply(session, command, context))


def check_response_url(url: str, *, hosts: Sequence[str]) -> None:
    """Raise ResponseUrlError unless the URL is https on one of `hosts` (plain http only for a
    listed local test host)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise ResponseUrlError("the response_url is not a URL") from None
    if host not in hosts:
        raise ResponseUrlError(f"the response_url is not on Slack's hosts ({', '.join(hosts)})")
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOCAL_HOSTS):
        raise ResponseUrlError("the response_url must be https")
    if parts.username or parts.password:
        raise ResponseUrlError("the response_url carries credentials")


def post_response(
    response_url: str,
    message: Mapping[str, Any],
    *,
    hosts: Sequence[str],
    timeout_s: float = POST_TIMEOUT_S,
) -> int:
    """POST the reply to Slack's response_url (checked, no redirects); returns the status."""
    check_response_url(response_url, hosts=hosts)
    answer = requests.post(
        response_url, json=dict(message), timeout=timeout_s, allow_redirects=False
    )
    answer.raise_for_status()
    return answer.status_code


def run_chatops_command(
    sessions: sessionmaker[Session],
    *,
    request: Mapping[str, Any],
    secret_key: str,
    public_url: str,
    response_hosts: Sequence[str],
) -> dict[str, Any]:
    """The whole `k8smon.chatops_command` task: compute the reply, post it to response_url.

    `secret_key` signs the report links (the server's SECRET_KEY); `public_url` is where the
    admin pages and report links are served (settings.public_url); `response_hosts` are the
    hosts replies may go to (settings.slack_response_hosts).
    """
    with sessions() as session:
        message = compute_reply(
            session, request=request, secret_key=secret_key, public_url=public_url
        )
    status = post_response(str(request["response_url"]), message, hosts=response_hosts)
    return {"posted": status, "command": request.get("command")}
