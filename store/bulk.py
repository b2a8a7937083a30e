"""Engine-aware bulk helpers: insert-if-absent and chunked IN lookups."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import JSON, Table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

T = TypeVar("T")

# Stay well below SQLite's 32,766 bound-parameter limit and PostgreSQL's 65,535.
CHUNK = 500


def chunked(items: Sequence[T] | Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def insert_ignoring_conflicts(
    session: Session, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING for many rows, fast on both engines.

    PostgreSQL: psycopg2's `execute_values` (pages of multi-row VALUES, one statement text);
    SQLAlchemy's multi-row `values()` recompiles for every batch and plain executemany makes
    one round trip per row. SQLite: executemany. Every row must have the same keys.
    """
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(sqlite_insert(table).on_conflict_do_nothing(), list(rows))
        return
    from psycopg2.extras import Json, execute_values  # noqa: PLC0415 - PostgreSQL only

    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON | JSONB)}
    values = [
        tuple(
            Json(row[c]) if c in json_columns and row[c] is not None else row[c]
            for c in columns
        )
        for row in rows
    ]
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES %s ON CONFLICT DO NOTHING'  # noqa: S608
    cursor = session.connection().connection.cursor()
    try:
        execute_values(cursor, sql, values, page_size=1000)
    finally:
        cursor.close()
