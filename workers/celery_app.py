"""The Celery application, built from Settings (Redis broker and result backend), not from Flask.

`create_celery(settings)` builds an app with every task registered under its stable name from
`contracts.tasks`. `workers.celery_app:app` (the Procfile's target) is built lazily from the
environment on first access, so importing this module has no side effects.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler

from beat_schedule.schedule import build_schedule
from settings import Settings, load_settings
from workers.context import WorkerContext

DEFAULT_QUEUE = "celery"  # what ingest's send_task uses
SHARD_LIMITS = (600, 720)  # soft, hard seconds
FINALIZE_LIMITS = (1200, 1500)
PURGE_LIMITS = (3000, 3300)
LONGEST_TASK_S = max(SHARD_LIMITS[1], FINALIZE_LIMITS[1], PURGE_LIMITS[1])
VISIBILITY_TIMEOUT_S = LONGEST_TASK_S + 600  # unacked messages come back only after this


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """Knobs that are not part of Settings: deployment tuning and test isolation."""

    queue: str = DEFAULT_QUEUE
    key_prefix: str = ""
    visibility_timeout_s: int = VISIBILITY_TIMEOUT_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BrokerOptions:
        return cls(
            queue=environ.get("K8SMON_TASK_QUEUE") or DEFAULT_QUEUE,
            key_prefix=environ.get("K8SMON_REDIS_KEY_PREFIX", ""),
            visibility_timeout_s=int(
                environ.get("K8SMON_VISIBILITY_TIMEOUT") or VISIBILITY_TIMEOUT_S
            ),
        )


class InstanceFolderScheduler(PersistentScheduler):
    """celery beat's default scheduler; creates the folder of its schedule file first (the
    instance folder unless `--schedule` says otherwise), so beat never writes to the cwd."""

    def setup_schedule(self) -> None:
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()


class K8sMonCelery(Celery):
    """A Celery app that carries the per-process WorkerContext its tasks use."""

    context: WorkerContext


def celery_config(settings: Settings, options: BrokerOptions) -> dict[str, Any]:
    vt = options.visibility_timeout_s
    transport: dict[str, Any] = {
        "visibility_timeout": vt,
        # How often workers look for messages a dead worker left unacknowledged.
        "unacked_restore_interval": max(1, min(10, vt // 8)),
        "unacked_restore_throttle": 1 if vt < 600 else 10,
    }
    backend_transport: dict[str, Any] = {}
    if options.key_prefix:
        transport["global_keyprefix"] = options.key_prefix
        backend_transport["global_keyprefix"] = options.key_prefix
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": backend_transport,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": options.queue,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 24 * 3600,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": SHARD_LIMITS[0],
        "task_time_limit": SHARD_LIMITS[1],
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_scheduler": f"{__name__}:InstanceFolderScheduler",
        "beat_schedule_filename": str(settings.instance_path / "celerybeat-schedule"),
        "beat_schedule": build_schedule(
            scan_interval_s=settings.scan_interval_hours * 3600,
            sweep_interval_s=settings.sweep_interval_minutes * 60,
        ),
    }


def create_celery(settings: Settings, options: BrokerOptions | None = None) -> K8sMonCelery:
    """The Celery app for these settings, with every pipeline task registered."""
    if not settings.redis_url:
        raise RuntimeError(
            "REDIS_URL is required to run Celery workers; without it tasks run in-process"
        )
    from workers.tasks import register_tasks  # noqa: PLC0415 - tasks need the app first

    opts = options or BrokerOptions()
    app = K8sMonCelery("k8smon", set_as_current=False)
    app.conf.update(celery_config(settings, opts))
    app.context = WorkerContext(settings=settings)
    app.context.dispatch = lambda name, *, args=None, kwargs=None: app.send_task(
        name, args=args or [], kwargs=kwargs or {}
    )
    register_tasks(app)
    return app


@functools.cache
def default_app() -> K8sMonCelery:
    """The app the Procfile runs: settings and broker options from the environment."""
    return create_celery(load_settings(), BrokerOptions.from_env(os.environ))


def __getattr__(name: str) -> Any:
    if name == "app":
        return default_app()
    raise AttributeError(name)
