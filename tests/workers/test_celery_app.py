"""The Celery app's configuration: stable names, reliability settings, beat from settings."""

from __future__ import annotations

from contracts import tasks as names
from settings import Settings
from workers.celery_app import VISIBILITY_TIMEOUT_S, BrokerOptions, create_celery


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


def test_apps_do_not_share_tasks() -> None:
    first, second = app_for(), app_for()
    assert first.tasks[names.SCAN_FLEET] is not second.tasks[names.SCAN_FLEET]
    assert first.context is not second.context
