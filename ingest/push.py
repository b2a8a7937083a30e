"""Agent push endpoints: telemetry pings and snapshots (full or delta), signed per cluster."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from contracts.tasks import PROCESS_SNAPSHOT
from contracts.wire import (
    FORBIDDEN_KINDS,
    MAX_MANIFEST_DEPTH,
    SNAPSHOT_JSON_SCHEMA,
    SNAPSHOT_PATH,
    TELEMETRY_JSON_SCHEMA,
    TELEMETRY_PATH,
)
from ingest.auth import authenticate_agent, http_request
from ingest.body import (
    check_parse_budget,
    cyclic_gc_paused,
    decode_content,
    nesting_depth_exceeds,
    parse_json_counting_floats,
    read_capped,
    too_large,
    validate,
    validator_for,
)
from ingest.context import IngestContext, ctx
from ingest.dispatch import enqueue_after_commit
from ingest.fastcheck import snapshot_surely_valid
from ingest.limits import check_telemetry_totals
from ingest.problems import (
    CLUSTER_BUSY,
    CLUSTER_DISABLED,
    FORBIDDEN_KIND,
    INVALID_SNAPSHOT,
    RATE_LIMITED,
    TOO_DEEP,
    TOO_MANY_OBJECTS,
    UNKNOWN_BASE,
    UNSUPPORTED_MEDIA_TYPE,
    Problem,
    not_found,
    refuse_nul_in_url,
)
from store.db import on_postgresql
from store.errors import InvalidSnapshot, UnknownBaseSnapshot
from store.models import Cluster
from store.snapshots import stage_snapshot
from store.telemetry import record_telemetry

log = logging.getLogger("k8smon.ingest")
blueprint = Blueprint("push", __name__)


@blueprint.before_request
def _refuse_nul() -> None:
    refuse_nul_in_url(request.path, request.query_string.decode("latin-1"))


CLUSTER_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SNAPSHOT_RULE = SNAPSHOT_PATH.replace("{cluster_id}", "<cluster_id>")
_TELEMETRY_RULE = TELEMETRY_PATH.replace("{cluster_id}", "<cluster_id>")


def _receive(
    context: IngestContext, session: Session, cluster_id: str, *, kind: str, schema: dict[str, Any]
) -> tuple[dict[str, Any], int, bytes | None]:
    """Everything before storing: caps, signature, cluster state, rate limit, body, schema;
    returns the document, how many floats it holds, and the body as sent when it was gzip
    (the document's JSON as one gzip member: `decode_content` refuses anything after it)."""
    settings = context.settings
    if not CLUSTER_ID.match(cluster_id):
        raise not_found("no such cluster")
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise too_large(settings.max_body_bytes)

    def read_body() -> bytes:
        raw = read_capped(
            request.stream, declared=request.content_length, limit=settings.max_body_bytes
        )
        context.metrics.bytes_in.labels(kind=kind).inc(len(raw))
        return raw

    caller, raw = authenticate_agent(
        session,
        http_request(request, b""),
        cluster_id=cluster_id,
        nonces=context.nonces,
        policy=context.policy,
        read_body=read_body,
        clock=context.clock,
    )
    g.k8smon_key_id = caller.key_id
    cluster = session.get(Cluster, cluster_id)
    if cluster is None or cluster.status != "active":
        raise Problem(403, CLUSTER_DISABLED, "Forbidden", "the cluster is disabled")
    retry_after = context.limiter.hit(cluster_id)
    if retry_after is not None:
        raise Problem(
            429,
            RATE_LIMITED,
            "Too many requests",
            f"more than {settings.rate_limit_per_minute} pushes a minute",
            headers={"Retry-After": str(int(retry_after))},
        )
    if request.mimetype != "application/json":
        raise Problem(
            415,
            UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            "Content-Type must be application/json",
        )
    encoding = request.headers.get("Content-Encoding")
    data = decode_content(raw, encoding=encoding, limit=settings.max_decompressed_bytes)
    gzipped = raw if data is not raw else None
    del raw
    check_parse_budget(data, limit=settings.max_parsed_bytes)
    document, floats = parse_json_counting_floats(data)
    del data
    if kind == "snapshot":
        _check_object_count(document, limit=settings.max_objects_per_push)
    if not (kind == "snapshot" and snapshot_surely_valid(document)):
        validate(document, validator_for(schema))
    return document, floats, gzipped


def _check_object_count(document: Any, *, limit: int) -> None:
    """Refuse a snapshot with more objects than a push may carry, before any schema work."""
    objects = document.get("objects") if isinstance(document, dict) else None
    if isinstance(objects, list) and len(objects) > limit:
        raise Problem(
            413,
            TOO_MANY_OBJECTS,
            "Payload too large",
            f"{len(objects)} objects in one push; at most {limit} "
            "(K8SMON_MAX_OBJECTS_PER_PUSH): split the snapshot or narrow the agent",
            extra={"field": "$.objects"},
        )


def _check_depth(objects: list[dict[str, Any]]) -> None:
    """Manifests nest no deeper than MAX_MANIFEST_DEPTH (every page can render them)."""
    for index, obj in enumerate(objects):
        if nesting_depth_exceeds(obj, MAX_MANIFEST_DEPTH):
            raise Problem(
                400,
                TOO_DEEP,
                "Bad request",
                f"$.objects[{index}]: nested deeper than {MAX_MANIFEST_DEPTH} levels",
                extra={"field": f"$.objects[{index}]"},
            )


# How long a push waits for the cluster's row lock (PostgreSQL). A worker applying a huge
# snapshot holds it for minutes: a push then answers 503 `cluster_busy` with Retry-After at
# once instead of holding a web thread (and, ten pushes later, every thread) meanwhile.
PUSH_LOCK_TIMEOUT_MS = 200
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout expires
BUSY_RETRY_AFTER_S = 30


@contextmanager
def _bounded_lock_wait(session: Session) -> Iterator[None]:
    """Within the push's transaction, lock waits end after PUSH_LOCK_TIMEOUT_MS (503)."""
    if on_postgresql(session):
        session.execute(text(f"SET LOCAL lock_timeout = {PUSH_LOCK_TIMEOUT_MS}"))
    try:
        yield
    except OperationalError as error:
        if getattr(error.orig, "pgcode", None) != _LOCK_NOT_AVAILABLE:
            raise
        session.rollback()
        raise Problem(
            503,
            CLUSTER_BUSY,
            "Service unavailable",
            "the cluster's previous snapshot is still being applied; retry later",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
        ) from None


def _accepted(context: IngestContext, kind: str, body: dict[str, Any]) -> Response:
    context.metrics.accepted.labels(kind=kind).inc()
    log.info(json.dumps({"event": "push_accepted", "kind": kind, **body}, default=str))
    response = jsonify({"status": "accepted", **body})
    response.status_code = 202
    return response


@blueprint.post(_SNAPSHOT_RULE)
def push_snapshot(cluster_id: str) -> Response:
    """Store a full or delta snapshot durably (202 after commit), then enqueue processing.

    Every check that can refuse it runs first (signature, sizes, schema, depth, kinds, the
    digest against the objects): what is committed is the verified document as one row, which
    the snapshot worker splits into bodies and versions (`store.snapshots`)."""
    context = ctx()
    received_at = datetime.fromtimestamp(context.clock(), UTC)
    # The parsed snapshot (up to a million objects) is alive throughout: collections that the
    # hashing and storing would trigger would traverse all of it again and again.
    with cyclic_gc_paused(), context.sessions() as session, _bounded_lock_wait(session):
        envelope, floats, gzipped = _receive(
            context, session, cluster_id, kind="snapshot", schema=SNAPSHOT_JSON_SCHEMA
        )
        _check_depth(envelope["objects"])
        for index, obj in enumerate(envelope["objects"]):
            if obj["kind"] in FORBIDDEN_KINDS:
                raise Problem(
                    422,
                    FORBIDDEN_KIND,
                    "Unprocessable content",
                    f"objects[{index}] is a {obj['kind']}: never sent, never stored",
                    extra={"field": f"$.objects[{index}].kind"},
                )
        try:
            staged = stage_snapshot(
                session,
                cluster_id,
                envelope=envelope,
                received_at=received_at,
                floats=floats > 0,
                document=gzipped,
            )
        except UnknownBaseSnapshot:
            session.rollback()
            raise Problem(
                409,
                UNKNOWN_BASE,
                "Conflict",
                "the delta's base_digest is not the latest stored state: send a full snapshot",
            ) from None
        except InvalidSnapshot as problem:
            session.rollback()
            raise Problem(
                422, INVALID_SNAPSHOT, "Unprocessable content", str(problem)[:500]
            ) from None
        session.commit()
    enqueued = False
    if not staged.duplicate:
        enqueued = enqueue_after_commit(
            context.dispatch, PROCESS_SNAPSHOT, kwargs={"snapshot_id": staged.snapshot_id}
        )
        if not enqueued:
            context.metrics.enqueue_failures.inc()
    return _accepted(
        context,
        "snapshot",
        {
            "cluster_id": cluster_id,
            "snapshot_id": staged.snapshot_id,
            "digest": staged.digest,
            "duplicate": staged.duplicate,
            "enqueued": enqueued,
        },
    )


@blueprint.post(_TELEMETRY_RULE)
def push_telemetry(cluster_id: str) -> Response:
    """Record a telemetry ping (202 after commit)."""
    context = ctx()
    received_at = datetime.fromtimestamp(context.clock(), UTC)
    with context.sessions() as session, _bounded_lock_wait(session):
        payload, _floats, _gzipped = _receive(
            context, session, cluster_id, kind="telemetry", schema=TELEMETRY_JSON_SCHEMA
        )
        check_telemetry_totals(payload)
        ping = record_telemetry(session, cluster_id, payload=payload, received_at=received_at)
        ping_id = ping.id
        session.commit()
    return _accepted(context, "telemetry", {"cluster_id": cluster_id, "ping_id": ping_id})
