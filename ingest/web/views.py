"""Admin page routes: fleet, cluster, resource, diff, rule, exemptions, scans, search, audit."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from contracts.resources import ResourceRef
from contracts.states import FindingStatus
from contracts.tasks import RESCAN
from contracts.timeline import TIMELINE_GROUPS
from ingest.context import ctx
from ingest.dispatch import enqueue_after_commit
from ingest.web import charts, manifest_view, markdown, posture, queries
from ingest.web import timeline as timeline_view
from ingest.web.filters import STATUS_CHOICES, FilterError, FindingFilter, page_number
from ingest.web.search import SearchError, SearchTimeout, run_search
from ingest.web.security import (
    admin_required,
    current_user,
    login_required,
)
from store.audit import record_action
from store.clusters import list_clusters
from store.exemptions import create_exemption, list_exemptions, revoke_exemption
from store.findings import status_counts
from store.manifests import find_object, object_history
from store.models import Cluster, Exemption, KubeObject, ManifestBody
from store.scans import list_scan_runs
from store.telemetry import collection_gaps, latest_ping
from store.timeline import timeline as read_timeline
from store.types import utcnow

STALE_AFTER = timedelta(minutes=15)
FLEET_PAGE_SIZE = 100
WORST_SHOWN = 5
SOURCE = "admin-pages"


def _db() -> Session:
    return ctx().sessions()


def _rule_info(rule_id: str) -> dict[str, Any] | None:
    """The rule's description from the catalogue the composition root wired in (if any)."""
    lookup: Callable[[str], dict[str, Any] | None] | None = ctx().extras.get("rule_info")
    return lookup(rule_id) if lookup else None


def _cluster_or_404(db: Session, cluster_id: str) -> Cluster:
    cluster = db.get(Cluster, cluster_id)
    if cluster is None:
        abort(404, description=f"no cluster {cluster_id!r}")
    return cluster


# ------------------------------------------------------------------------------ fleet


@login_required
def fleet() -> str:
    with _db() as db:
        now = utcnow()
        page = _page()
        team = request.args.get("team", "").strip()
        health = request.args.get("health", "").strip()
        everything = queries.fleet_overview(db, now=now, stale_after=STALE_AFTER)
        rows = [
            r
            for r in everything
            if (not team or r.team == team) and (not health or r.health == health)
        ]
        rows.sort(key=queries.FleetRow.worst_first_key)
        prefix = url_for("web.cluster_page", cluster_id="-").removesuffix("-")
        totals = {s: sum(r.open_by_severity.get(s, 0) for r in rows) for s in queries.SEVERITIES}
        history = queries.fleet_history(db, now=now)
        start = (page - 1) * FLEET_PAGE_SIZE
        return render_template(
            "web/fleet.html",
            rows=rows[start : start + FLEET_PAGE_SIZE],
            total_clusters=len(rows),
            all_clusters=len(everything),
            page=page,
            pages=max(1, -(-len(rows) // FLEET_PAGE_SIZE)),
            team=team,
            health=health,
            totals=totals,
            severities=queries.SEVERITIES,
            prefix=prefix,
            findings_url=url_for("web.findings"),
            trend_chart=charts.line_chart(
                "Open findings in the fleet per severity, per day",
                history.by_severity,
                history.labels,
            ),
            changes_chart=charts.paired_bars(
                "New and resolved findings in the fleet per day", history.changes, history.labels
            ),
        )


def _filter(**fixed: str) -> FindingFilter:
    """The findings filter named by the request's URL (a clear 400 on a bad value)."""
    try:
        return FindingFilter.from_args(request.args, **fixed)
    except FilterError as problem:
        abort(400, description=str(problem))


@login_required
def cluster_page(cluster_id: str) -> str:
    with _db() as db:
        cluster = _cluster_or_404(db, cluster_id)
        flt = _filter(cluster=cluster_id)
        summary = queries.summarise(db, flt)
        listing = queries.findings_page(db, flt)
        worst_first = FindingFilter(cluster=cluster_id, status="open", fixed=("cluster",))
        worst = (
            listing.rows
            if flt.query(page=None) == worst_first.query(page=None) and flt.page == 1
            else queries.findings_page(db, worst_first).rows
        )
        return render_template(
            "web/cluster.html",
            cluster=cluster,
            flt=flt,
            summary=summary,
            listing=listing,
            worst=worst[:WORST_SHOWN],
            changes=queries.last_scan_changes(db, cluster_id),
            charts=_cluster_charts(db, cluster_id, summary),
            scores=posture.cluster_scores(db, cluster_id, rule_info=ctx().extras.get("rule_info")),
            score_definition=posture.DEFINITION,
            counts=status_counts(db, cluster_id),
            scans=list_scan_runs(db, cluster_id=cluster_id, limit=10),
            gaps=collection_gaps(latest_ping(db, cluster_id)),
            severities=queries.SEVERITIES,
            statuses=STATUS_CHOICES,
        )


def _cluster_charts(db: Session, cluster_id: str, summary: queries.Summary) -> dict[str, Any]:
    history = queries.cluster_history(db, cluster_id)
    return {
        "severity": charts.breakdown(
            "Open findings by severity",
            [(s, summary.by_severity[s]["open"]) for s in queries.SEVERITIES],
            colours=charts.SEVERITY_COLOURS,
        ),
        "category": charts.breakdown("Open findings by category", summary.by_category[:12]),
        "trend": charts.line_chart(
            f"Open findings in {cluster_id} per severity, last {len(history.labels)} scans",
            history.by_severity,
            history.labels,
        ),
        "changes": charts.paired_bars(
            f"New and resolved findings per scan in {cluster_id}",
            history.changes,
            history.labels,
        ),
    }


@login_required
def findings() -> str:
    """Fleet-wide findings: every cluster, filtered, worst first, 100 a page."""
    with _db() as db:
        flt = _filter()
        return render_template(
            "web/findings.html",
            flt=flt,
            summary=queries.summarise(db, flt, with_rules=False),
            listing=queries.findings_page(db, flt),
            severities=queries.SEVERITIES,
            statuses=STATUS_CHOICES,
        )


@admin_required
def rescan(cluster_id: str) -> Response:
    with _db() as db:
        _cluster_or_404(db, cluster_id)
        record_action(
            db,
            actor=current_user().username,
            action="cluster.rescan",
            target=cluster_id,
            source=SOURCE,
        )
        db.commit()
    if enqueue_after_commit(ctx().dispatch, RESCAN, kwargs={"cluster_id": cluster_id}):
        flash(f"Rescan of {cluster_id} queued.", "ok")
    else:
        flash(
            f"Could not queue the rescan of {cluster_id}: the task queue is unavailable.", "error"
        )
    return redirect(url_for("web.cluster_page", cluster_id=cluster_id))


def _object_or_404(db: Session, cluster_id: str, object_id: int) -> KubeObject:
    obj = db.get(KubeObject, object_id)
    if obj is None or obj.cluster_id != cluster_id:
        abort(404, description="no such object in this cluster")
    return obj


@login_required
def resource(cluster_id: str, object_id: int) -> str:
    with _db() as db:
        cluster = _cluster_or_404(db, cluster_id)
        obj = _object_or_404(db, cluster_id, object_id)
        body = db.get(ManifestBody, obj.current_hash)
        findings = queries.object_findings(db, cluster_id, obj)
        lines = manifest_view.highlight(
            manifest_view.render(body.body if body else {}),
            [f.path for f in findings if f.path and f.status != FindingStatus.EXEMPTED],
        )
        versions = object_history(db, object_id)
        previous = {b.version_id: a for a, b in pairwise(versions)}
        origins = {}
        for f in findings:
            version = queries.version_at(versions, f.first_seen)
            if version is not None:
                origins[f.id] = (version, previous.get(version.version_id))
        wanted = _timeline_request({"before": request.args.get("before", "")})
        page = read_timeline(db, cluster_id, obj=obj, before=wanted.before, limit=wanted.limit)
        return render_template(
            "web/resource.html",
            cluster=cluster,
            obj=obj,
            ref=ResourceRef.from_key(obj.ref_key),
            lines=lines,
            findings=findings,
            origins=origins,
            versions=versions,
            page=page,
            diffs=timeline_view.diffs(db, page.entries),
        )


def _timeline_request(args: dict[str, str]) -> timeline_view.TimelineRequest:
    try:
        return timeline_view.parse_request(args)
    except timeline_view.TimelineRequestError as problem:
        abort(400, description=str(problem))


@login_required
def cluster_timeline(cluster_id: str) -> str:
    """A cluster's timeline, newest first, a keyset page at a time (`before`)."""
    types = ",".join(t for t in request.args.getlist("types") if t)
    limit = request.args.get("limit", "")
    wanted = _timeline_request(
        {"types": types, "before": request.args.get("before", ""), "limit": limit}
    )
    with _db() as db:
        cluster = _cluster_or_404(db, cluster_id)
        page = read_timeline(
            db, cluster_id, kinds=wanted.kinds, before=wanted.before, limit=wanted.limit
        )
        return render_template(
            "web/timeline.html",
            cluster=cluster,
            page=page,
            diffs=timeline_view.diffs(db, page.entries),
            wanted=wanted,
            groups=TIMELINE_GROUPS,
            types_arg=list(wanted.groups) if types else None,
            limit_arg=wanted.limit if limit else None,
        )


@login_required
def diff(cluster_id: str, object_id: int) -> str:
    with _db() as db:
        cluster = _cluster_or_404(db, cluster_id)
        obj = _object_or_404(db, cluster_id, object_id)
        history = object_history(db, object_id)
        versions = {v.version_id: v for v in history}
        try:
            old = versions[int(request.args.get("a", ""))]
            new = versions[int(request.args.get("b", ""))]
        except (KeyError, ValueError):
            abort(400, description="choose two versions of this object to compare")
        if old.first_seen > new.first_seen:
            old, new = new, old
        lines = manifest_view.diff(
            old.body,
            new.body,
            old_label=f"{old.first_seen:%Y-%m-%d %H:%M:%S} UTC (version {old.version_id})",
            new_label=f"{new.first_seen:%Y-%m-%d %H:%M:%S} UTC (version {new.version_id})",
        )
        findings = queries.object_findings(db, cluster_id, obj, with_resolved=True)
        return render_template(
            "web/diff.html",
            max_depth=manifest_view.MAX_MANIFEST_DEPTH,
            cluster=cluster,
            obj=obj,
            ref=ResourceRef.from_key(obj.ref_key),
            old=old,
            new=new,
            lines=lines,
            change=queries.change_findings(
                findings,
                history,
                old=old,
                new=new,
                evaluate=ctx().extras.get("object_violations"),
            ),
        )


@login_required
def rule(rule_id: str) -> str:
    with _db() as db:
        info = _rule_info(rule_id)
        sample = queries.rule_sample(db, rule_id)
        if info is None and sample is None:
            abort(404, description=f"no rule {rule_id!r} in the catalogue or in any finding")
        flt = _filter(rule=rule_id)
        lookup_doc: Callable[[str], str | None] | None = ctx().extras.get("rule_doc")
        doc = (lookup_doc(rule_id) if lookup_doc else None) or ""
        return render_template(
            "web/rule.html",
            rule_id=rule_id,
            info=info,
            doc_html=markdown.render_doc(doc) if doc else None,
            doc_lead=markdown.doc_lead(doc) if doc else "",
            reference=markdown.reference,
            sample=sample,
            per_cluster=queries.rule_counts_by_cluster(db, rule_id),
            flt=flt,
            listing=queries.findings_page(db, flt),
            severities=queries.SEVERITIES,
            statuses=STATUS_CHOICES,
        )


# ------------------------------------------------------------------------------ exemptions


def _expiry(raw: str) -> datetime:
    try:
        day = datetime.strptime(raw.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise ValueError("expires: give a date as YYYY-MM-DD") from None
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


def _exemptions_page(db: Session, form: Any) -> str:
    listed = sorted(
        list_exemptions(db, include_inactive=True),
        key=lambda e: (e.revoked_at is not None, -(e.id or 0)),
    )
    return render_template(
        "web/exemptions.html",
        exemptions=listed,
        titles=queries.rule_titles(
            db,
            [rule_id for e in listed for rule_id in e.rule_ids or []],
            ctx().extras.get("rule_info"),
        ),
        coverage=queries.exemption_coverage(db),
        clusters=list_clusters(db),
        now=utcnow(),
        form=form,
        accepting=bool(form.get("rules")),
    )


@login_required
def exemptions() -> str:
    with _db() as db:
        return _exemptions_page(db, request.args)


@admin_required
def exemption_create() -> str | Response:
    form = request.form
    rule_ids = [r.strip() for r in form.get("rules", "").replace(",", " ").split() if r.strip()]
    selector = {
        k: form.get(k, "").strip()
        for k in ("kind", "namespace", "name", "labels", "container")
        if form.get(k, "").strip()
    }
    cluster_id = form.get("cluster", "").strip() or None
    errors: list[str] = []
    if not rule_ids:
        errors.append("rules: name at least one rule id")
    if not form.get("reason", "").strip():
        errors.append("reason: say why this risk is accepted")
    expires_at = None
    try:
        expires_at = _expiry(form.get("expires", ""))
    except ValueError as problem:
        errors.append(str(problem))
    with _db() as db:
        if cluster_id and db.get(Cluster, cluster_id) is None:
            errors.append(f"cluster: no cluster {cluster_id!r}")
        if not errors:
            try:
                exemption = create_exemption(
                    db,
                    rule_ids=rule_ids,
                    reason=form.get("reason", ""),
                    created_by=current_user().username,
                    cluster_id=cluster_id,
                    selector=selector,
                    expires_at=expires_at,
                )
            except ValueError as problem:
                errors.append(str(problem))
            else:
                record_action(
                    db,
                    actor=current_user().username,
                    action="exemption.create",
                    target=f"exemption:{exemption.id}",
                    source=SOURCE,
                    details={
                        "rules": rule_ids,
                        "cluster": cluster_id,
                        "selector": selector,
                        "expires_at": expires_at.isoformat() if expires_at else None,
                    },
                )
                db.commit()
                flash(f"Exemption {exemption.id} created; it applies from the next scan.", "ok")
                return redirect(url_for("web.exemptions"))
        for error in errors:
            flash(error, "error")
        return _exemptions_page(db, form), 400  # type: ignore[return-value]


@admin_required
def exemption_expire(exemption_id: int) -> Response:
    with _db() as db:
        exemption = db.get(Exemption, exemption_id)
        if exemption is None:
            abort(404, description=f"no exemption {exemption_id}")
        revoke_exemption(db, exemption_id)
        record_action(
            db,
            actor=current_user().username,
            action="exemption.expire",
            target=f"exemption:{exemption_id}",
            source=SOURCE,
        )
        db.commit()
    flash(f"Exemption {exemption_id} expired; findings reopen at the next scan.", "ok")
    return redirect(url_for("web.exemptions"))


# ------------------------------------------------------------------------------ the rest


def _page() -> int:
    try:
        return page_number(request.args)
    except FilterError as problem:
        abort(400, description=str(problem))


@login_required
def scans() -> str:
    cluster_id = request.args.get("cluster", "").strip() or None
    page = _page()
    with _db() as db:
        rows, total = queries.scan_rows(db, cluster_id=cluster_id, page=page)
        return render_template(
            "web/scans.html",
            rows=rows,
            total=total,
            page=page,
            pages=max(1, -(-total // queries.PAGE_SIZE)),
            cluster_id=cluster_id,
            severities=queries.SEVERITIES,
            flower_url=ctx().extras.get("flower_url"),
        )


def _json_value(raw: str) -> tuple[bool, Any]:
    """The `value` URL parameter (JSON text) of a search; (False, None) when absent."""
    if not raw:
        return False, None
    try:
        return True, json.loads(raw)
    except ValueError:
        abort(400, description='value: give a JSON value, e.g. "nginx:1.27" or 8080')


@login_required
def search() -> tuple[str, int]:
    args = request.args
    path = args.get("path", "").strip()
    results = None
    hits: list[Any] = []
    error = None
    status = 200
    page = _page()
    wanted, value = _json_value(args.get("value", "").strip())
    between = [t for t in args.getlist("between") if t.strip()] or None
    if path:
        with _db() as db:
            try:
                results = run_search(
                    db,
                    path,
                    cluster_id=args.get("cluster") or None,
                    kind=args.get("kind") or None,
                    namespace=args.get("namespace") or None,
                    distinct=bool(args.get("distinct")) and not wanted,
                    limit=1000,
                    at=args.get("at", "").strip() or None,
                    between=between,
                )
            except SearchError as problem:
                error = str(problem)
                status = 503 if isinstance(problem, SearchTimeout) else 400
    if results is not None and not results.distinct:
        hits = [h for h in results.hits if not wanted or h.value == value]
    start = (page - 1) * queries.PAGE_SIZE
    return render_template(
        "web/search.html",
        form=args,
        results=results,
        hits=hits[start : start + queries.PAGE_SIZE],
        hit_total=len(hits),
        page=page,
        pages=max(1, -(-len(hits) // queries.PAGE_SIZE)),
        value_given=wanted,
        between=between or ["", ""],
        error=error,
    ), status


@login_required
def find_resource(cluster_id: str) -> Response:
    """From a search hit to the object's page (by its reference key)."""
    with _db() as db:
        _cluster_or_404(db, cluster_id)
        try:
            ref = ResourceRef.from_key(request.args.get("ref", ""))
        except (ValueError, TypeError):
            abort(400, description="ref: give apiVersion|kind|namespace|name")
        obj = find_object(db, cluster_id, ref)
        if obj is None:
            abort(404, description=f"no {ref} in {cluster_id}")
        return redirect(url_for("web.resource", cluster_id=cluster_id, object_id=obj.id))


@login_required
def audit() -> str:
    kind = request.args.get("kind", "changes")
    if kind not in queries.AUDIT_KINDS:
        abort(400, description=f"kind: one of {', '.join(queries.AUDIT_KINDS)}")
    actor = request.args.get("actor", "").strip()[:200]
    action = request.args.get("action", "").strip()[:100]
    page = _page()
    with _db() as db:
        actors, actions = queries.audit_actors_and_actions(db)
        return render_template(
            "web/audit.html",
            listing=queries.audit_page(db, kind=kind, actor=actor, action=action, page=page),
            kind=kind,
            kinds=queries.AUDIT_KINDS,
            actor=actor,
            action=action,
            actors=actors,
            actions=actions,
        )


def unknown(unknown: str) -> Response:
    """Every URL under /admin that no page answers."""
    abort(404, description=f"there is no admin page at /admin/{unknown}")


def error_page(error: Any) -> tuple[str, int]:
    """Refusals on the admin pages are pages too (never a stack trace, never JSON)."""
    return render_template(
        "web/error.html",
        code=error.code,
        title=error.name,
        detail=getattr(error, "description", ""),
    ), error.code
