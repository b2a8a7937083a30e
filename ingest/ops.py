"""Operational endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document, and
`/` (a redirect to the admin pages)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, redirect
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from werkzeug.wrappers import Response as WerkzeugResponse

from ingest.context import ctx
from ingest.openapi import openapi_document

blueprint = Blueprint("ops", __name__)


@blueprint.get("/")
def root() -> WerkzeugResponse:
    """The server's address in a browser: the admin pages (they ask to sign in)."""
    return redirect("/admin/", code=302)


@blueprint.get("/healthz")
def healthz() -> Response:
    """The process is alive (no dependency is checked)."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    """The database, and Redis when configured, answer."""
    context = ctx()
    checks: dict[str, str] = {}
    try:
        with context.sessions() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as problem:
        checks["database"] = f"unavailable: {type(problem).__name__}"
    if context.redis is not None:
        try:
            context.redis.ping()
            checks["redis"] = "ok"
        except Exception as problem:
            checks["redis"] = f"unavailable: {type(problem).__name__}"
    ready = all(value == "ok" for value in checks.values())
    response = jsonify({"status": "ready" if ready else "unavailable", "checks": checks})
    response.status_code = 200 if ready else 503
    return response


@blueprint.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition of this app's registry."""
    return Response(generate_latest(ctx().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


@blueprint.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this service."""
    return jsonify(openapi_document())
