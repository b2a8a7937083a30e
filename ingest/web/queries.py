"""Read models of the admin pages: a few grouped queries per page, never one query per row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from markupsafe import Markup
from sqlalchemy import ColumnElement, case, func, or_, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from contracts.resources import resource_key
from contracts.severity import Severity
from contracts.states import FindingStatus, ScanState
from ingest.web import charts
from ingest.web.filters import PAGE_SIZE, FindingFilter
from store.db import on_postgresql
from store.models import AuditEntry, Cluster, Finding, KubeObject, ScanRun, TelemetryPing
from store.telemetry import latest_ping_id

OPEN_STATUSES = FindingStatus.unresolved()
SEVERITIES = tuple(s.value for s in Severity)
TREND_SCANS = 8
Row = TypeVar("Row")


@dataclass(slots=True)
class FleetRow:
    """One cluster on the fleet overview (plain values: no ORM objects to hydrate)."""

    cluster_id: str
    team: str | None
    status: str
    received_at: datetime | None
    agent_version: str | None
    kubernetes_version: str | None
    collection_errors: int
    health: str  # healthy | stale | errors | never | disabled
    open_by_severity: dict[str, int]
    trend: list[int] = field(default_factory=list)
    age_minutes: int | None = None

    @property
    def open_total(self) -> int:
        return sum(self.open_by_severity.values())

    @property
    def severity_counts(self) -> list[int]:
        return [self.open_by_severity.get(s, 0) for s in SEVERITIES]

    def worst_first_key(self) -> tuple[Any, ...]:
        """Sort key: most critical findings first, then high, ... then the cluster id."""
        return (*(-n for n in self.severity_counts), self.cluster_id)

    @property
    def severity_items(self) -> list[tuple[str, int]]:
        return [(s, self.open_by_severity.get(s, 0)) for s in SEVERITIES]

    @property
    def sparkline(self) -> str:
        return sparkline(self.trend)

    @property
    def trend_svg(self) -> Markup:
        return charts.trend_bars(self.trend)


def health_of(
    *, status: str, received_at: datetime | None, errors: int, now: datetime, stale_after: timedelta
) -> str:
    if status != "active":
        return "disabled"
    if received_at is None:
        return "never"
    if now - received_at > stale_after:
        return "stale"
    if errors:
        return "errors"
    return "healthy"


def open_counts_by_cluster(session: Session) -> dict[str, dict[str, int]]:
    """Open findings per cluster and severity: one row per cluster (FILTER aggregates)."""
    open_findings = Finding.status.in_(OPEN_STATUSES)
    rows = session.execute(
        select(
            Finding.cluster_id,
            *(func.count().filter(Finding.severity == severity) for severity in SEVERITIES),
        )
        .where(open_findings)
        .group_by(Finding.cluster_id)
    )
    return {
        cluster_id: dict(zip(SEVERITIES, (int(n) for n in counts), strict=True))
        for cluster_id, *counts in rows
    }


def open_after_scan(counts: dict[str, Any]) -> int:
    """Open findings a finished scan left (its new plus still-open findings)."""
    return int(counts.get("new", 0) or 0) + int(counts.get("open", 0) or 0)


def recent_trends(session: Session, *, scans: int = TREND_SCANS) -> dict[str, list[int]]:
    """Per cluster, open findings after each of its last `scans` finished scans, oldest first.

    The count is read inside the database (JSON field access works on both engines), so only
    integers cross the wire.
    """
    open_count = func.coalesce(ScanRun.counts["new"].as_integer(), 0) + func.coalesce(
        ScanRun.counts["open"].as_integer(), 0
    )
    trends: dict[str, list[int]] = defaultdict(list)
    if on_postgresql(session):
        # Each cluster's last scans by one short scan of ix_scan_runs_cluster_done (a window
        # over every finished run sorted them all: 55,800 rows at 300 clusters), one row per
        # cluster (fetching 8 rows per cluster costs more than the query).
        latest = (
            select(ScanRun.id, open_count.label("open_count"))
            .where(ScanRun.cluster_id == Cluster.id, ScanRun.state == ScanState.DONE)
            .order_by(ScanRun.id.desc())
            .limit(scans)
            .lateral()
        )
        series = session.execute(
            select(
                Cluster.id,
                func.array_agg(aggregate_order_by(latest.c.open_count, latest.c.id)),
            )
            .join(latest, true())
            .group_by(Cluster.id)
        )
        for cluster_id, values in series:
            trends[cluster_id] = [int(v or 0) for v in values]
        return trends
    ranked = (
        select(
            ScanRun.cluster_id,
            ScanRun.id,
            open_count.label("open_count"),
            func.row_number()
            .over(partition_by=ScanRun.cluster_id, order_by=ScanRun.id.desc())
            .label("rank"),
        )
        .where(ScanRun.state == ScanState.DONE)
        .subquery()
    )
    recent = select(ranked).where(ranked.c.rank <= scans)
    for cluster_id, _id, value, _rank in session.execute(
        recent.order_by(ranked.c.cluster_id, ranked.c.id)
    ):
        trends[cluster_id].append(int(value or 0))
    return trends


def _latest_pings(session: Session) -> list[Any]:
    """Each cluster with the columns the overview shows from its latest ping (one index
    lookup per cluster through (cluster_id, received_at))."""
    latest = latest_ping_id()
    return list(
        session.execute(
            select(
                Cluster.id,
                Cluster.team,
                Cluster.status,
                TelemetryPing.received_at,
                TelemetryPing.agent_version,
                TelemetryPing.kubernetes_version,
                TelemetryPing.errors,
            )
            .outerjoin(TelemetryPing, TelemetryPing.id == latest)
            .order_by(Cluster.id)
        )
    )


def fleet_overview(session: Session, *, now: datetime, stale_after: timedelta) -> list[FleetRow]:
    counts = open_counts_by_cluster(session)
    trends = recent_trends(session)
    rows = []
    for cid, team, status, received_at, agent, kubernetes, errors in _latest_pings(session):
        error_count = len(errors or {})
        rows.append(
            FleetRow(
                cluster_id=cid,
                team=team,
                status=status,
                received_at=received_at,
                agent_version=agent,
                kubernetes_version=kubernetes,
                collection_errors=error_count,
                health=health_of(
                    status=status,
                    received_at=received_at,
                    errors=error_count,
                    now=now,
                    stale_after=stale_after,
                ),
                open_by_severity=counts.get(cid) or dict.fromkeys(SEVERITIES, 0),
                trend=trends.get(cid, []),
                age_minutes=int((now - received_at).total_seconds() // 60) if received_at else None,
            )
        )
    return rows


def sparkline(values: Sequence[int]) -> str:
    """Unicode block sparkline of a short series (no scripts, no images)."""
    if not values:
        return ""
    blocks = "▁▂▃▄▅▆▇█"
    top = max(values) or 1
    return "".join(blocks[min(len(blocks) - 1, round(v / top * (len(blocks) - 1)))] for v in values)


def object_ids_by_ref(session: Session, cluster_id: str, ref_keys: Sequence[str]) -> dict[str, int]:
    """Live object id of each reference key (for links from findings to manifests)."""
    found: dict[str, int] = {}
    keys = sorted(set(ref_keys))
    for start in range(0, len(keys), 500):
        rows = session.execute(
            select(KubeObject.ref_key, KubeObject.id).where(
                KubeObject.cluster_id == cluster_id,
                KubeObject.ref_key.in_(keys[start : start + 500]),
                KubeObject.deleted_at.is_(None),
            )
        )
        found.update({key: oid for key, oid in rows})
    return found


def object_findings(
    session: Session, cluster_id: str, obj: KubeObject, *, with_resolved: bool = False
) -> Sequence[Finding]:
    """The object's active findings (and its resolved ones when asked), worst first."""
    statuses = (
        *OPEN_STATUSES,
        FindingStatus.EXEMPTED,
        *((FindingStatus.RESOLVED,) if with_resolved else ()),
    )
    found = session.scalars(
        select(Finding).where(
            Finding.cluster_id == cluster_id,
            Finding.api_version == obj.api_version,
            Finding.kind == obj.kind,
            Finding.name == obj.name,
            Finding.namespace.is_(None)
            if not obj.namespace
            else Finding.namespace == obj.namespace,
            Finding.status.in_(statuses),
        )
    ).all()
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(
        found,
        key=lambda f: (
            f.status not in OPEN_STATUSES,
            rank.get(f.severity, 9),
            f.rule_id,
            f.path or "",
        ),
    )


def version_at(versions: Sequence[Any], moment: datetime) -> Any | None:
    """The version that was current at `moment` (versions oldest first), if any."""
    current = None
    for version in versions:
        if version.first_seen <= moment:
            current = version
        else:
            break
    return current if current is not None else (versions[0] if versions else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeItem:
    """One violation a change introduced or resolved (with the tracked finding's status)."""

    rule_id: str
    title: str
    severity: str
    path: str | None
    status: str | None = None


@dataclass(slots=True)
class ChangeFindings:
    """What one change did to the object's findings, and how that was worked out."""

    introduced: list[ChangeItem]
    resolved: list[ChangeItem]
    method: str  # "rules": both versions evaluated; "scans": findings first seen/resolved


def _item(finding: Finding) -> ChangeItem:
    return ChangeItem(
        rule_id=finding.rule_id,
        title=str((finding.details or {}).get("title", "")),
        severity=finding.severity,
        path=finding.path,
        status=finding.status,
    )


def change_findings(
    findings: Sequence[Finding],
    versions: Sequence[Any],
    *,
    old: Any,
    new: Any,
    evaluate: Callable[[Any], list[dict[str, Any]]] | None = None,
) -> ChangeFindings:
    """Violations in `new` and not in `old` (introduced) and the reverse (resolved), when the
    composition root wired in the object rules (`evaluate`); otherwise the findings the scans
    first saw, or resolved, while `new` was current (from its arrival to the next version's)."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    if evaluate is not None:
        before = {(v["rule_id"], v["path"]): v for v in evaluate(old.body)}
        after = {(v["rule_id"], v["path"]): v for v in evaluate(new.body)}
        tracked = {(f.rule_id, f.path): f.status for f in findings}

        def items(keys: set[tuple[str, str]], source: dict[Any, Any]) -> list[ChangeItem]:
            found = [
                ChangeItem(
                    rule_id=rule_id,
                    title=source[(rule_id, path)]["title"],
                    severity=source[(rule_id, path)]["severity"],
                    path=path,
                    status=tracked.get((rule_id, path)),
                )
                for rule_id, path in keys
            ]
            return sorted(found, key=lambda i: (rank.get(i.severity, 9), i.rule_id, i.path or ""))

        return ChangeFindings(
            introduced=items(set(after) - set(before), after),
            resolved=items(set(before) - set(after), before),
            method="rules",
        )
    later = [v.first_seen for v in versions if v.first_seen > new.first_seen]
    until = min(later) if later else None

    def within(moment: datetime | None) -> bool:
        return moment is not None and moment >= new.first_seen and (until is None or moment < until)

    return ChangeFindings(
        introduced=[_item(f) for f in findings if within(f.first_seen)],
        resolved=[
            _item(f)
            for f in findings
            if f.status == FindingStatus.RESOLVED and within(f.resolved_at)
        ],
        method="scans",
    )


def rule_counts_by_cluster(session: Session, rule_id: str) -> list[tuple[str, int, int]]:
    """(cluster, open, exempted) findings of a rule across the fleet, most open first."""
    rows = session.execute(
        select(
            Finding.cluster_id,
            func.count().filter(Finding.status.in_(OPEN_STATUSES)),
            func.count().filter(Finding.status == FindingStatus.EXEMPTED),
        )
        .where(
            Finding.rule_id == rule_id, Finding.status.in_((*OPEN_STATUSES, FindingStatus.EXEMPTED))
        )
        .group_by(Finding.cluster_id)
    )
    counts = [(c, int(n_open), int(n_exempted)) for c, n_open, n_exempted in rows]
    return sorted(counts, key=lambda row: (-row[1], -row[2], row[0]))


def rule_sample(session: Session, rule_id: str) -> Finding | None:
    """Any finding of the rule (its title and severity when no catalogue is wired in)."""
    return session.scalar(select(Finding).where(Finding.rule_id == rule_id).limit(1))


# ------------------------------------------------------------------------------ paged findings


def _severity_rank() -> ColumnElement[int]:
    """0 for critical ... 4 for info (the sort key of "worst first")."""
    return case({s: i for i, s in enumerate(SEVERITIES)}, value=Finding.severity, else_=9)


_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_RANK_STATUSES: dict[int, tuple[str, ...]] = {
    0: OPEN_STATUSES,
    1: (FindingStatus.EXEMPTED,),
    2: (FindingStatus.RESOLVED,),
}


def _status_rank() -> ColumnElement[int]:
    """Open before exempted before resolved (the keys of `_RANK_STATUSES`)."""
    return case(
        (Finding.status.in_(OPEN_STATUSES), 0),
        (Finding.status == FindingStatus.EXEMPTED, 1),
        else_=2,
    )


def _resource_key() -> ColumnElement[str]:
    return Finding.kind + "|" + func.coalesce(Finding.namespace, "") + "|" + Finding.name


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingRow:
    """One finding on a list page (plain values; the rule's title and category included)."""

    id: int
    cluster_id: str
    rule_id: str
    title: str
    category: str
    severity: str
    status: str
    api_version: str
    kind: str
    namespace: str | None
    name: str
    container: str | None
    path: str | None
    message: str
    first_seen: datetime
    rule_size: int
    object_id: int | None = None

    @property
    def ref_key(self) -> str:
        return resource_key(self.api_version, self.kind, self.namespace, self.name)


@dataclass(slots=True)
class NumberedPage(Generic[Row]):
    """One numbered page of a list, plus how many rows there are in all (the pager's shape)."""

    rows: list[Row]
    total: int
    page: int
    page_size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def first(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * self.page_size + len(self.rows)


@dataclass(slots=True)
class FindingsPage(NumberedPage[FindingRow]):
    """One page of a filtered findings list, worst first."""

    def groups(self) -> list[tuple[str, list[FindingRow]]]:
        """The page's rows in runs of one rule (the order is already worst first)."""
        runs: list[tuple[str, list[FindingRow]]] = []
        for row in self.rows:
            if not runs or runs[-1][0] != row.rule_id:
                runs.append((row.rule_id, []))
            runs[-1][1].append(row)
        return runs


def findings_page(session: Session, flt: FindingFilter) -> FindingsPage:
    """One page of the filtered findings: open before exempted, then severity, then the rules
    with the most findings, then cluster, namespace, kind and name (a stable order, so a page
    number is a stable link)."""
    conditions = flt.conditions()
    groups = []  # (status rank, severity rank, rule id, severity, count)
    rule_sizes: dict[str, int] = defaultdict(int)
    rank = _status_rank().label("status_rank")
    for status_rank, severity, rule_id, n in session.execute(
        select(rank, Finding.severity, Finding.rule_id, func.count())
        .where(*conditions)
        .group_by(rank, Finding.severity, Finding.rule_id)
    ):
        groups.append((int(status_rank), _RANK.get(severity, 9), rule_id, severity, int(n)))
        rule_sizes[rule_id] += int(n)
    groups.sort(key=lambda g: (g[0], g[1], -rule_sizes[g[2]], g[2]))
    total = sum(g[4] for g in groups)
    # Walk the groups to the page: only the groups the page spans are read, in index order.
    chosen: list[tuple[int, int]] = []
    skip = flt.offset
    for status_rank, _rank, rule_id, severity, n in groups:
        if len(chosen) >= PAGE_SIZE:
            break
        if skip >= n:
            skip -= n
            continue
        ids = session.scalars(
            select(Finding.id)
            .where(
                *conditions,
                Finding.rule_id == rule_id,
                Finding.severity == severity,
                Finding.status.in_(_RANK_STATUSES[status_rank]),
            )
            .order_by(Finding.cluster_id, Finding.namespace, Finding.kind, Finding.name, Finding.id)
            .offset(skip)
            .limit(PAGE_SIZE - len(chosen))
        ).all()
        chosen.extend((finding_id, rule_sizes[rule_id]) for finding_id in ids)
        skip = 0
    sizes = {finding_id: int(size) for finding_id, size in chosen}
    loaded = {
        r.id: r
        for r in session.execute(
            select(
                Finding.id,
                Finding.cluster_id,
                Finding.rule_id,
                Finding.details["title"].as_string().label("title"),
                Finding.details["category"].as_string().label("category"),
                Finding.severity,
                Finding.status,
                Finding.api_version,
                Finding.kind,
                Finding.namespace,
                Finding.name,
                Finding.container,
                Finding.path,
                Finding.message,
                Finding.first_seen,
            ).where(Finding.id.in_(list(sizes)))
        )
    }
    rows = [loaded[finding_id] for finding_id in sizes if finding_id in loaded]
    found = [
        FindingRow(
            id=r.id,
            cluster_id=r.cluster_id,
            rule_id=r.rule_id,
            title=r.title or "",
            category=r.category or "",
            severity=r.severity,
            status=r.status,
            api_version=r.api_version,
            kind=r.kind,
            namespace=r.namespace,
            name=r.name,
            container=r.container,
            path=r.path,
            message=r.message,
            first_seen=r.first_seen,
            rule_size=sizes[r.id],
        )
        for r in rows
    ]
    by_cluster: dict[str, list[str]] = defaultdict(list)
    for row in found:
        by_cluster[row.cluster_id].append(row.ref_key)
    object_ids: dict[tuple[str, str], int] = {}
    for cluster_id, keys in by_cluster.items():
        for key, oid in object_ids_by_ref(session, cluster_id, keys).items():
            object_ids[(cluster_id, key)] = oid
    found = [replace(r, object_id=object_ids.get((r.cluster_id, r.ref_key))) for r in found]
    return FindingsPage(rows=found, total=total, page=flt.page)


# ------------------------------------------------------------------------------ summaries


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSummary:
    """One rule's findings in the filtered set: the row of a rule table."""

    rule_id: str
    title: str
    category: str
    severity: str
    open: int
    exempted: int
    resources: int


@dataclass(slots=True, kw_only=True)
class Summary:
    """The top of a findings page: counts per severity, status and category, and the rules."""

    by_severity: dict[str, dict[str, int]]  # severity -> {"open": n, "exempted": n}
    by_category: list[tuple[str, int]]  # open findings, largest first
    rules: list[RuleSummary]

    @property
    def open_total(self) -> int:
        return sum(v["open"] for v in self.by_severity.values())

    @property
    def exempted_total(self) -> int:
        return sum(v["exempted"] for v in self.by_severity.values())


def summarise(session: Session, flt: FindingFilter, *, with_rules: bool = True) -> Summary:
    """Counts of the filtered findings (status and page ignored: open and exempted both);
    `with_rules=False` leaves out the per-rule table (the costliest part at fleet scale)."""
    base = replace(flt, status="active", page=1).conditions()
    is_open = Finding.status.in_(OPEN_STATUSES)
    by_severity = {s: {"open": 0, "exempted": 0} for s in SEVERITIES}
    for severity, n_open, n_exempted in session.execute(
        select(
            Finding.severity,
            func.count().filter(is_open),
            func.count().filter(Finding.status == FindingStatus.EXEMPTED),
        )
        .where(*base)
        .group_by(Finding.severity)
    ):
        if severity in by_severity:
            by_severity[severity] = {"open": int(n_open), "exempted": int(n_exempted)}
    category = Finding.details["category"].as_string()
    by_category = [
        (name or "uncategorised", int(n))
        for name, n in session.execute(
            select(category, func.count())
            .where(*base, is_open)
            .group_by(category)
            .order_by(func.count().desc(), category)
        )
    ]
    if not with_rules:
        return Summary(by_severity=by_severity, by_category=by_category, rules=[])
    rules = [
        RuleSummary(
            rule_id=rule_id,
            title=title or "",
            category=cat or "",
            severity=SEVERITIES[int(rank)] if int(rank) < len(SEVERITIES) else "info",
            open=int(n_open),
            exempted=int(n_exempted),
            resources=int(resources),
        )
        for rule_id, title, cat, rank, n_open, n_exempted, resources in session.execute(
            select(
                Finding.rule_id,
                func.max(Finding.details["title"].as_string()),
                func.max(category),
                func.min(_severity_rank()),
                func.count().filter(is_open),
                func.count().filter(Finding.status == FindingStatus.EXEMPTED),
                func.count(func.distinct(_resource_key())),
            )
            .where(*base)
            .group_by(Finding.rule_id)
        )
    ]
    rules.sort(key=lambda r: (r.open == 0, SEVERITIES.index(r.severity), -r.resources, r.rule_id))
    return Summary(by_severity=by_severity, by_category=by_category, rules=rules)


def last_scan_changes(session: Session, cluster_id: str) -> dict[str, int] | None:
    """New and resolved findings of the cluster's latest finished scan (None: never scanned)."""
    counts = session.scalar(
        select(ScanRun.counts)
        .where(ScanRun.cluster_id == cluster_id, ScanRun.state == ScanState.DONE)
        .order_by(ScanRun.id.desc())
        .limit(1)
    )
    if counts is None:
        return None
    return {k: int(counts.get(k, 0) or 0) for k in ("new", "resolved", "open", "exempted")}


# ------------------------------------------------------------------------------ history


HISTORY_SCANS = 30
HISTORY_DAYS = 14


@dataclass(slots=True)
class History:
    """Numbers over time: labels, open findings per severity, and (new, resolved) pairs."""

    labels: list[str]
    by_severity: dict[str, list[int]]
    changes: list[tuple[int, int]]


def _severity_values(counts: dict[str, Any]) -> dict[str, int]:
    return {s: int(counts.get(f"severity_{s}", 0) or 0) for s in SEVERITIES}


def cluster_history(session: Session, cluster_id: str, *, scans: int = HISTORY_SCANS) -> History:
    """The cluster's last finished scans, oldest first (every number comes from the scan)."""
    rows = session.execute(
        select(ScanRun.started_at, ScanRun.counts)
        .where(ScanRun.cluster_id == cluster_id, ScanRun.state == ScanState.DONE)
        .order_by(ScanRun.id.desc())
        .limit(scans)
    ).all()
    rows = list(reversed(rows))
    history = History(labels=[], by_severity={s: [] for s in SEVERITIES}, changes=[])
    for started_at, stored in rows:
        counts = stored or {}
        history.labels.append(started_at.strftime("%m-%d %H:%M"))
        for severity, n in _severity_values(counts).items():
            history.by_severity[severity].append(n)
        history.changes.append(
            (int(counts.get("new", 0) or 0), int(counts.get("resolved", 0) or 0))
        )
    return history


def fleet_history(session: Session, *, now: datetime, days: int = HISTORY_DAYS) -> History:
    """Per day, the fleet's open findings per severity (each cluster counted by its latest
    finished scan up to that day) and the new/resolved findings of that day's scans."""
    start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = func.date(ScanRun.started_at)
    new = func.coalesce(ScanRun.counts["new"].as_integer(), 0)
    resolved = func.coalesce(ScanRun.counts["resolved"].as_integer(), 0)
    ranked = (
        select(
            ScanRun.cluster_id,
            day.label("day"),
            *(
                func.coalesce(ScanRun.counts[f"severity_{s}"].as_integer(), 0).label(s)
                for s in SEVERITIES
            ),
            func.sum(new).over(partition_by=(ScanRun.cluster_id, day)).label("new"),
            func.sum(resolved).over(partition_by=(ScanRun.cluster_id, day)).label("resolved"),
            func.row_number()
            .over(partition_by=(ScanRun.cluster_id, day), order_by=ScanRun.id.desc())
            .label("rank"),
        )
        .where(ScanRun.state == ScanState.DONE, ScanRun.started_at >= start)
        .subquery()
    )
    per_day: dict[str, dict[str, Any]] = defaultdict(dict)
    changes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in session.execute(select(ranked).where(ranked.c.rank == 1)):
        key = str(row.day)[:10]
        per_day[key][row.cluster_id] = [int(getattr(row, s)) for s in SEVERITIES]
        changes[key][0] += int(row.new or 0)
        changes[key][1] += int(row.resolved or 0)
    labels = [(start + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days)]
    latest: dict[str, list[int]] = {}
    history = History(labels=[], by_severity={s: [] for s in SEVERITIES}, changes=[])
    for label in labels:
        latest.update(per_day.get(label, {}))
        history.labels.append(label[5:])
        for i, severity in enumerate(SEVERITIES):
            history.by_severity[severity].append(sum(v[i] for v in latest.values()))
        history.changes.append((changes[label][0], changes[label][1]))
    return history


def exemption_coverage(session: Session) -> dict[int, int]:
    """How many findings each exemption covers right now (status exempted, by exemption id)."""
    rows = session.execute(
        select(Finding.exemption_id, func.count())
        .where(Finding.status == FindingStatus.EXEMPTED, Finding.exemption_id.is_not(None))
        .group_by(Finding.exemption_id)
    )
    return {int(exemption_id or 0): int(n) for exemption_id, n in rows}


# ------------------------------------------------------------------------------ audit and scans

READ_VERBS = ("list", "show", "read", "query", "search", "latest", "report", "run", "download")
AUDIT_KINDS = ("changes", "reads", "sign-ins", "all")


def _is_read() -> ColumnElement[bool]:
    return or_(*(AuditEntry.action.endswith(f".{verb}") for verb in READ_VERBS))


def _is_sign_in() -> ColumnElement[bool]:
    return AuditEntry.action.startswith("session.")


def audit_page(
    session: Session, *, kind: str, actor: str, action: str, page: int
) -> NumberedPage[AuditEntry]:
    """Audit entries, newest first: changes (default), reads, sign-ins or all; by actor and
    action (an exact action, or a prefix ending in '.', e.g. `exemption.`)."""
    where: list[ColumnElement[bool]] = []
    if kind == "changes":
        where += [~_is_read(), ~_is_sign_in()]
    elif kind == "reads":
        where.append(_is_read())
    elif kind == "sign-ins":
        where.append(_is_sign_in())
    if actor:
        where.append(AuditEntry.actor == actor)
    if action:
        where.append(
            AuditEntry.action.startswith(action)
            if action.endswith(".")
            else AuditEntry.action == action
        )
    total = int(session.scalar(select(func.count()).select_from(AuditEntry).where(*where)) or 0)
    entries = session.scalars(
        select(AuditEntry)
        .where(*where)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return NumberedPage(rows=list(entries), total=total, page=page)


def audit_actors_and_actions(session: Session) -> tuple[list[str], list[str]]:
    """The distinct actors and actions (the filter form's choices)."""
    actors = session.scalars(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor))
    actions = session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))
    return list(actors)[:200], list(actions)[:200]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanRow:
    """One scan on the scans page: what changed and what is open, not internal counters."""

    run: ScanRun
    new: int
    resolved: int
    open: int
    exempted: int
    by_severity: dict[str, int]
    has_severities: bool


def scan_rows(session: Session, *, cluster_id: str | None, page: int) -> tuple[list[ScanRow], int]:
    where = [ScanRun.cluster_id == cluster_id] if cluster_id else []
    total = int(session.scalar(select(func.count()).select_from(ScanRun).where(*where)) or 0)
    runs = session.scalars(
        select(ScanRun)
        .where(*where)
        .order_by(ScanRun.started_at.desc(), ScanRun.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    rows = []
    for run in runs:
        counts = run.counts or {}
        rows.append(
            ScanRow(
                run=run,
                new=int(counts.get("new", 0) or 0),
                resolved=int(counts.get("resolved", 0) or 0),
                open=open_after_scan(counts),
                exempted=int(counts.get("exempted", 0) or 0),
                by_severity=_severity_values(counts),
                has_severities=any(f"severity_{s}" in counts for s in SEVERITIES),
            )
        )
    return rows, total


def rule_titles(
    session: Session,
    rule_ids: Sequence[str],
    rule_info: Callable[[str], Any] | None = None,
) -> dict[str, str]:
    """Each rule's title: from the catalogue when wired in, else from its findings."""
    titles: dict[str, str] = {}
    for rule_id in set(rule_ids):
        info = rule_info(rule_id) if rule_info else None
        if info:
            titles[rule_id] = str(info.get("title", ""))
    missing = sorted(set(rule_ids) - set(titles))
    if missing:
        title = Finding.details["title"].as_string()
        titles.update(
            (rule_id, text or "")
            for rule_id, text in session.execute(
                select(Finding.rule_id, func.max(title))
                .where(Finding.rule_id.in_(missing))
                .group_by(Finding.rule_id)
            )
        )
    return titles
