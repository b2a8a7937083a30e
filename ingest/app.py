"""The ingest application factory: signed pushes from agents and the signed admin API.

`create_app(settings, store=sessionmaker, dispatch=callable)`; blueprints are imported inside
the factory, and nothing here touches `os.environ` or module-level state.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Flask, Response, g, request
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException

from contracts.httpsig import Policy
from contracts.tasks import TaskDispatcher
from ingest.auth import audit_key_refusal
from ingest.caps import install_body_caps
from ingest.context import EXTENSION, IngestContext
from ingest.dispatch import CeleryDispatcher, LoggingDispatcher
from ingest.guards import (
    MemoryNonceCache,
    MemoryRateLimiter,
    NonceCache,
    RateLimiter,
    RedisNonceCache,
    RedisRateLimiter,
)
from ingest.metrics import IngestMetrics
from ingest.problems import BODY_TOO_LARGE, UNAVAILABLE, Problem
from ingest.web.throttle import make_throttle
from settings import Settings
from store.deliveries import count_unsent
from store.failures import classify

log = logging.getLogger("k8smon.ingest")


def _count_unsent(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return count_unsent(session)


def create_app(
    settings: Settings | None = None,
    *,
    store: sessionmaker[Session] | None = None,
    dispatch: TaskDispatcher | None = None,
    nonces: NonceCache | None = None,
    limiter: RateLimiter | None = None,
    redis_client: Any = None,
    redis_prefix: str = "k8smon:",
    clock: Callable[[], float] = time.time,
) -> Flask:
    """Build the ingest app. Missing collaborators are made from `settings`:

    - `store`: a session factory on `settings.database_url`;
    - `dispatch`: Celery `send_task` on `settings.redis_url`, else a logging no-op (the
      composition root passes an in-process runner in embedded mode);
    - `nonces`/`limiter`: Redis-backed with `settings.redis_url`, else in process memory.
    """
    if settings is None:
        from settings import load_settings  # noqa: PLC0415

        settings = load_settings()
    if store is None:
        from store.db import make_engine, make_session_factory  # noqa: PLC0415

        store = make_session_factory(make_engine(settings.database_url))
    if redis_client is None and settings.redis_url:
        import redis  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415

        # Fail fast (one immediate retry, no backoff): with Redis down, pushes fall back to the
        # process-local guards instead of waiting seconds on redis-py's default retries.
        redis_client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 1),
        )
    if dispatch is None:
        dispatch = (
            CeleryDispatcher(settings.redis_url) if settings.redis_url else (LoggingDispatcher())
        )
    if nonces is None:
        nonces = (
            RedisNonceCache(redis_client, prefix=redis_prefix)
            if redis_client is not None
            else MemoryNonceCache()
        )
    if limiter is None:
        per_minute = settings.rate_limit_per_minute
        limiter = (
            RedisRateLimiter(redis_client, per_minute=per_minute, prefix=redis_prefix)
            if redis_client is not None
            else MemoryRateLimiter(per_minute=per_minute)
        )

    app = Flask("ingest", static_folder=None)
    # Every route's own cap is set per request by `ingest.caps` (this is the largest of them).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = IngestContext(
        settings=settings,
        sessions=store,
        dispatch=dispatch,
        nonces=nonces,
        limiter=limiter,
        metrics=IngestMetrics(),
        policy=Policy(window_seconds=settings.signature_window_seconds),
        clock=clock,
        redis=redis_client,
        throttle=make_throttle(redis_client, prefix=redis_prefix),
    )

    app.extensions[EXTENSION].metrics.watch_deliveries(partial(_count_unsent, store))

    from ingest import admin, ops, push  # noqa: PLC0415 - blueprints live inside the factory

    app.register_blueprint(push.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(ops.blueprint)
    from ingest import chatops, web  # noqa: PLC0415 - admin pages and chat-ops

    app.register_blueprint(web.make_blueprint())
    app.register_blueprint(chatops.make_blueprint())
    _install_handlers(app)
    install_body_caps(app)
    return app


def _install_handlers(app: Flask) -> None:
    context: IngestContext = app.extensions[EXTENSION]

    @app.before_request
    def _start_timer() -> None:
        g.k8smon_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("k8smon_started")
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule else "unmatched"
            context.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.errorhandler(Problem)
    def _problem(problem: Problem) -> Response:
        context.metrics.refused.labels(reason=problem.reason).inc()
        if problem.status == 401 and g.get("k8smon_claimed_key_id"):
            audit_key_refusal(context, problem, key_id=str(g.k8smon_claimed_key_id))
        log.log(
            logging.WARNING if problem.status < 500 else logging.ERROR,
            json.dumps(
                {
                    "event": "request_refused",
                    "status": problem.status,
                    "reason": problem.reason,
                    "private_reason": problem.private_reason,
                    "detail": problem.detail,
                    "method": request.method,
                    "path": request.path,
                    "remote": request.remote_addr,
                    "cluster": (request.view_args or {}).get("cluster_id"),
                    "key_id": g.get("k8smon_key_id"),
                }
            ),
        )
        return problem.response(instance=request.path)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        reason = (error.name or "error").lower().replace(" ", "_")
        if error.code == 413:  # werkzeug cut a body without Content-Length off at its cap
            reason = BODY_TOO_LARGE
        problem = Problem(error.code or 500, reason, error.name or "Error", error.description or "")
        context.metrics.refused.labels(reason=reason).inc()
        response = problem.response(instance=request.path)
        valid_methods = getattr(error, "valid_methods", None)
        if error.code == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        failure = classify(error)
        if failure.retryable:
            # The database or Redis is down, restarting or read-only (store.failures): the
            # request's transaction was rolled back, nothing of it is stored. 503, never 500.
            log.error(
                json.dumps(
                    {
                        "event": "database_unavailable",
                        "path": request.path,
                        "class": str(failure.error_class),
                        "error": failure.describe()[:300],
                    }
                )
            )
            context.metrics.refused.labels(reason=UNAVAILABLE).inc()
            return Problem(
                503,
                UNAVAILABLE,
                "Service unavailable",
                f"{failure.reason}; nothing was stored: retry later",
                headers={"Retry-After": str(failure.retry_after_s)},
            ).response(instance=request.path)
        log.exception(
            json.dumps(
                {"event": "internal_error", "path": request.path, "error": type(error).__name__}
            )
        )
        context.metrics.refused.labels(reason="internal_error").inc()
        return Problem(500, "internal_error", "Internal server error").response(
            instance=request.path
        )
