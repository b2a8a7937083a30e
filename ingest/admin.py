"""The signed admin API under /v1/admin: clusters, keys, telemetry, search, findings,
exemptions and rescans. Every request is signed by an admin key (roles viewer and admin) and
every action is written to the audit log with the key's name."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from contracts.advisories import AdvisoryError, parse_advisories
from contracts.severity import Severity
from contracts.states import DeliveryState, ScanTrigger
from contracts.tasks import DELIVER_REPORTS, EVALUATE_FLEET, RESCAN, SCAN_FLEET
from ingest.auth import Caller, authenticate_admin, http_request
from ingest.body import parse_json, read_capped, validate, validator_for
from ingest.caps import ADMIN_API_BODY_LIMIT
from ingest.context import IngestContext, ctx
from ingest.dispatch import enqueue_after_commit
from ingest.keys import KeyFormatError, fingerprint, parse_public_key
from ingest.problems import (
    CONFLICT,
    FORBIDDEN_ROLE,
    Problem,
    bad_request,
    not_found,
    refuse_nul_in_url,
)
from ingest.push import CLUSTER_ID
from ingest.reports_api import REPORT_FORMATS, render_report
from ingest.web import timeline as timeline_view
from ingest.web.search import PeriodError, SearchError, SearchResult, SearchTimeout, run_search
from reports.channels import ChannelError, check_channel, describe
from store import (
    admin_keys,
    advisories,
    audit,
    clusters,
    deliveries,
    exemptions,
    images,
    scans,
    telemetry,
)
from store import timeline as timelines
from store.errors import ClusterExists, ClusterNotFound, KeyExists, KeyNotFound
from store.models import AdminKey, Advisory, Cluster, ClusterKey, Delivery, Exemption, Finding

log = logging.getLogger("k8smon.ingest")
blueprint = Blueprint("admin", __name__, url_prefix="/v1/admin")


@blueprint.before_request
def _refuse_nul() -> None:
    refuse_nul_in_url(request.path, request.query_string.decode("latin-1"))


MAX_ACTIVE_KEYS = 2
ROLE_RANK = {"viewer": 0, "admin": 1}

Handler = Callable[..., Any]


def admin_route(*, role: str, action: str) -> Callable[[Handler], Handler]:
    """Authenticate, check the role, run the handler in one transaction, audit, commit.

    The handler gets `(session, caller, body, **view_args)` and returns (payload, status,
    audit target, audit details).
    """

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        def view(**view_args: Any) -> Response:
            context = ctx()
            raw = read_capped(
                request.stream, declared=request.content_length, limit=ADMIN_API_BODY_LIMIT
            )
            with context.sessions() as session:
                caller = authenticate_admin(
                    session,
                    http_request(request, raw),
                    nonces=context.nonces,
                    window_seconds=context.settings.signature_window_seconds,
                    clock=context.clock,
                )
                g.k8smon_key_id = caller.key_id
                try:
                    if ROLE_RANK.get(caller.role or "", -1) < ROLE_RANK[role]:
                        raise Problem(
                            403, FORBIDDEN_ROLE, "Forbidden", f"this action needs the {role} role"
                        )
                    body = parse_json(raw) if raw else None
                    payload, status, target, details = handler(session, caller, body, **view_args)
                except Problem as refused:
                    session.rollback()
                    _audit_refusal(
                        context, caller, action=action, problem=refused, view_args=view_args
                    )
                    raise
                audit.record_action(
                    session,
                    actor=caller.admin_name or caller.key_id,
                    action=action,
                    target=target,
                    details=details,
                    source="admin-api",
                )
                session.commit()
            after = g.pop("k8smon_after_commit", None)
            if after is not None:
                after(context)
            log.info(
                json.dumps(
                    {
                        "event": "admin_action",
                        "action": action,
                        "actor": caller.admin_name,
                        "target": target,
                    }
                )
            )
            response = payload if isinstance(payload, Response) else jsonify(payload)
            response.status_code = status
            return response

        return view

    return decorate


def _audit_refusal(
    context: IngestContext,
    caller: Caller,
    *,
    action: str,
    problem: Problem,
    view_args: dict[str, Any],
) -> None:
    """An authenticated admin's refused request is an action too: record it on its own."""
    with context.sessions() as session:
        audit.record_action(
            session,
            actor=caller.admin_name or caller.key_id,
            action=f"{action}.refused",
            target="/".join(str(v) for v in view_args.values()) or None,
            details={"status": problem.status, "reason": problem.reason},
            source="admin-api",
        )
        session.commit()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _key_json(key: ClusterKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "fingerprint": fingerprint(key.public_key),
        "created_at": _iso(key.created_at),
        "revoked_at": _iso(key.revoked_at),
    }


def _cluster_json(cluster: Cluster, *, keys: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": cluster.id,
        "display_name": cluster.display_name,
        "team": cluster.team,
        "channel": cluster.channel,
        "labels": cluster.labels or {},
        "status": cluster.status,
        "created_at": _iso(cluster.created_at),
        "current_digest": cluster.current_digest,
        "state_updated_at": _iso(cluster.state_updated_at),
        "last_telemetry_at": _iso(cluster.last_telemetry_at),
    }
    if keys:
        data["keys"] = [_key_json(k) for k in cluster.keys]
    return data


MAX_SEARCH_MATCHES = 5000
MAX_DISTINCT_VALUES = 100_000
DEFAULT_DISTINCT_VALUES = 10_000
# Text limits are the columns' own (store.models): a longer value is a 400 naming the field.
_STR = {"type": ["string", "null"], "maxLength": 200}  # display_name, team: varchar(200)
_CHANNEL = {"type": ["string", "null"], "maxLength": 500}  # channel: varchar(500)
_CLUSTER_REF = {"anyOf": [{"type": "null"}, {"type": "string", "pattern": CLUSTER_ID.pattern}]}
_GLOBS = {
    "anyOf": [
        {"type": "string", "minLength": 1, "maxLength": 253},
        {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 253},
            "minItems": 1,
            "maxItems": 100,
        },
    ]
}
# What `workers.services.exemptions` matches on: globs per field, labels as `k=v,...` or a map.
SELECTOR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "kind": _GLOBS,
        "namespace": _GLOBS,
        "name": _GLOBS,
        "container": _GLOBS,
        "labels": {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": 1000},
                {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 64,
                    "propertyNames": {"maxLength": 317},
                    "additionalProperties": {"type": "string", "maxLength": 63},
                },
            ]
        },
    },
}
_LABELS = {
    "type": "object",
    "additionalProperties": {"type": "string", "maxLength": 200},
    "maxProperties": 64,
}
_KEY = {
    "type": "object",
    "required": ["public_key"],
    "additionalProperties": False,
    "properties": {
        "key_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "public_key": {"type": "string", "minLength": 1, "maxLength": 1000},
    },
}
CLUSTER_CREATE_SCHEMA = {
    "type": "object",
    "required": ["id"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": CLUSTER_ID.pattern},
        "display_name": _STR,
        "team": _STR,
        "channel": _CHANNEL,
        "labels": _LABELS,
        "keys": {"type": "array", "items": _KEY, "maxItems": MAX_ACTIVE_KEYS},
    },
}
CLUSTER_UPDATE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "display_name": {"type": "string", "minLength": 1, "maxLength": 200},
        "team": _STR,
        "channel": _CHANNEL,
        "labels": _LABELS,
        "status": {"enum": ["active", "disabled"]},
    },
}
SEARCH_SCHEMA = {
    "type": "object",
    "required": ["path"],
    "additionalProperties": False,
    "properties": {
        "path": {"type": "string", "minLength": 1, "maxLength": 2000},
        "clusters": {
            "type": "array",
            "items": {"type": "string", "maxLength": 63},
            "maxItems": 1000,
        },
        "kind": {"type": "string", "maxLength": 200},
        "namespace": {"type": "string", "maxLength": 253},
        "distinct": {"type": "boolean"},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_DISTINCT_VALUES},
        # Back in time (ISO 8601 with Z or an offset): the versions current at `at`, or at
        # some instant of `between` [start, end].
        "at": {"type": "string", "maxLength": 64},
        "between": {
            "type": "array",
            "items": {"type": "string", "maxLength": 64},
            "minItems": 2,
            "maxItems": 2,
        },
    },
    # `limit` caps matching objects, or with `distinct` the distinct values returned (every
    # match is counted either way).
    "if": {"required": ["distinct"], "properties": {"distinct": {"const": True}}},
    "then": {"properties": {"limit": {"maximum": MAX_DISTINCT_VALUES}}},
    "else": {"properties": {"limit": {"maximum": MAX_SEARCH_MATCHES}}},
}
EXEMPTION_SCHEMA = {
    "type": "object",
    "required": ["rule_ids", "reason"],
    "additionalProperties": False,
    "properties": {
        "rule_ids": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 64},
            "minItems": 1,
        },
        "reason": {"type": "string", "minLength": 1, "maxLength": 2000},
        "cluster_id": _CLUSTER_REF,
        "selector": SELECTOR_SCHEMA,
        "expires_at": {"type": ["string", "null"], "maxLength": 40},
    },
}
RESCAN_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"cluster_id": _CLUSTER_REF},
}


def _limit(*, default: int, maximum: int) -> int:
    """`?limit=` clamped to 1..maximum; not a whole number: 400."""
    try:
        return min(max(int(request.args.get("limit", str(default))), 1), maximum)
    except ValueError:
        raise bad_request("bad_request", "limit must be a whole number") from None


def _require(body: Any, schema: dict[str, Any]) -> dict[str, Any]:
    if body is None:
        raise bad_request("schema_violation", "a JSON body is required")
    validate(body, validator_for(schema))
    return body


def _public_key(text: str) -> bytes:
    try:
        return parse_public_key(text)
    except KeyFormatError as problem:
        raise bad_request("invalid_public_key", str(problem)) from None


def _reachable_channel(spec: dict[str, Any]) -> None:
    """Refuse (422) a channel that no configured delivery method can reach."""
    channel = spec.get("channel")
    if not channel:
        return
    try:
        check_channel(channel, settings=ctx().settings)
    except ChannelError as problem:
        raise Problem(422, "unreachable_channel", "Unreachable channel", str(problem)) from None


def _cluster(session: Session, cluster_id: str) -> Cluster:
    try:
        return clusters.get_cluster(session, cluster_id)
    except ClusterNotFound:
        raise not_found(f"no cluster {cluster_id!r}") from None


def _add_key(session: Session, cluster_id: str, spec: dict[str, Any]) -> ClusterKey:
    if len(clusters.active_cluster_keys(session, cluster_id)) >= MAX_ACTIVE_KEYS:
        raise Problem(
            409,
            CONFLICT,
            "Conflict",
            f"a cluster has at most {MAX_ACTIVE_KEYS} active keys: revoke one first",
        )
    public_key = _public_key(spec["public_key"])
    # Without a key id, one is derived from the key: `<cluster>-<12 hex of its SHA-256>`.
    key_id = spec.get("key_id") or f"{cluster_id}-{hashlib.sha256(public_key).hexdigest()[:12]}"
    try:
        return clusters.add_cluster_key(session, cluster_id, key_id=key_id, public_key=public_key)
    except KeyExists:
        raise Problem(409, CONFLICT, "Conflict", f"key id {key_id!r} is taken") from None


# ---- clusters ---------------------------------------------------------------------------


@blueprint.get("/clusters")
@admin_route(role="viewer", action="clusters.list")
def list_clusters(session: Session, caller: Caller, body: Any) -> Any:
    status = request.args.get("status")
    rows = clusters.list_clusters(session, status=status if status else None)
    return {"clusters": [_cluster_json(c) for c in rows]}, 200, None, {}


@blueprint.post("/clusters")
@admin_route(role="admin", action="clusters.register")
def register_cluster(session: Session, caller: Caller, body: Any) -> Any:
    spec = _require(body, CLUSTER_CREATE_SCHEMA)
    _reachable_channel(spec)
    try:
        cluster = clusters.create_cluster(
            session,
            spec["id"],
            display_name=spec.get("display_name"),
            team=spec.get("team"),
            channel=spec.get("channel"),
            labels=spec.get("labels"),
        )
    except ClusterExists:
        raise Problem(409, CONFLICT, "Conflict", f"cluster {spec['id']!r} exists") from None
    for key in spec.get("keys") or []:
        _add_key(session, cluster.id, key)
    session.refresh(cluster)
    return _cluster_json(cluster), 201, cluster.id, {"keys": [k.key_id for k in cluster.keys]}


@blueprint.get("/clusters/<cluster_id>")
@admin_route(role="viewer", action="clusters.show")
def show_cluster(session: Session, caller: Caller, body: Any, cluster_id: str) -> Any:
    return _cluster_json(_cluster(session, cluster_id)), 200, cluster_id, {}


@blueprint.patch("/clusters/<cluster_id>")
@admin_route(role="admin", action="clusters.update")
def update_cluster(session: Session, caller: Caller, body: Any, cluster_id: str) -> Any:
    changes = _require(body, CLUSTER_UPDATE_SCHEMA)
    _cluster(session, cluster_id)
    _reachable_channel(changes)
    cluster = clusters.update_cluster(session, cluster_id, **changes)
    return _cluster_json(cluster), 200, cluster_id, {"changes": changes}


@blueprint.post("/clusters/<cluster_id>/disable")
@admin_route(role="admin", action="clusters.disable")
def disable_cluster(session: Session, caller: Caller, body: Any, cluster_id: str) -> Any:
    _cluster(session, cluster_id)
    cluster = clusters.update_cluster(session, cluster_id, status="disabled")
    return _cluster_json(cluster), 200, cluster_id, {}


@blueprint.post("/clusters/<cluster_id>/keys")
@admin_route(role="admin", action="keys.add")
def add_key(session: Session, caller: Caller, body: Any, cluster_id: str) -> Any:
    spec = _require(body, _KEY)
    _cluster(session, cluster_id)
    key = _add_key(session, cluster_id, spec)
    return (
        _key_json(key),
        201,
        f"{cluster_id}/{key.key_id}",
        {"fingerprint": fingerprint(key.public_key)},
    )


@blueprint.delete("/clusters/<cluster_id>/keys/<key_id>")
@admin_route(role="admin", action="keys.revoke")
def revoke_key(session: Session, caller: Caller, body: Any, cluster_id: str, key_id: str) -> Any:
    try:
        key = clusters.revoke_cluster_key(session, cluster_id, key_id)
    except KeyNotFound:
        raise not_found(f"cluster {cluster_id!r} has no key {key_id!r}") from None
    return _key_json(key), 200, f"{cluster_id}/{key_id}", {}


@blueprint.get("/clusters/<cluster_id>/report")
@admin_route(role="viewer", action="clusters.report")
def cluster_report(session: Session, caller: Caller, body: Any, cluster_id: str) -> Any:
    fmt = request.args.get("format", "json")
    if fmt not in REPORT_FORMATS:
        raise bad_request("bad_request", f"format must be one of {', '.join(REPORT_FORMATS)}")
    _cluster(session, cluster_id)
    response = render_report(session, cluster_id, fmt=fmt, public_url=ctx().settings.public_url)
    return response, 200, cluster_id, {"format": fmt}


@blueprint.get("/clusters/<cluster_id>/timeline")
@admin_route(role="viewer", action="timeline.read")
def cluster_timeline(session: Session, caller: Caller, body: Any, cluster_id: str) -> Any:
    """Newest first, one keyset page: resources created/changed/deleted, findings opened and
    resolved with the change that did it, scans. `kind` and `name` (with `namespace`, and
    `api_version` when two API groups share a kind) narrow it to one resource, whose entries
    carry each change's diff; `diffs=1` adds them to a cluster's too."""
    args = request.args
    try:
        wanted = timeline_view.parse_request(args)
    except timeline_view.TimelineRequestError as problem:
        raise bad_request("bad_request", str(problem)) from None
    _cluster(session, cluster_id)
    obj = None
    if args.get("kind") or args.get("name"):
        if not (args.get("kind") and args.get("name")):
            raise bad_request("bad_request", "kind and name: give both to choose a resource")
        obj = timelines.find_resource(
            session,
            cluster_id,
            kind=args["kind"],
            name=args["name"],
            namespace=args.get("namespace") or None,
            api_version=args.get("api_version") or None,
        )
        if obj is None:
            where = f"{args.get('namespace')}/" if args.get("namespace") else ""
            raise not_found(f"no {args['kind']} {where}{args['name']} in {cluster_id!r}")
    page = timelines.timeline(
        session, cluster_id, obj=obj, kinds=wanted.kinds, before=wanted.before, limit=wanted.limit
    )
    with_diffs = obj is not None if "diffs" not in args else args["diffs"] in ("1", "true")
    changes = timeline_view.diffs(session, page.entries) if with_diffs else {}
    entries = [
        timeline_view.entry_json(
            e, changes.get(e.change.version_id) if e.change is not None else None
        )
        for e in page.entries
    ]
    resource = None
    if obj is not None:
        resource = {
            "apiVersion": obj.api_version,
            "kind": obj.kind,
            "namespace": obj.namespace or None,
            "name": obj.name,
            "object_id": obj.id,
            "deleted_at": _iso(obj.deleted_at),
        }
    answer = {
        "cluster_id": cluster_id,
        "resource": resource,
        "types": list(wanted.groups),
        "entries": entries,
        "count": len(entries),
        "next_cursor": page.next_cursor,
    }
    target = cluster_id if obj is None else f"{cluster_id}/{obj.ref_key}"
    return answer, 200, target, {"types": list(wanted.groups)}


@blueprint.get("/scans")
@admin_route(role="viewer", action="scans.list")
def list_scans(session: Session, caller: Caller, body: Any) -> Any:
    limit = _limit(default=50, maximum=1000)
    runs = scans.list_scan_runs(
        session, cluster_id=request.args.get("cluster") or None, limit=limit
    )
    return (
        {
            "scans": [
                {
                    "id": r.id,
                    "cluster_id": r.cluster_id,
                    "trigger": r.trigger,
                    "state": r.state,
                    "started_at": _iso(r.started_at),
                    "finished_at": _iso(r.finished_at),
                    "duration_s": r.duration_s,
                    "object_count": r.object_count,
                    "counts": r.counts or {},
                    "errors": r.errors or [],
                    "task_id": r.task_id,
                    "failure_reason": r.failure_reason,
                    "redrives": r.redrives or 0,
                    "heartbeat_at": _iso(r.heartbeat_at),
                    "deadline_at": _iso(r.deadline_at),
                }
                for r in runs
            ]
        },
        200,
        None,
        {},
    )


# ---- telemetry, search, findings ----------------------------------------------------------


@blueprint.get("/telemetry")
@admin_route(role="viewer", action="telemetry.latest")
def latest_telemetry(session: Session, caller: Caller, body: Any) -> Any:
    now = datetime.fromtimestamp(ctx().clock(), UTC)
    rows = []
    for cluster, ping in telemetry.latest_telemetry(session):
        rows.append(
            {
                "cluster_id": cluster.id,
                "status": cluster.status,
                "received_at": _iso(ping.received_at) if ping else None,
                "staleness_seconds": round((now - ping.received_at).total_seconds(), 3)
                if ping
                else None,
                "agent_version": ping.agent_version if ping else None,
                "kubernetes_version": ping.kubernetes_version if ping else None,
                "platform": ping.platform if ping else None,
                "node_count": ping.node_count if ping else None,
                "object_count": ping.object_count if ping else None,
                "errors": (ping.errors or {}) if ping else {},
                # What the agent reported about its latest snapshot push (result, type, digest,
                # objects, at, status, detail); null before the first ping that carried it.
                "last_push": (ping.details or {}).get("last_push") if ping else None,
                **telemetry.collection_gaps(ping),
            }
        )
    return {"clusters": rows}, 200, None, {}


@blueprint.post("/search")
@admin_route(role="viewer", action="manifests.search")
def search(session: Session, caller: Caller, body: Any) -> Any:
    spec = _require(body, SEARCH_SCHEMA)
    audit_details = {"path": spec["path"], "clusters": spec.get("clusters")}
    for moment in ("at", "between"):
        if moment in spec:
            audit_details[moment] = spec[moment]
    distinct = bool(spec.get("distinct"))
    result = _run_search(
        session,
        spec,
        distinct=distinct,
        limit=spec.get("limit", DEFAULT_DISTINCT_VALUES if distinct else 500),
    )
    if distinct:
        values = [
            {"value": v.value, "occurrences": v.occurrences, "clusters": v.clusters}
            for v in result.values
        ]
        answer = {"distinct": True, "values": values, "count": len(values)}
        return (
            {**answer, "truncated": result.truncated},
            200,
            None,
            {**audit_details, "distinct": True},
        )
    matches = [m.as_json() for m in result.matches]
    answer = {"matches": matches, "count": len(matches), "truncated": result.truncated}
    return answer, 200, None, audit_details


def _timeout_problem(problem: SearchTimeout) -> Problem:
    return Problem(
        503, "search_timeout", "Search timed out", str(problem), headers={"Retry-After": "60"}
    )


def _run_search(
    session: Session, spec: dict[str, Any], *, distinct: bool, limit: int
) -> SearchResult:
    """The one search (store.search) under the configured time limit; refusals as problems."""
    try:
        return run_search(
            session,
            spec["path"],
            cluster_ids=spec.get("clusters"),
            kind=spec.get("kind"),
            namespace=spec.get("namespace"),
            distinct=distinct,
            limit=limit,
            at=spec.get("at"),
            between=spec.get("between"),
        )
    except SearchTimeout as problem:
        raise _timeout_problem(problem) from None
    except PeriodError as problem:
        if problem.oldest is not None:
            raise Problem(
                400,
                "before_retention",
                "Before the retention window",
                str(problem),
                extra={"oldest": _iso(problem.oldest)},
            ) from None
        raise bad_request("invalid_time", str(problem)[:300]) from None
    except SearchError as problem:
        raise bad_request("invalid_json_path", str(problem)[:300]) from None


@blueprint.get("/images")
@admin_route(role="viewer", action="images.list")
def fleet_images(session: Session, caller: Caller, body: Any) -> Any:
    """Every image in the fleet's workloads, counted once per workload (`store.images`)."""
    limit = _limit(default=10_000, maximum=100_000)
    wanted = [c for c in request.args.getlist("cluster") if c]
    try:
        found, truncated = images.fleet_images(
            session,
            cluster_ids=wanted,
            limit=limit,
            timeout_seconds=ctx().settings.search_timeout_seconds,
        )
    except SearchTimeout as problem:
        raise _timeout_problem(problem) from None
    rows = [i.as_json() for i in found]
    return {"images": rows, "count": len(rows), "truncated": truncated}, 200, None, {}


@blueprint.get("/images/inventory")
@admin_route(role="viewer", action="images.inventory")
def image_inventory(session: Session, caller: Caller, body: Any) -> Any:
    """Every (workload, container, image) the fleet runs: repository, tag, digest, where,
    since when (`store.images.image_uses`); `repository` filters by a glob."""
    limit = _limit(default=10_000, maximum=100_000)
    wanted = [c for c in request.args.getlist("cluster") if c]
    pattern = request.args.get("repository", "").strip()
    try:
        uses = images.image_uses(
            session, cluster_ids=wanted, timeout_seconds=ctx().settings.search_timeout_seconds
        )
    except SearchTimeout as problem:
        raise _timeout_problem(problem) from None
    rows = [u.as_json() for u in uses]
    if pattern:
        rows = [
            r
            for r in rows
            if fnmatch.fnmatchcase(r["repository"], pattern)
            or fnmatch.fnmatchcase(r["image"], pattern)
        ]
    answer = {
        "images": rows[:limit],
        "count": min(len(rows), limit),
        "truncated": len(rows) > limit,
    }
    return answer, 200, None, {}


# ---- advisories ----------------------------------------------------------------------------


def _advisory_json(row: Advisory) -> dict[str, Any]:
    return {
        **row.record,
        "loaded_by": row.loaded_by,
        "loaded_at": _iso(row.loaded_at),
    }


def _evaluate_fleet_after_commit() -> None:
    """Findings for a loaded (or deleted) advisory appear at once: the fleet evaluation is
    enqueued as soon as the change is committed."""

    def after(context: IngestContext) -> None:
        enqueue_after_commit(context.dispatch, EVALUATE_FLEET, kwargs={})

    g.k8smon_after_commit = after


@blueprint.get("/advisories")
@admin_route(role="viewer", action="advisories.list")
def list_advisories(session: Session, caller: Caller, body: Any) -> Any:
    rows = advisories.list_advisories(session)
    return {"advisories": [_advisory_json(r) for r in rows], "count": len(rows)}, 200, None, {}


@blueprint.post("/advisories")
@admin_route(role="admin", action="advisories.load")
def load_advisories(session: Session, caller: Caller, body: Any) -> Any:
    """One advisory record, a list, or `{"advisories": [...]}` (`contracts.advisories`):
    all valid or nothing stored (400 naming the field)."""
    if body is None:
        raise bad_request("schema_violation", "a JSON body is required")
    try:
        parsed = parse_advisories(body)
    except AdvisoryError as problem:
        raise bad_request("invalid_advisory", str(problem)[:500]) from None
    outcome = advisories.load_advisories(
        session, parsed, loaded_by=caller.admin_name or caller.key_id
    )
    _evaluate_fleet_after_commit()
    answer = {
        "created": outcome.created,
        "replaced": outcome.replaced,
        "count": len(parsed),
        "evaluation": "requested",
    }
    ids = [a.id for a in parsed]
    target = ids[0] if len(ids) == 1 else f"{len(ids)} advisories"
    return answer, 201 if outcome.created else 200, target, {"ids": ids[:100]}


@blueprint.delete("/advisories/<advisory_id>")
@admin_route(role="admin", action="advisories.delete")
def delete_advisory(session: Session, caller: Caller, body: Any, advisory_id: str) -> Any:
    if not advisories.delete_advisory(session, advisory_id):
        raise not_found(f"no advisory {advisory_id!r}")
    _evaluate_fleet_after_commit()
    return {"id": advisory_id, "deleted": True, "evaluation": "requested"}, 200, advisory_id, {}


def _finding_json(f: Finding) -> dict[str, Any]:
    return {
        "id": f.id,
        "cluster_id": f.cluster_id,
        "rule_id": f.rule_id,
        "severity": f.severity,
        "status": f.status,
        "message": f.message,
        "path": f.path,
        "resource": {
            "apiVersion": f.api_version,
            "kind": f.kind,
            "namespace": f.namespace,
            "name": f.name,
        },
        "container": f.container,
        "first_seen": _iso(f.first_seen),
        "last_seen": _iso(f.last_seen),
        "resolved_at": _iso(f.resolved_at),
        "exemption_id": f.exemption_id,
    }


@blueprint.get("/findings")
@admin_route(role="viewer", action="findings.query")
def findings(session: Session, caller: Caller, body: Any) -> Any:
    """Most severe first, then newest; `severity` and `status` take comma-separated lists."""
    rank = case({s.value: s.rank for s in Severity}, value=Finding.severity, else_=-1)
    query = select(Finding).order_by(rank.desc(), Finding.first_seen.desc(), Finding.id.desc())
    filters = {}
    for arg, column in (
        ("cluster", Finding.cluster_id),
        ("rule", Finding.rule_id),
        ("status", Finding.status),
        ("severity", Finding.severity),
        ("kind", Finding.kind),
        ("namespace", Finding.namespace),
    ):
        value = request.args.get(arg)
        if value and arg in ("status", "severity"):
            query = query.where(column.in_([v.strip() for v in value.split(",")]))
            filters[arg] = value
        elif value:
            query = query.where(column == value)
            filters[arg] = value
    limit = _limit(default=200, maximum=5000)
    rows = session.scalars(query.limit(limit)).all()
    return {"findings": [_finding_json(f) for f in rows], "count": len(rows)}, 200, None, filters


# ---- exemptions and rescans ----------------------------------------------------------------


def _exemption_json(e: Exemption) -> dict[str, Any]:
    return {
        "id": e.id,
        "rule_ids": e.rule_ids,
        "scope": e.scope,
        "cluster_id": e.cluster_id,
        "selector": e.selector or {},
        "reason": e.reason,
        "created_by": e.created_by,
        "created_at": _iso(e.created_at),
        "expires_at": _iso(e.expires_at),
        "revoked_at": _iso(e.revoked_at),
    }


@blueprint.get("/exemptions")
@admin_route(role="viewer", action="exemptions.list")
def list_exemptions(session: Session, caller: Caller, body: Any) -> Any:
    rows = exemptions.list_exemptions(
        session,
        cluster_id=request.args.get("cluster") or None,
        include_inactive=request.args.get("all") in ("1", "true"),
    )
    return {"exemptions": [_exemption_json(e) for e in rows]}, 200, None, {}


@blueprint.post("/exemptions")
@admin_route(role="admin", action="exemptions.create")
def create_exemption(session: Session, caller: Caller, body: Any) -> Any:
    spec = _require(body, EXEMPTION_SCHEMA)
    expires_at = None
    if spec.get("expires_at"):
        try:
            expires_at = datetime.fromisoformat(spec["expires_at"])
        except ValueError:
            raise bad_request("schema_violation", "$.expires_at: not an ISO 8601 time") from None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
    if spec.get("cluster_id"):
        _cluster(session, spec["cluster_id"])
    try:
        exemption = exemptions.create_exemption(
            session,
            rule_ids=spec["rule_ids"],
            reason=spec["reason"],
            created_by=caller.admin_name or caller.key_id,
            cluster_id=spec.get("cluster_id"),
            selector=spec.get("selector"),
            expires_at=expires_at,
        )
    except ValueError as problem:
        raise bad_request("schema_violation", str(problem)) from None
    return (
        _exemption_json(exemption),
        201,
        f"exemption/{exemption.id}",
        {"rule_ids": spec["rule_ids"], "reason": spec["reason"]},
    )


@blueprint.delete("/exemptions/<int:exemption_id>")
@admin_route(role="admin", action="exemptions.revoke")
def revoke_exemption(session: Session, caller: Caller, body: Any, exemption_id: int) -> Any:
    existing = session.get(Exemption, exemption_id)
    if existing is not None and existing.revoked_at is not None:
        raise not_found(f"exemption {exemption_id} was already removed")
    if not exemptions.revoke_exemption(session, exemption_id):
        raise not_found(f"no exemption {exemption_id}")
    return {"id": exemption_id, "revoked": True}, 200, f"exemption/{exemption_id}", {}


@blueprint.post("/rescan")
@admin_route(role="admin", action="scan.trigger")
def rescan(session: Session, caller: Caller, body: Any) -> Any:
    spec = _require(body if body is not None else {}, RESCAN_SCHEMA)
    cluster_id = spec.get("cluster_id")
    if cluster_id:
        _cluster(session, cluster_id)

    def after(context: IngestContext) -> None:
        # One cluster: `k8smon.rescan(cluster_id=…)`; every cluster: `k8smon.scan_fleet(trigger=…)`.
        task, kwargs = (
            (RESCAN, {"cluster_id": cluster_id})
            if cluster_id
            else (SCAN_FLEET, {"trigger": ScanTrigger.RESCAN.value})
        )
        enqueue_after_commit(context.dispatch, task, kwargs=kwargs)

    g.k8smon_after_commit = after
    return {"status": "requested", "cluster_id": cluster_id}, 202, cluster_id or "*", {}


def _delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "cluster_id": d.cluster_id,
        "scan_id": d.scan_run_id,
        "channel": d.channel,
        "state": d.state,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "idempotency_key": d.idempotency_key,
        "created_at": _iso(d.created_at),
        "last_attempt_at": _iso(d.last_attempt_at),
        "next_attempt_at": _iso(d.next_attempt_at),
        "sent_at": _iso(d.sent_at),
        "dead_at": _iso(d.dead_at),
    }


@blueprint.get("/deliveries")
@admin_route(role="viewer", action="deliveries.list")
def list_deliveries(session: Session, caller: Caller, body: Any) -> Any:
    """Report deliveries, newest first; `state=dead` lists the dead letters."""
    state = request.args.get("state") or None
    if state is not None and state not in set(DeliveryState):
        raise bad_request("bad_request", f"state must be one of {', '.join(DeliveryState)}")
    rows = deliveries.list_deliveries(
        session,
        state=DeliveryState(state) if state else None,
        limit=_limit(default=200, maximum=1000),
    )
    return {"deliveries": [_delivery_json(d) for d in rows]}, 200, None, {}


@blueprint.post("/deliveries/<int:delivery_id>/resend")
@admin_route(role="admin", action="delivery.resend")
def resend_delivery(session: Session, caller: Caller, body: Any, delivery_id: int) -> Any:
    """Re-send a dead letter: due at once, a fresh retry window, the same idempotency key."""
    try:
        delivery = deliveries.resend(session, delivery_id)
    except LookupError as missing:
        raise not_found(str(missing)) from None
    except deliveries.NotDeadLetter as refused:
        raise Problem(409, CONFLICT, "Conflict", str(refused)) from None

    def after(context: IngestContext) -> None:
        enqueue_after_commit(context.dispatch, DELIVER_REPORTS, kwargs={})

    g.k8smon_after_commit = after
    details = {"cluster_id": delivery.cluster_id, "channel": describe(delivery.channel)}
    return _delivery_json(delivery), 202, f"delivery/{delivery_id}", details


@blueprint.get("/audit")
@admin_route(role="admin", action="audit.read")
def audit_log(session: Session, caller: Caller, body: Any) -> Any:
    limit = _limit(default=200, maximum=5000)
    entries = audit.recent_actions(
        session,
        limit=limit,
        actor=request.args.get("actor") or None,
        action=request.args.get("action") or None,
    )
    return (
        {
            "entries": [
                {
                    "id": e.id,
                    "at": _iso(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "details": e.details,
                    "source": e.source,
                }
                for e in entries
            ]
        },
        200,
        None,
        {},
    )


# ---- admin keys ------------------------------------------------------------------------------


def _admin_key_json(key: AdminKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "role": key.role,
        "fingerprint": fingerprint(key.public_key),
        "created_at": _iso(key.created_at),
        "revoked_at": _iso(key.revoked_at),
    }


@blueprint.get("/keys")
@admin_route(role="admin", action="admin_keys.list")
def list_admin_keys(session: Session, caller: Caller, body: Any) -> Any:
    include_revoked = request.args.get("all") in ("1", "true")
    keys = [
        _admin_key_json(k)
        for k in admin_keys.list_admin_keys(session)
        if include_revoked or k.revoked_at is None
    ]
    return {"keys": keys}, 200, None, {}


@blueprint.delete("/keys/<key_id>")
@admin_route(role="admin", action="admin_keys.revoke")
def revoke_admin_key(session: Session, caller: Caller, body: Any, key_id: str) -> Any:
    """Revoke an admin key: its next request is refused (`revoked_key`). The last active
    admin-role key is kept, so the API is never locked out (`k8smon admin bootstrap` first)."""
    key = admin_keys.find_admin_key(session, key_id)
    if key is None:
        raise not_found(f"no admin key {key_id!r}")
    if key.revoked_at is None and key.role == "admin":
        others = [
            k
            for k in admin_keys.list_admin_keys(session)
            if k.revoked_at is None and k.role == "admin" and k.key_id != key_id
        ]
        if not others:
            raise Problem(
                409,
                CONFLICT,
                "Conflict",
                "this is the last active admin key: register another (k8smon admin bootstrap) "
                "before revoking it",
            )
    key = admin_keys.revoke_admin_key(session, key_id)
    return _admin_key_json(key), 200, f"admin-key/{key_id}", {"name": key.name}
