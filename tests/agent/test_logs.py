"""Structured logs: one JSON object per line, fields merged, third-party warnings included."""

from __future__ import annotations

import io
import json
import logging
import warnings

from agent.logs import configure_logging, get_logger, log_event


def test_events_are_json_lines_with_their_fields() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", stream=stream)
    log_event(get_logger("loop"), "push.done", status=202, digest="sha256:x")
    get_logger("loop").debug("hidden")
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger().exception("cycle.error")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["event"] == "push.done" and lines[0]["status"] == 202
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "agent.loop"
    assert lines[0]["ts"].endswith("Z")
    assert lines[1]["event"] == "cycle.error" and "ValueError: boom" in lines[1]["exception"]
    assert len(lines) == 2


def test_the_agent_process_logs_third_party_warnings_as_json() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(level="INFO", stream=stream, whole_process=True)
        logging.getLogger("urllib3.connectionpool").warning("Connection pool is full")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("Unverified HTTPS request", stacklevel=1)
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [line["logger"] for line in lines] == ["urllib3.connectionpool", "py.warnings"]
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_the_default_handler_follows_sys_stderr(monkeypatch) -> None:
    configure_logging(level="INFO")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    log_event(get_logger(), "one")
    monkeypatch.setattr("sys.stderr", second)
    log_event(get_logger(), "two")
    assert json.loads(first.getvalue())["event"] == "one"
    assert json.loads(second.getvalue())["event"] == "two"
