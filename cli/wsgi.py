"""gunicorn entry point (`gunicorn 'cli.wsgi:app'`): the ingest app built from the environment.

The composition root: settings from the environment, the store's session factory, and the
task dispatcher (Celery `send_task` by name when REDIS_URL is set; otherwise the workers'
in-process runner on a background thread). `app` is built on first access, not on import.

It also hands the admin pages what ingest may not fetch itself (`IngestContext.extras`): the
rule catalogue (`rule_info`: rule id -> `contracts.findings.RuleInfo`, with the operator's
severity overrides from K8SMON_RULES_CONFIG; ingest must not import `rules`) and the Flower
base URL from K8SMON_FLOWER_URL (`flower_url`: scan runs link to their task there).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from contracts.findings import RuleInfo
from contracts.tasks import TaskDispatcher
from settings import Settings, load_settings
from settings.config import read_variable

if TYPE_CHECKING:
    from store.failures import Failure

log = logging.getLogger("k8smon.ingest")
TASK_RETRY_PAUSES_S = (1.0, 4.0)  # embedded mode: pauses before a failed task's 2nd, 3rd run


class BackgroundDispatcher:
    """Runs another dispatcher's tasks on one background thread, in order (embedded mode), so
    an acknowledged push does not wait for its processing."""

    def __init__(self, inner: TaskDispatcher) -> None:
        self._inner = inner
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="k8smon-task")

    def __call__(
        self, task_name: str, *, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
    ) -> None:
        self._executor.submit(self._run, task_name, list(args or []), dict(kwargs or {}))

    def _run(self, task_name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        from store.failures import classify  # noqa: PLC0415

        for attempt, pause_s in enumerate((*TASK_RETRY_PAUSES_S, None), start=1):
            try:
                self._inner(task_name, args=args, kwargs=kwargs)
                return
            except Exception as problem:
                failure = classify(problem)
                # Retryable (a lock held past the busy timeout, a lost connection): the tasks
                # are idempotent, so run it again here, as a Celery worker would retry it.
                if not failure.retryable or pause_s is None:
                    self._failed(task_name, failure)
                    return
                log.warning(
                    json.dumps(
                        {
                            "event": "task_retry",
                            "task": task_name,
                            "attempt": attempt,
                            "reason": failure.describe()[:300],
                        }
                    )
                )
                time.sleep(pause_s)

    @staticmethod
    def _failed(task_name: str, failure: Failure) -> None:
        log.error(
            json.dumps(
                {
                    "event": "task_failed",
                    "task": task_name,
                    "class": str(failure.error_class),
                    "error": failure.describe()[:300],
                }
            )
        )

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


def build_dispatcher(
    settings: Settings, sessions: sessionmaker[Session], environ: Mapping[str, str] | None = None
) -> TaskDispatcher:
    """Celery `send_task` on REDIS_URL (same queues, routing and key prefix as the workers),
    else the workers' in-process runner on a background thread."""
    from ingest.dispatch import CeleryDispatcher  # noqa: PLC0415
    from workers.celery_app import BrokerOptions  # noqa: PLC0415

    if settings.redis_url:
        options = BrokerOptions.from_settings(settings)
        return CeleryDispatcher(
            settings.redis_url,
            queue=options.queue,
            key_prefix=options.key_prefix,
            routes=options.routes(),
        )
    from workers.context import WorkerContext  # noqa: PLC0415
    from workers.inprocess import InProcessDispatcher  # noqa: PLC0415

    runner = InProcessDispatcher(WorkerContext(settings=settings, sessions_override=sessions))
    return BackgroundDispatcher(runner)


def rule_catalogue(rules_config_path: Path | None = None) -> dict[str, RuleInfo]:
    """Every built-in rule's public description by id, with the severities the operator's
    rules configuration sets (the severity findings of that rule are reported with)."""
    from rules import default_rules  # noqa: PLC0415 - the composition root may import rules
    from rules.config import ConfigError, ScanConfig  # noqa: PLC0415

    config = ScanConfig()
    if rules_config_path is not None:
        try:
            config = ScanConfig.from_file(rules_config_path)
        except ConfigError as problem:
            # The pages only describe rules; the workers refuse a broken configuration loudly.
            log.warning(
                json.dumps(
                    {
                        "event": "rules_config_unreadable",
                        "path": str(rules_config_path),
                        "error": str(problem)[:300],
                    }
                )
            )
    catalogue: dict[str, RuleInfo] = {}
    for rule in default_rules():
        info = rule.meta.to_info()
        if rule.id in config.severity:
            info["severity"] = config.severity[rule.id].value
        catalogue[rule.id] = info
    return catalogue


def flower_url(environ: Mapping[str, str]) -> str | None:
    """K8SMON_FLOWER_URL (a setting: `Settings.flower_url`), or None when unset or blank."""
    value: str | None = read_variable("K8SMON_FLOWER_URL", environ)
    return value


def page_extras(settings: Settings, environ: Mapping[str, str]) -> dict[str, Any]:
    """What the admin pages read from `IngestContext.extras` (see `ingest.web`)."""
    from rules import Engine, default_rules  # noqa: PLC0415 - composition root

    catalogue = rule_catalogue(settings.rules_config_path)
    docs = {rule.id: rule.meta.doc for rule in default_rules()}
    return {
        "rule_info": catalogue.get,
        "rule_doc": docs.get,
        "object_violations": object_violations(Engine(default_rules())),
        "flower_url": settings.flower_url,
    }


def object_violations(engine: Any) -> Callable[[Mapping[str, Any]], list[dict[str, Any]]]:
    """What the diff page asks of two versions of a manifest: the object rules' violations
    (rule id, title, severity, path), no exemptions applied."""

    def evaluate(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "rule_id": r.rule_id,
                "title": r.title,
                "severity": r.severity.value,
                "path": r.path,
            }
            for r in engine.evaluate_object(manifest)
            if r.status != "error"
        ]

    return evaluate


def build_app(environ: Mapping[str, str] | None = None) -> Flask:
    """Settings, store and dispatcher from the environment, then `ingest.app.create_app`."""
    from ingest.app import create_app  # noqa: PLC0415
    from ingest.context import EXTENSION  # noqa: PLC0415
    from store.db import make_engine, make_session_factory  # noqa: PLC0415

    env = os.environ if environ is None else environ
    settings = load_settings(environ)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=settings.log_level, format="%(message)s")
    extras = page_extras(settings, env)
    sessions = make_session_factory(make_engine(settings.database_url))
    app = create_app(
        settings, store=sessions, dispatch=build_dispatcher(settings, sessions, environ)
    )
    app.extensions[EXTENSION].extras.update(extras)
    return app


def __getattr__(name: str) -> Any:
    """`cli.wsgi.app`, built once on first access (gunicorn resolves it after import)."""
    if name == "app":
        application = build_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
