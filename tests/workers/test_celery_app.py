"""The Celery app's configuration: stable names, reliability settings, beat from settings."""

from __future__ import annotations

import uuid

import pytest

from contracts import tasks as names
from settings import Settings
from workers.celery_app import (
    VISIBILITY_TIMEOUT_S,
    BrokerOptions,
    CeleryRunner,
    create_celery,
    queued_task_ids,
)
from workers.tasks import TASKS, TaskQueue


def app_for(**changes: object):
    settings = Settings(
        database_url="sqlite://", redis_url="redis://127.0.0.1:6379/13", secret_key="x" * 40
    ).replace(**changes)
    return create_celery(settings, BrokerOptions(queue="q-test", key_prefix="p:"))


def test_every_pipeline_task_is_registered_under_its_stable_name() -> None:
    app = app_for()
    pipeline = set(names.ALL_TASK_NAMES)
    assert pipeline <= set(app.tasks)
    for name in pipeline:
        task = app.tasks[name]
        assert task.acks_late and task.reject_on_worker_lost
        # Retries are decided per error by the one table (store.failures, workers.retries),
        # with no retry count of Celery's own: tests/workers/test_task_retries.py.
        assert task.max_retries is None and not getattr(task, "autoretry_for", ())


def test_reliability_and_event_settings() -> None:
    conf = app_for().conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_send_task_events and conf.task_send_sent_event
    longest = max(
        t.time_limit or conf.task_time_limit
        for t in app_for().tasks.values()
        if t.name.startswith("k8smon.")
    )
    assert conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT_S > longest
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.task_default_queue == "q-test"
    assert conf.broker_transport_options["global_keyprefix"] == "p:"


def test_beat_schedule_comes_from_settings() -> None:
    schedule = app_for(scan_interval_hours=2.0, sweep_interval_minutes=3.0).conf.beat_schedule
    assert schedule["fleet-scan"]["task"] == names.SCAN_FLEET
    assert schedule["fleet-scan"]["schedule"] == 7200
    assert schedule["sweep-unprocessed"]["schedule"] == 180
    assert schedule["purge-expired"]["schedule"] == 24 * 3600
    assert schedule["deliver-reports"]["task"] == names.DELIVER_REPORTS
    watchdog = app_for(watchdog_interval_seconds=15.0).conf.beat_schedule["scan-watchdog"]
    assert watchdog["task"] == names.WATCH_SCANS and watchdog["schedule"] == 15.0


def test_apps_do_not_share_tasks() -> None:
    first, second = app_for(), app_for()
    assert first.tasks[names.SCAN_FLEET] is not second.tasks[names.SCAN_FLEET]
    assert first.context is not second.context


def test_each_task_is_routed_to_the_queue_its_table_entry_names() -> None:
    app = app_for()
    assert {queue.name for queue in app.conf.task_queues} == {"q-test", "q-test.snapshots"}
    for spec in TASKS:
        expected = "q-test.snapshots" if spec.queue is TaskQueue.SNAPSHOTS else "q-test"
        assert app.amqp.router.route({}, spec.name)["queue"].name == expected, spec.name
    snapshot_tasks = {spec.name for spec in TASKS if spec.queue is TaskQueue.SNAPSHOTS}
    assert snapshot_tasks == {names.PROCESS_SNAPSHOT, names.SWEEP_UNPROCESSED}
    # ingest's Celery client is handed the same routes by the composition root (cli.wsgi).
    assert app.broker_options.routes()[names.PROCESS_SNAPSHOT] == "q-test.snapshots"
    assert "lane" in {option.name for option in app.user_options["worker"]}


@pytest.mark.redis
def test_the_watchdog_sees_the_task_ids_waiting_in_the_queue(
    redis_url: str, redis_key_prefix: str
) -> None:
    """What the scan watchdog asks the broker: which of a scan's task ids still wait in the
    queue (here no worker consumes it, so every one sent waits; one never sent is lost)."""
    settings = Settings(database_url="sqlite://", redis_url=redis_url, secret_key="x" * 40)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    app = create_celery(settings, BrokerOptions(queue=queue, key_prefix=redis_key_prefix))
    waiting = [str(uuid.uuid4()) for _ in range(3)]
    lost = str(uuid.uuid4())
    try:
        for task_id in waiting:
            app.send_task(names.EVALUATE_SHARD, kwargs={"scan_id": 1}, task_id=task_id)
        assert queued_task_ids(app, {*waiting, lost}) == set(waiting)
        # No live worker holds anything either: in flight is exactly what is queued.
        runner = CeleryRunner(app, app.tasks[names.WATCH_SCANS])
        assert runner.in_flight([*waiting, lost]) == set(waiting)
        assert runner.in_flight([]) == set()
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.client.delete(queue)
        app.close()
