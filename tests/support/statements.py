"""The SQL statements a connection or engine runs through SQLAlchemy while a block runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, event


@contextmanager
def recorded_statements(bind: Connection | Engine) -> Iterator[list[str]]:
    """Every statement `bind` executes inside the block, whitespace collapsed, in order (the
    driver's own cursors, as `store.bulk`'s COPY uses, are not seen)."""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(bind, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(bind, "before_cursor_execute", seen)
