"""What one ingest app instance holds: settings, sessions, guards, dispatcher, metrics, clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from contracts.httpsig import Policy
from contracts.tasks import TaskDispatcher
from ingest.guards import NonceCache, RateLimiter
from ingest.metrics import IngestMetrics
from settings import Settings

EXTENSION = "k8smon.ingest"


@dataclass
class IngestContext:
    settings: Settings
    sessions: sessionmaker[Session]
    dispatch: TaskDispatcher
    nonces: NonceCache
    limiter: RateLimiter
    metrics: IngestMetrics
    policy: Policy
    clock: Callable[[], float] = time.time
    redis: Any = None
    throttle: Any = None  # ingest.web.throttle.SignInThrottle: failed sign-ins
    extras: dict[str, Any] = field(default_factory=dict)


def ctx() -> IngestContext:
    """The context of the app handling the current request."""
    return current_app.extensions[EXTENSION]
