"""The embedded dispatcher runs a task again after a transient database error, and logs a
task that keeps failing instead of dropping it silently."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from cli import wsgi


def _locked() -> OperationalError:
    return OperationalError("INSERT ...", {}, Exception("database is locked"))


def test_a_locked_database_is_retried_in_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(wsgi, "TASK_RETRY_PAUSES_S", (0.01, 0.01))
    calls: list[tuple[str, Any]] = []

    def inner(task_name: str, *, args: Any = None, kwargs: Any = None) -> None:
        calls.append((task_name, args))
        if len(calls) == 1:
            raise _locked()

    dispatcher = wsgi.BackgroundDispatcher(inner)
    with caplog.at_level(logging.WARNING, logger="k8smon.ingest"):
        dispatcher("k8smon.process_snapshot", args=[7])
        dispatcher.shutdown()
    assert calls == [("k8smon.process_snapshot", [7])] * 2
    assert "task_retry" in caplog.text and "task_failed" not in caplog.text


def test_a_task_that_keeps_failing_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(wsgi, "TASK_RETRY_PAUSES_S", (0.01, 0.01))
    calls: list[str] = []

    def inner(task_name: str, *, args: Any = None, kwargs: Any = None) -> None:
        calls.append(task_name)
        raise _locked()

    dispatcher = wsgi.BackgroundDispatcher(inner)
    with caplog.at_level(logging.WARNING, logger="k8smon.ingest"):
        dispatcher("k8smon.process_snapshot", args=[7])
        dispatcher.shutdown()
    assert len(calls) == 3
    assert "task_failed" in caplog.text and "database is locked" in caplog.text
