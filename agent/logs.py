"""Structured JSON log lines: one JSON object per line, with an `event` name and plain fields."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

LOGGER_NAME = "agent"


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line; fields passed via `extra={"fields": {...}}` are merged."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, sort_keys=False)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of each record (as logging.lastResort)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        return


def _handler(stream: TextIO | None) -> logging.Handler:
    handler = _CurrentStderr() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    return handler


def configure_logging(
    *, level: str = "INFO", stream: TextIO | None = None, whole_process: bool = False
) -> logging.Logger:
    """Point the agent's logger at `stream` (stderr by default) with the JSON formatter.

    With `whole_process` (the agent's own process, not a host embedding it), third-party
    loggers (urllib3, kubernetes) and Python warnings go out as JSON lines too, from WARNING up.
    """
    if whole_process:
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(_handler(stream))
        root.setLevel(logging.WARNING)
        logging.captureWarnings(True)
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(_handler(stream))
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def get_logger(name: str = "") -> logging.Logger:
    """The agent logger, or one of its children."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def log_event(
    logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any
) -> None:
    """Log one structured event with its fields."""
    logger.log(level, event, extra={"fields": fields})
