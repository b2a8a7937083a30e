"""Task dispatchers ingest can be given: Celery `send_task` by name, or one that only logs.

Ingest never imports worker code. The composition root (cli.wsgi, the embedded server) passes
an in-process runner when there is no Redis; `enqueue_after_commit` never lets a dispatch
failure turn an acknowledged push into an error: the periodic sweep
(`k8smon.sweep_unprocessed`) re-enqueues stored-but-unprocessed snapshots.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from contracts.tasks import TaskDispatcher

log = logging.getLogger("k8smon.ingest")


class CeleryDispatcher:
    """Sends tasks by name through a Celery client on `broker_url`, failing fast when down.

    `routes` (task name -> queue) is the workers' task table's routing, handed over by the
    composition root (`cli.wsgi`: ingest may not import workers); a task it does not name goes
    to `queue`."""

    def __init__(
        self,
        broker_url: str,
        *,
        timeout_s: float = 1.0,
        queue: str = "celery",
        key_prefix: str = "",
        routes: Mapping[str, str] | None = None,
    ) -> None:
        self._broker_url = broker_url
        self._timeout = timeout_s
        self._queue = queue
        self._routes = {name: {"queue": queue} for name, queue in (routes or {}).items()}
        self._key_prefix = key_prefix
        self._client: Any = None
        self._lock = threading.Lock()
        # The client now, when the server starts (it connects only when it first sends):
        # importing Celery and building it cost the first push of each web worker about
        # 0.2 CPU s and, on the shared bench machine, about a second.
        self._celery()

    def _celery(self) -> Any:
        with self._lock:
            if self._client is None:
                from celery import Celery  # noqa: PLC0415 - heavy, only when Redis is used

                self._client = Celery(
                    "k8smon-ingest",
                    broker=self._broker_url,
                    set_as_current=False,
                )
                self._client.conf.update(
                    broker_connection_retry=False,
                    broker_connection_retry_on_startup=False,
                    broker_connection_timeout=self._timeout,
                    broker_transport_options={
                        "socket_connect_timeout": self._timeout,
                        "socket_timeout": self._timeout,
                        "max_retries": 0,
                        **({"global_keyprefix": self._key_prefix} if self._key_prefix else {}),
                    },
                    task_publish_retry=False,
                    task_default_queue=self._queue,
                    task_routes=self._routes,
                )
            return self._client

    def __call__(
        self, task_name: str, *, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
    ) -> None:
        self._celery().send_task(task_name, args=args or [], kwargs=kwargs or {}, retry=False)


class LoggingDispatcher:
    """Used when nothing can run tasks: records the intent; the sweep does the work later."""

    def __call__(
        self, task_name: str, *, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
    ) -> None:
        log.info(
            json.dumps(
                {
                    "event": "task_not_dispatched",
                    "task": task_name,
                    "args": args or [],
                    "kwargs": kwargs or {},
                },
                default=str,
            )
        )


def enqueue_after_commit(
    dispatch: TaskDispatcher, task_name: str, *, kwargs: dict[str, Any]
) -> bool:
    """Dispatch with keyword arguments, named as the task table's function declares them.

    On any failure log it and return False (the push stays acknowledged).
    """
    try:
        dispatch(task_name, kwargs=kwargs)
    except Exception as problem:
        log.warning(
            json.dumps(
                {
                    "event": "enqueue_failed",
                    "task": task_name,
                    "kwargs": kwargs,
                    "error": f"{type(problem).__name__}: {problem}"[:300],
                },
                default=str,
            )
        )
        return False
    return True
