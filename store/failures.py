"""The one table of database and broker errors: each is transient, unavailable or permanent.

`classify(exc)` looks at the error, the driver error SQLAlchemy wrapped (`.orig`) and the
errors it was raised from, and answers with the first row of `ERRORS` that matches; an error no
row matches is permanent. Ingest and the workers both read it (issue 14):

- ingest answers a retryable class (transient, unavailable) with 503 `unavailable` and the
  class's Retry-After, never 500, and stores nothing of the refused request;
- tasks (Celery and the in-process runner) retry a retryable class with capped exponential
  backoff for `K8SMON_TASK_RETRY_WINDOW_SECONDS` (`workers.retries`), then give up with the
  reason; a permanent error fails the task at once with the reason.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import kombu.exceptions
import psycopg2
import redis.exceptions
import sqlalchemy.exc

from contracts.states import ErrorClass

# What ingest puts in Retry-After for each retryable class (seconds).
RETRY_AFTER_S = {ErrorClass.TRANSIENT: 2, ErrorClass.UNAVAILABLE: 10}


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """One row of the table. An error matches when any given criterion matches it: its
    SQLSTATE (five characters exactly, or a two-character class), its type, or its message
    (driver errors without a SQLSTATE: libpq connection failures, SQLite)."""

    error_class: ErrorClass
    reason: str
    sqlstates: frozenset[str] = frozenset()
    types: tuple[type[BaseException], ...] = ()
    message: re.Pattern[str] | None = None
    message_types: tuple[type[BaseException], ...] = (Exception,)

    def matches(self, error: BaseException) -> bool:
        code = _sqlstate(error)
        if code and (code in self.sqlstates or code[:2] in self.sqlstates):
            return True
        if self.types and isinstance(error, self.types):
            return True
        return (
            self.message is not None
            and isinstance(error, self.message_types)
            and not code
            and self.message.search(str(error)) is not None
        )


def _codes(*codes: str) -> frozenset[str]:
    return frozenset(codes)


ERRORS: tuple[ErrorRow, ...] = (
    # PostgreSQL, by SQLSTATE (https://www.postgresql.org/docs/current/errcodes-appendix.html).
    ErrorRow(
        ErrorClass.UNAVAILABLE,
        "the database is read-only (a standby after failover, or default_transaction_read_only)",
        sqlstates=_codes("25006"),
        message=re.compile(r"read-only transaction"),
    ),
    ErrorRow(
        ErrorClass.UNAVAILABLE,
        "the database server is shutting down, restarting or not accepting connections yet",
        sqlstates=_codes("57P01", "57P02", "57P03", "57P05"),
    ),
    ErrorRow(
        ErrorClass.UNAVAILABLE,
        "the connection to the database failed",
        sqlstates=_codes("08"),  # connection exception
    ),
    ErrorRow(
        ErrorClass.UNAVAILABLE,
        "the database is out of connections, disk or memory",
        sqlstates=_codes("53"),  # insufficient resources
    ),
    ErrorRow(
        ErrorClass.TRANSIENT,
        "a serialization failure or deadlock: the transaction can simply be tried again",
        sqlstates=_codes("40001", "40P01", "40003"),
    ),
    ErrorRow(
        ErrorClass.TRANSIENT,
        "a lock could not be taken in time",
        sqlstates=_codes("55P03"),
    ),
    # libpq failures carry no SQLSTATE: recognised by their message.
    ErrorRow(
        ErrorClass.UNAVAILABLE,
        "the database is out of connections",
        message=re.compile(r"too many clients|remaining connection slots are reserved"),
        message_types=(psycopg2.OperationalError,),
    ),
    ErrorRow(
        ErrorClass.UNAVAILABLE,
        "the database server cannot be reached",
        message=re.compile(
            r"could not connect|connection refused|could not translate host name|"
            r"the database system is (?:starting up|shutting down|in recovery mode|"
            r"not yet accepting connections)|no route to host|timeout expired",
            re.IGNORECASE,
        ),
        message_types=(psycopg2.OperationalError,),
    ),
    ErrorRow(
        ErrorClass.TRANSIENT,
        "the connection to the database was lost",
        types=(psycopg2.InterfaceError, sqlalchemy.exc.DisconnectionError),
        message=re.compile(r".", re.DOTALL),  # any other libpq error without a SQLSTATE
        message_types=(psycopg2.OperationalError,),
    ),
    ErrorRow(
        ErrorClass.TRANSIENT,
        "no database connection was free in time (pool exhausted)",
        types=(sqlalchemy.exc.TimeoutError,),
    ),
    ErrorRow(
        ErrorClass.TRANSIENT,
        "the SQLite database is locked or its file could not be read",
        message=re.compile(r"database is locked|disk I/O error|database table is locked"),
        message_types=(sqlite3.OperationalError, sqlalchemy.exc.OperationalError),
    ),
    # Redis (broker, result backend, guards) and kombu.
    ErrorRow(
        ErrorClass.UNAVAILABLE,
        "Redis refuses writes (a read-only replica, or out of memory)",
        types=(redis.exceptions.ReadOnlyError,),
        message=re.compile(r"^(?:OOM|MASTERDOWN|NOREPLICAS)\b"),
        message_types=(redis.exceptions.ResponseError,),
    ),
    ErrorRow(
        ErrorClass.TRANSIENT,
        "the connection to Redis was lost, timed out or Redis is loading its data",
        types=(
            redis.exceptions.ConnectionError,  # BusyLoadingError is one
            redis.exceptions.TimeoutError,
            redis.exceptions.TryAgainError,
            kombu.exceptions.OperationalError,
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Failure:
    """What `classify` found: the class, the table's reason and the error it matched."""

    error_class: ErrorClass
    reason: str
    error: str

    @property
    def retryable(self) -> bool:
        return self.error_class.retryable

    @property
    def retry_after_s(self) -> int:
        return RETRY_AFTER_S.get(self.error_class, RETRY_AFTER_S[ErrorClass.UNAVAILABLE])

    def describe(self) -> str:
        """One line for a log, a task outcome or a scan's error list."""
        return f"{self.error_class}: {self.reason} ({self.error})"


def classify(exc: BaseException) -> Failure:
    """The first row of `ERRORS` matching the error or what it wraps; otherwise permanent."""
    for error in _chain(exc):
        for row in ERRORS:
            if row.matches(error):
                return Failure(row.error_class, row.reason, _summary(error))
        if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
            return Failure(
                ErrorClass.TRANSIENT, "the connection to the database was lost", _summary(error)
            )
    coded = next((error for error in _chain(exc) if _sqlstate(error)), exc)
    return Failure(ErrorClass.PERMANENT, "not retryable", _summary(coded))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The driver error first (it carries the SQLSTATE), then the error, then its causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and id(orig) not in seen:
            seen.add(id(orig))
            yield orig
        yield current
        current = current.__cause__ or current.__context__


def _sqlstate(error: BaseException) -> str | None:
    code = getattr(error, "pgcode", None)
    return code if isinstance(code, str) and code else None


def _summary(error: BaseException) -> str:
    code = _sqlstate(error)
    first_line = (str(error).strip().splitlines() or [""])[0][:200]
    label = f"{type(error).__name__} {code}" if code else type(error).__name__
    return f"{label}: {first_line}" if first_line else label
