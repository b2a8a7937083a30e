"""The Celery application, built from Settings (Redis broker and result backend), not from Flask.

`create_celery(settings)` builds an app with every task of the one task table
(`workers.tasks.TASKS`) registered under its stable name from `contracts.tasks`.
`workers.celery_app:app` (the Procfile's target) is built lazily from the environment on first
access, so importing this module has no side effects.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import redis
import redis.exceptions
from celery import Celery, Task, bootsteps, chord, group
from celery.beat import PersistentScheduler, ScheduleEntry
from celery.exceptions import Ignore, Reject, Retry
from kombu import Exchange, Queue

from beat_schedule.schedule import build_schedule
from contracts import tasks as names
from settings import Settings, load_settings
from store.failures import classify
from store.scans import CLUSTER_STEP
from workers import jobs
from workers.consumer import ReconnectingConsumer
from workers.context import WorkerContext
from workers.retries import RetryPolicy, give_up
from workers.schedule_lease import ScheduleLeases
from workers.services.scanning import ScanPlan
from workers.tasks import LONGEST_TASK_S, SHARD_LIMITS, TASKS, TaskQueue, TaskSpec

INSPECT_TIMEOUT_S = 2.0  # how long the watchdog waits for live workers to say what they hold
QUEUE_PAGE = 1000  # messages read per LRANGE when the watchdog looks for a task id
DEFAULT_QUEUE = Settings().task_queue  # K8SMON_TASK_QUEUE's default (settings.config)
VISIBILITY_TIMEOUT_S = LONGEST_TASK_S + 600  # unacked messages come back only after this

log = logging.getLogger("k8smon.beat")
retry_log = logging.getLogger("k8smon.workers")


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """The broker knobs of Settings (task queue, key prefix, visibility timeout), with the
    visibility timeout's default derived from the task table."""

    queue: str = DEFAULT_QUEUE
    key_prefix: str = ""
    visibility_timeout_s: int = VISIBILITY_TIMEOUT_S

    @classmethod
    def from_settings(cls, settings: Settings) -> BrokerOptions:
        return cls(
            queue=settings.task_queue,
            key_prefix=settings.redis_key_prefix,
            visibility_timeout_s=settings.visibility_timeout_seconds or VISIBILITY_TIMEOUT_S,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BrokerOptions:
        return cls.from_settings(load_settings(environ))

    def queue_name(self, queue: TaskQueue) -> str:
        """The broker's name of a task table queue: `K8SMON_TASK_QUEUE` for the default one,
        with `.<queue>` appended for the others (so a test's own queue isolates them all)."""
        return self.queue if queue is TaskQueue.DEFAULT else f"{self.queue}.{queue}"

    def routes(self) -> dict[str, str]:
        """Task name -> broker queue name, for every task of the table (senders route by it:
        the workers, beat, and ingest's Celery client through the composition root)."""
        return {spec.name: self.queue_name(spec.queue) for spec in TASKS}


COMMON: dict[str, Any] = {
    "bind": True,
    "shared": False,  # tasks belong to their app only: no process-wide registry
    "acks_late": True,
    "reject_on_worker_lost": True,
    # Retries are decided per error by the one table (store.failures, workers.retries), not by
    # Celery's autoretry: no retry count of Celery's own stops them early.
    "max_retries": None,
}
# Celery's own control-flow exceptions pass through untouched.
CONTROL_FLOW: tuple[type[BaseException], ...] = (Retry, Ignore, Reject)


class TaskGaveUp(Exception):
    """A task stopped retrying; the message is the error class and reason (store.failures)."""


class InstanceFolderScheduler(PersistentScheduler):
    """celery beat's default scheduler; creates the folder of its schedule file first (the
    instance folder unless `--schedule` says otherwise), so beat never writes to the cwd."""

    def setup_schedule(self) -> None:
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()


class SingleBeatScheduler(InstanceFolderScheduler):
    """The Procfile's beat scheduler: sends an interval entry only when it takes the entry's
    lease in Redis (workers.schedule_lease), so a second beat process's send is skipped and
    logged and each entry runs once per interval whatever the number of beats."""

    _leases: ScheduleLeases | None = None

    def leases(self) -> ScheduleLeases:
        if self._leases is None:
            settings = self.app.context.settings
            self._leases = ScheduleLeases.from_url(
                settings.redis_url or "", prefix=settings.redis_key_prefix
            )
        return self._leases

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        every = getattr(entry.schedule, "run_every", None)
        if every is not None:
            leases = self.leases()
            try:
                claimed = leases.claim(entry.name, interval_s=every.total_seconds())
                holder = "" if claimed else leases.holder_of(entry.name)
            except redis.exceptions.RedisError as exc:
                # Redis is the broker too: the send could not be made either. Next tick retries.
                log.error("beat: not sending %s: schedule lease unavailable: %s", entry.name, exc)
                return
            if not claimed:
                log.warning(
                    "beat: skipped %s: already sent this interval by %s; run one beat process "
                    "(docs/operations.md)",
                    entry.name,
                    holder,
                )
                return
        super().apply_entry(entry, producer=producer)


LANE_OPTION = click.Option(
    ["--lane"],
    type=click.Choice([queue.value for queue in TaskQueue]),
    multiple=True,
    help="consume only this task table queue (repeatable); default: every queue. The Procfile's "
    "and the chart's `snapshots` worker runs with --lane snapshots.",
)


class LaneStep(bootsteps.Step):
    """`celery worker --lane snapshots`: the worker consumes only the named task table queues,
    by their broker names for these settings (`BrokerOptions.queue_name`)."""

    name = "k8smon lanes"

    def __init__(self, parent: Any, lane: Sequence[str] = (), **options: Any) -> None:
        super().__init__(parent, **options)
        if lane:
            broker: BrokerOptions = parent.app.broker_options
            parent.setup_queues([broker.queue_name(TaskQueue(name)) for name in lane])


class K8sMonCelery(Celery):
    """A Celery app that carries the per-process WorkerContext its tasks use and the broker
    options it was built with."""

    context: WorkerContext
    broker_options: BrokerOptions


class CeleryRunner:
    """The task table's `Runner` inside a Celery task: fan-out becomes a chord or a group."""

    def __init__(self, app: K8sMonCelery, task: Task) -> None:
        self._app = app
        self._task = task

    @property
    def ctx(self) -> WorkerContext:
        return self._app.context

    @property
    def task_id(self) -> str | None:
        return self._task.request.id

    def run_plan(self, plan: ScanPlan) -> dict[str, Any]:
        if len(plan.shards) <= 1 and not plan.redrive:
            # One shard of work (an incremental rescan, a small cluster): a chord would add
            # three task round trips to the same sequence of steps; run them here instead.
            outcome = jobs.run_plan(self.ctx, plan)
            return {
                "scan_id": plan.scan_id,
                "shards": len(plan.shards),
                "inline": True,
                "counts": outcome["counts"],
            }
        scan = {"scan_id": plan.scan_id, "cluster_id": plan.cluster_id}
        header = [
            self._app.signature(
                names.EVALUATE_SHARD,
                kwargs={
                    **scan,
                    "shard_index": s.index,
                    "first_id": s.first_id,
                    "last_id": s.last_id,
                },
                immutable=True,
                **_task_id(plan.task_ids.get(s.index)),
            )
            for s in plan.shards
        ]
        if plan.cluster_step:
            header.append(
                self._app.signature(
                    names.EVALUATE_CLUSTER_RULES,
                    kwargs=scan,
                    immutable=True,
                    **_task_id(plan.task_ids.get(CLUSTER_STEP)),
                )
            )
        finalize = _task_id(plan.finalize_task_id)
        if header:
            chord(header)(self._app.signature(names.FINALIZE_SCAN, kwargs=scan), **finalize)
        else:  # a re-drive of a finalize whose steps all finished
            self._app.signature(names.FINALIZE_SCAN, args=([],), kwargs=scan).apply_async(
                **finalize
            )
        return {"scan_id": plan.scan_id, "shards": len(plan.shards)}

    def in_flight(self, task_ids: Collection[str]) -> set[str]:
        """The ids waiting in the broker's queues, then those live workers hold (reserved,
        scheduled for a retry, or running). Read in that order, a task moving from the queue to
        a worker meanwhile is seen in one of them; a task in neither was lost."""
        wanted = set(task_ids)
        if not wanted:
            return set()
        found = queued_task_ids(self._app, wanted)
        inspect = self._app.control.inspect(timeout=INSPECT_TIMEOUT_S)
        for held in (inspect.query_task(*sorted(wanted - found)) or {}).values():
            found.update(held or {})
        return found & wanted

    def fan_out(self, task_name: str, calls: Sequence[Mapping[str, Any]]) -> None:
        group(
            self._app.signature(task_name, kwargs=dict(kwargs), immutable=True) for kwargs in calls
        ).apply_async()


def _task_id(task_id: str | None) -> dict[str, str]:
    return {"task_id": task_id} if task_id else {}


def queued_task_ids(app: Celery, wanted: set[str]) -> set[str]:
    """Which of `wanted` wait in a queue of this app's broker (kombu's Redis transport keeps
    each queue, per priority step, as a list of JSON messages whose headers carry the id, under
    the broker's `global_keyprefix`)."""
    found: set[str] = set()
    prefix = str(app.conf.broker_transport_options.get("global_keyprefix") or "")
    client = redis.Redis.from_url(app.conf.broker_url)
    try:
        with app.connection_for_read() as connection:
            channel: Any = connection.default_channel
            keys = [
                prefix + channel._q_for_pri(queue, priority)  # kombu's key layout
                for queue in app.amqp.queues
                for priority in channel.priority_steps
            ]
        for key in keys:
            # Producers push on the left, workers pop on the right: paging from the left
            # until a page comes back empty sees every message still queued at least once.
            start = 0
            while page := client.lrange(key, start, start + QUEUE_PAGE - 1):
                found.update(t for t in map(_message_task_id, page) if t in wanted)
                start += QUEUE_PAGE
    finally:
        client.close()
    return found


def _message_task_id(raw: bytes | str) -> str | None:
    try:
        headers = json.loads(raw).get("headers") or {}
    except (ValueError, AttributeError):
        return None
    task_id = headers.get("id") if isinstance(headers, dict) else None
    return task_id if isinstance(task_id, str) else None


def register_tasks(app: K8sMonCelery) -> dict[str, Task]:
    """Register every entry of the task table on `app` under its stable name."""

    policy = RetryPolicy.from_settings(app.context.settings)

    def define(spec: TaskSpec) -> Task:
        def run(self: Task, *args: Any, **kwargs: Any) -> Any:
            try:
                return spec.run(CeleryRunner(app, self), *args, **kwargs)
            except CONTROL_FLOW:
                raise
            except Exception as exc:
                failure = classify(exc)
                retries = self.request.retries or 0
                if policy.should_retry(failure, retries):
                    countdown = policy.delay(retries)
                    retry_log.warning(
                        "%s: retry %d/%d in %.1fs: %s",
                        spec.name,
                        retries + 1,
                        policy.max_retries,
                        countdown,
                        failure.describe(),
                    )
                    raise self.retry(exc=exc, countdown=countdown) from exc
                give_up(app.context, spec.name, failure=failure, kwargs=kwargs, retries=retries)
                raise TaskGaveUp(failure.describe()) from exc

        run.__name__ = run.__qualname__ = spec.run.__name__
        run.__doc__ = spec.run.__doc__
        soft, hard = spec.limits
        return app.task(name=spec.name, soft_time_limit=soft, time_limit=hard, **COMMON)(run)

    return {spec.name: define(spec) for spec in TASKS}


def _queue(name: str) -> Queue:
    """A queue on a direct exchange of its own name, bound by its name (what Celery makes of a
    queue it was not told about: ingest's client routes to these without declaring them)."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


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
        # Every queue of the task table: a worker started without `--lane` consumes them all.
        "task_queues": [_queue(options.queue_name(queue)) for queue in TaskQueue],
        "task_routes": {name: {"queue": queue} for name, queue in options.routes().items()},
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
        # Celery's consumer, surviving a Redis restart while it holds a task (workers.consumer).
        "worker_consumer": f"{ReconnectingConsumer.__module__}:{ReconnectingConsumer.__name__}",
        "timezone": "UTC",
        "enable_utc": True,
        "beat_scheduler": f"{__name__}:SingleBeatScheduler",
        "beat_schedule_filename": str(settings.instance_path / "celerybeat-schedule"),
        "beat_schedule": build_schedule(
            scan_interval_s=settings.scan_interval_hours * 3600,
            sweep_interval_s=settings.sweep_interval_minutes * 60,
            delivery_retry_s=settings.delivery_interval_seconds,
            watchdog_interval_s=settings.watchdog_interval_seconds,
        ),
    }


def create_celery(settings: Settings, options: BrokerOptions | None = None) -> K8sMonCelery:
    """The Celery app for these settings, with every pipeline task registered."""
    if not settings.redis_url:
        raise RuntimeError(
            "REDIS_URL is required to run Celery workers; without it tasks run in-process"
        )
    opts = options or BrokerOptions.from_settings(settings)
    app = K8sMonCelery("k8smon", set_as_current=False)
    app.conf.update(celery_config(settings, opts))
    app.broker_options = opts
    app.user_options["worker"].add(LANE_OPTION)
    app.steps["worker"].add(LaneStep)
    app.context = WorkerContext(settings=settings)
    app.context.dispatch = lambda name, *, args=None, kwargs=None: app.send_task(
        name, args=args or [], kwargs=kwargs or {}
    )
    register_tasks(app)
    return app


@functools.cache
def default_app() -> K8sMonCelery:
    """The app the Procfile runs: settings and broker options from the environment."""
    return create_celery(load_settings())


def __getattr__(name: str) -> Any:
    if name == "app":
        return default_app()
    raise AttributeError(name)
