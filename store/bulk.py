"""Engine-aware bulk helpers: COPY, insert-if-absent, per-row update by id, chunked IN lookups."""

from __future__ import annotations

import io
import struct
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple, TypeVar, cast

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CursorResult,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    TypeDecorator,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from store.db import dump_json, local_settings, on_postgresql

T = TypeVar("T")

# `cursor_tuple_fraction` of a cursor whose every row is read (`streamed_rows`).
ALL_ROWS = "1"

# Stay well below SQLite's 32,766 bound-parameter limit and PostgreSQL's 65,535.
CHUNK = 500


@contextmanager
def _raw_cursor(session: Session, statement: str, *, name: str | None = None) -> Iterator[Any]:
    """A psycopg2 cursor on the session's connection whose errors surface as SQLAlchemy's
    (DataError, IntegrityError, OperationalError...), like every other statement's, so
    callers and the workers' retry policy see one kind of exception. `name`: a server-side
    cursor of that name (its rows fetched `itersize` at a time)."""
    import psycopg2  # noqa: PLC0415 - PostgreSQL only

    connection = session.connection().connection
    cursor = connection.cursor() if name is None else connection.cursor(name=name)
    try:
        yield cursor
    except psycopg2.Error as problem:
        raise DBAPIError.instance(statement, None, problem, psycopg2.Error) from problem
    finally:
        cursor.close()


def streamed_rows(
    session: Session, query: Select[*tuple[Any, ...]], *, batch_size: int = 1000
) -> Iterator[tuple[Any, ...]]:
    """The rows of a Core SELECT as plain tuples, `batch_size` at a time. PostgreSQL: the
    driver's own server-side cursor, its values as the connection's type casters decode them
    (JSON by `store.db.load_json`), without SQLAlchemy's per-row result processing (a fifth
    of the time a scan spent reading every body); a query of such columns only (text,
    numbers, JSON). SQLite: SQLAlchemy's rows, `yield_per`.

    Every row is read, so the cursor is planned for all of them (`cursor_tuple_fraction` 1)
    rather than PostgreSQL's default for a cursor, the first tenth: for that, the read of one
    cluster's bodies in object id order walked the whole `objects` table by its primary key
    (every object of the fleet, for each cluster's scan: a cost growing with the fleet)
    instead of reading the cluster's objects by index and sorting them. A one-worker fleet
    scan of 200 clusters x 2,000 objects: PostgreSQL 53.4 -> 29.3 CPU-s."""
    session.flush()  # what the ORM's execute would have flushed first
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        yield from connection.execute(query.execution_options(yield_per=batch_size))
        return
    compiled = query.compile(dialect=connection.dialect)
    statement = str(compiled)
    with _raw_cursor(session, statement, name=f"k8smon_rows_{uuid.uuid4().hex}") as cursor:
        cursor.itersize = batch_size
        with local_settings(session, cursor_tuple_fraction=ALL_ROWS):
            cursor.execute(statement, compiled.params)  # DECLARE: planned here
        yield from cursor


def core_rows(session: Session, query: Select[*tuple[Any, ...]]) -> Sequence[Any]:
    """A column SELECT's rows through Core, after the flush the ORM's execute would make:
    the ORM's per-row loading is not needed for plain columns (a scan reads thousands)."""
    session.flush()
    return session.connection().execute(query).all()


def _driver_values(
    rows: Sequence[dict[str, Any]], *, columns: Sequence[str], json_columns: set[str]
) -> list[tuple[Any, ...]]:
    """Rows as psycopg2 parameter tuples in column order, JSON columns encoded by orjson."""
    from psycopg2.extras import Json  # noqa: PLC0415 - PostgreSQL only

    return [
        tuple(
            Json(row[c], dumps=dump_json) if c in json_columns and row[c] is not None else row[c]
            for c in columns
        )
        for row in rows
    ]


def chunked(items: Sequence[T] | Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _copy_field(value: Any, *, json_column: bool) -> str:
    """One field of COPY's text format: `\\N` for NULL, backslash, tab and line ends escaped."""
    if value is None:
        return "\\N"
    if json_column:
        text = value.decode() if type(value) is bytes else dump_json(value)
    elif isinstance(value, bool):
        return "t" if value else "f"
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = _escape(text)
    return text


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_NONE = type(None)
# Types whose text never holds a COPY special character, written once per distinct value.
_PLAIN_SCALARS = frozenset({int, float, bool, datetime})
_INT = {int}


def _escaped_all(texts: list[str]) -> list[str]:
    """COPY's escaping of many strings at once: the string methods run on their join (NUL,
    which PostgreSQL text cannot hold, separates them), not once per value in Python."""
    joined = "\x00".join(texts)
    if "\\" not in joined and "\t" not in joined and "\n" not in joined and "\r" not in joined:
        return texts
    parts = _escape(joined).split("\x00")
    if len(parts) != len(texts):  # a value held NUL (COPY refuses it): one at a time
        return [_escape(text) for text in texts]
    return parts


def _json_texts(values: list[Any]) -> list[str]:
    """COPY text of JSON values ("" for None), each distinct object encoded once (a scan's
    findings share their details mappings); `bytes` are already encoded JSON. JSON text never
    holds a raw tab or line end (encoders escape them), so only backslashes are doubled, in
    the values that have one."""
    memo: dict[int, str] = {}  # by id: every value is alive in `values` meanwhile
    texts = []
    for value in values:
        if value is None:
            texts.append("")
            continue
        text = memo.get(id(value))
        if text is None:
            text = value.decode() if type(value) is bytes else dump_json(value)
            if "\\" in text:
                text = text.replace("\\", "\\\\")
            memo[id(value)] = text
        texts.append(text)
    return texts


def _copy_column(values: list[Any], *, json_column: bool) -> list[str]:
    """One column of rows in COPY's text format (see `_copy_field`), a column at a time."""
    kinds = set(map(type, values))
    nulls = _NONE in kinds
    kinds.discard(_NONE)
    if json_column:
        texts = _json_texts(values)
    elif all(issubclass(kind, str) for kind in kinds):  # str and StrEnum: written as they are
        texts = _escaped_all([v or "" for v in values]) if kinds else [""] * len(values)
    elif kinds == _INT:  # ids: mostly distinct, their text is str()
        return ["\\N" if v is None else str(v) for v in values] if nulls else list(map(str, values))
    elif len(kinds) == 1 and kinds <= _PLAIN_SCALARS:  # one type: 1 and 1.0 never meet
        memo = {v: _copy_field(v, json_column=False) for v in set(values)}
        return [memo[v] for v in values]  # None included: `\\N`
    else:
        return [_copy_field(v, json_column=False) for v in values]
    if nulls:
        return ["\\N" if v is None else text for v, text in zip(values, texts, strict=True)]
    return texts


# Up to this many rows, `insert_ignoring_conflicts` sends one VALUES statement on PostgreSQL.
FEW_ROWS = 32


def dialect_insert(session: Session, table: Table) -> Any:
    """The session's dialect's INSERT into `table` (PostgreSQL's or SQLite's: both have
    `on_conflict_do_nothing`)."""
    return (postgresql_insert if on_postgresql(session) else sqlite_insert)(table)


def insert_ignoring_conflicts(
    session: Session, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING for many rows, fast on both engines.

    PostgreSQL: the rows are COPYed into a temporary table shaped like `table` (one per
    connection, emptied at commit), then moved over by one `INSERT ... SELECT ... ON CONFLICT
    DO NOTHING`: for a scan's thousands of findings about half the time of multi-row VALUES
    statements, which the server must parse first. Up to `FEW_ROWS` rows (a cluster's one
    inventory row, say) go as one multi-row VALUES statement instead: one round trip, not the
    staging table's four. SQLite: executemany. Every row must have the same keys.
    """
    if not rows:
        return
    if not on_postgresql(session) or len(rows) <= FEW_ROWS:
        session.execute(dialect_insert(session, table).on_conflict_do_nothing(), list(rows))
        return
    columns, payload = _copy_payload(table, rows)
    names = ", ".join(f'"{c}"' for c in columns)
    staging = f'"k8smon_staging_{table.name}"'
    statements = (
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "  # noqa: S608
        f'SELECT * FROM "{table.name}" WITH NO DATA',
        f"COPY {staging} ({names}) FROM STDIN",
        f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM {staging} '  # noqa: S608
        "ORDER BY ctid ON CONFLICT DO NOTHING",
        f"DELETE FROM {staging}",  # noqa: S608 - a second batch in the same transaction
    )
    with _raw_cursor(session, statements[2]) as cursor:
        cursor.execute(statements[0])
        cursor.copy_expert(statements[1], payload)
        cursor.execute(statements[2])
        cursor.execute(statements[3])


def _copy_payload(table: Table, rows: Sequence[dict[str, Any]]) -> tuple[list[str], io.BytesIO]:
    """The rows' columns and their COPY text, UTF-8 (every row must have the same keys).

    Built a column at a time (`_copy_column`): a scan writes hundreds of thousands of fields,
    and a Python call per field was most of what writing findings cost the worker. A JSON
    column's value may be given already encoded (`bytes`: UTF-8 JSON text, as orjson and
    `contracts.hashing.canonical_json` write it, never a raw tab or line end): it is written
    as it is, its backslashes escaped.
    """
    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON | JSONB)}
    texts = [_copy_column([row[c] for row in rows], json_column=c in json_columns) for c in columns]
    lines = "\n".join(map("\t".join, zip(*texts, strict=True)))
    return columns, io.BytesIO((lines + "\n").encode())


def _json_bytes(value: Any) -> bytes:
    """`store.db.dump_json` as UTF-8 bytes (orjson's own output, not decoded and re-encoded)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return dump_json(value).encode()


def keyed_json_payload(
    table: Table,
    *,
    keys: tuple[str, Sequence[str]],
    documents: tuple[str, Sequence[Any]],
    same: Mapping[str, Any],
) -> tuple[list[str], io.BytesIO]:
    """`_copy_payload` of rows that differ only in a text key and a JSON document (the key
    column's name and values, the JSON column's name and values), the other columns holding
    the values `same` gives in every row. Each row's line is assembled as bytes around the
    encoder's output: the large documents (a scan's cached results, 1.7 kB an object) are not
    decoded, joined as text and encoded again, a third of the time `_copy_payload` took."""
    (key_column, key_values), (json_column, values) = keys, documents
    if len(key_values) != len(values):
        raise ValueError(f"{len(key_values)} keys for {len(values)} documents")
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON | JSONB)}
    if json_column not in json_columns:
        raise ValueError(f"{json_column} is no JSON column of {table.name}")
    tail = "".join(
        "\t" + _copy_column([value], json_column=name in json_columns)[0]
        for name, value in same.items()
    )
    end = (tail + "\n").encode()
    lines = []
    for key, value in zip(_copy_column(list(key_values), json_column=False), values, strict=True):
        if value is None:
            document = b"\\N"
        else:
            # JSON text never holds a raw tab or line end (encoders escape them): only its
            # backslashes are COPY's to escape.
            document = value if type(value) is bytes else _json_bytes(value)
            if b"\\" in document:
                document = document.replace(b"\\", b"\\\\")
        lines.append(key.encode() + b"\t" + document + end)
    return [key_column, json_column, *same], io.BytesIO(b"".join(lines))


class Repeat(NamedTuple):
    """A column of `copy_columns` whose every row holds this one value (encoded once)."""

    value: Any


Columns = Mapping[str, "Sequence[Any] | Repeat"]


def _columns_payload(table: Table, columns: Columns, count: int) -> tuple[list[str], io.BytesIO]:
    """`_copy_payload` of `count` rows given a column at a time (each column a sequence of
    `count` values, or a `Repeat`): no row mapping is built, and a repeated value is encoded
    once."""
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON | JSONB)}
    texts = []
    for name, values in columns.items():
        json_column = name in json_columns
        if isinstance(values, Repeat):
            texts.append(_copy_column([values.value], json_column=json_column) * count)
        else:
            if len(values) != count:
                raise ValueError(f"column {name}: {len(values)} values for {count} rows")
            texts.append(_copy_column(list(values), json_column=json_column))
    lines = "\n".join(map("\t".join, zip(*texts, strict=True)))
    return list(columns), io.BytesIO((lines + "\n").encode())


def copy_columns(session: Session, table: Table, columns: Columns, *, count: int) -> None:
    """`copy_rows` of `count` rows given a column at a time (`_columns_payload`): PostgreSQL
    only, one COPY into the table."""
    if not count:
        return
    names, payload = _columns_payload(table, columns, count)
    listed = ", ".join(f'"{c}"' for c in names)
    statement = f'COPY "{table.name}" ({listed}) FROM STDIN'
    session.flush()
    with _raw_cursor(session, statement) as cursor:
        cursor.copy_expert(statement, payload)


def copy_absent_columns(session: Session, table: Table, columns: Columns, *, count: int) -> bool:
    """`insert_absent` of `count` rows given a column at a time (`_columns_payload`),
    PostgreSQL only: one COPY into the table under a savepoint. True when one of the rows
    existed already (another transaction stored it since the caller looked): then nothing
    is stored, and the caller goes the slower way (`insert_ignoring_conflicts`)."""
    if not count:
        return False
    names, payload = _columns_payload(table, columns, count)
    listed = ", ".join(f'"{c}"' for c in names)
    statement = f'COPY "{table.name}" ({listed}) FROM STDIN'
    session.flush()
    return _copy_absent(session.connection().connection, statement, payload)


# `next_ids`' statement: the sequence is looked up once (a sub-select: an InitPlan), not once
# per value as when the look-up was a subquery in FROM, which the planner flattens into the
# select list (pg_get_serial_sequence reads the catalogue): a cold scan of 16 bench clusters
# spent 363 ms of PostgreSQL's time on 54,143 values that way (pg_stat_statements); 50,000
# take 13 ms with one look-up.
_NEXT_IDS = (
    "SELECT nextval((SELECT pg_get_serial_sequence(%s, 'id')::regclass)) "
    "FROM generate_series(1, %s)"
)


def next_ids(session: Session, table: Table, count: int) -> list[int]:
    """`count` values of the sequence of `table.id` (PostgreSQL): the ids of rows about to be
    COPYed with them, so the writer knows them without reading the rows back."""
    if not count:
        return []
    statement = _NEXT_IDS
    session.flush()
    with _raw_cursor(session, statement) as cursor:
        cursor.execute(statement, (table.name, count))
        return [row[0] for row in cursor.fetchall()]


def copy_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Plain INSERT of many rows that cannot conflict (e.g. the items of a new snapshot).

    PostgreSQL: one COPY into the table, a fraction of the time of multi-row INSERTs, which
    the server must parse first (and a round trip per page of rows). SQLite: executemany.
    Every row must have the same keys.
    """
    if not rows:
        return
    if not on_postgresql(session):
        session.execute(table.insert(), list(rows))
        return
    columns, payload = _copy_payload(table, rows)
    names = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    session.flush()
    with _raw_cursor(session, statement) as cursor:
        cursor.copy_expert(statement, payload)


# COPY's binary format (PostgreSQL): signature, flags, header extension length; the trailer.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_BINARY_TRAILER = struct.pack("!h", -1)


def _binary_field(column_type: Any, value: Any) -> bytes:
    """One field of COPY's binary format: its length, then the value as the server sends it."""
    if value is None:
        return struct.pack("!i", -1)
    stored = _stored_type(column_type)
    if isinstance(stored, LargeBinary):
        data = bytes(value)
    elif isinstance(stored, Boolean):
        data = b"\x01" if value else b"\x00"
    elif isinstance(stored, BigInteger):
        data = struct.pack("!q", value)
    elif isinstance(stored, Integer):
        data = struct.pack("!i", value)
    else:
        raise TypeError(f"no binary COPY encoding for {stored!r}")
    return struct.pack("!i", len(data)) + data


def insert_binary_row(session: Session, table: Table, row: dict[str, Any]) -> None:
    """INSERT one row holding a large binary value (columns: binary, boolean, integers).

    PostgreSQL: one COPY in binary format, the bytes sent as they are: for a 5 MB value about
    a quarter of the time of an INSERT, whose parameter psycopg2 must send as hex text for
    the server to parse back. SQLite: a plain INSERT.
    """
    if not on_postgresql(session):
        session.execute(table.insert(), [row])
        return
    statement, payload = binary_copy(table, row)
    session.flush()
    with _raw_cursor(session, statement) as cursor:
        cursor.copy_expert(statement, io.BytesIO(payload))


def binary_copy(table: Table, row: dict[str, Any]) -> tuple[str, bytes]:
    """The COPY statement and its binary-format payload storing `row` in `table` (PostgreSQL;
    columns: binary, boolean, integers)."""
    columns = list(row)
    payload = b"".join(
        [
            _BINARY_HEADER,
            struct.pack("!h", len(columns)),
            *(_binary_field(table.c[c].type, row[c]) for c in columns),
            _BINARY_TRAILER,
        ]
    )
    names = ", ".join(f'"{c}"' for c in columns)
    return f'COPY "{table.name}" ({names}) FROM STDIN (FORMAT binary)', payload


def insert_absent(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    payload: tuple[list[str], io.BytesIO] | None = None,
) -> None:
    """`insert_ignoring_conflicts` for rows the caller has just seen absent from the table.

    PostgreSQL: one COPY straight into the table (the staging table's second copy of every
    row saved) under a savepoint; should a row exist after all (another transaction stored it
    meanwhile), the COPY is undone and the rows go through `insert_ignoring_conflicts`, so the
    outcome is the same. SQLite: `insert_ignoring_conflicts`. `payload`: as for
    `inserting_absent`.
    """
    with inserting_absent(session, table, rows, background=False, payload=payload):
        pass


@contextmanager
def inserting_absent(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    background: bool = True,
    payload: tuple[list[str], io.BytesIO] | None = None,
) -> Iterator[None]:
    """`insert_absent`, the rows sent while the block runs: on PostgreSQL the COPY text is
    built first, then sent from a thread, so that the server stores the rows while this
    process computes something else (the thread waits on the server without the GIL). The
    block must not use the session; the rows are stored (or an error raised) when it ends,
    in the session's transaction as ever. SQLite, or `background=False`: stored first.
    `payload`: the rows' COPY text already built (`keyed_json_payload`), PostgreSQL."""
    if not rows or not on_postgresql(session):
        if rows:
            insert_ignoring_conflicts(session, table, rows)
        yield
        return
    columns, text = payload or _copy_payload(table, rows)
    names = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    session.flush()
    connection = session.connection().connection
    outcome: list[bool | BaseException] = []

    def send() -> None:
        try:
            outcome.append(_copy_absent(connection, statement, text))
        except BaseException as problem:  # handed to the caller's thread
            outcome.append(problem)

    if background:
        sender = threading.Thread(target=send, name="k8smon-copy", daemon=True)
        sender.start()
        try:
            yield
        finally:
            sender.join()
    else:
        send()
        yield
    (result,) = outcome
    if isinstance(result, BaseException):
        raise result
    if result:  # raced: another transaction stored one of the rows meanwhile
        insert_ignoring_conflicts(session, table, rows)


def _copy_absent(connection: Any, statement: str, payload: io.BytesIO) -> bool:
    """COPY the payload under a savepoint; True (and nothing stored) when a row existed."""
    import psycopg2.errors  # noqa: PLC0415 - PostgreSQL only

    cursor = connection.cursor()
    try:
        cursor.execute("SAVEPOINT k8smon_insert_absent")
        try:
            # The whole payload in one read: a read per 8 kB would take the GIL back each time.
            cursor.copy_expert(statement, payload, size=max(len(payload.getbuffer()), 8192))
        except psycopg2.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT k8smon_insert_absent")
            raced = True
        else:
            raced = False
        cursor.execute("RELEASE SAVEPOINT k8smon_insert_absent")
    except psycopg2.Error as problem:
        raise DBAPIError.instance(statement, None, problem, psycopg2.Error) from problem
    finally:
        cursor.close()
    return raced


def _stored_type(type_: Any) -> Any:
    return type_.impl_instance if isinstance(type_, TypeDecorator) else type_


def update_rows_by_id(session: Session, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE many rows by primary key `id`, each with its own values (rows share their keys).

    PostgreSQL: one `UPDATE ... FROM (VALUES ...)` per page through `execute_values`; an
    executemany would make one round trip per row. SQLite: SQLAlchemy's bulk UPDATE by id.
    """
    if not rows:
        return
    if not on_postgresql(session):
        session.execute(update(model), list(rows))
        return
    from psycopg2.extras import execute_values  # noqa: PLC0415 - PostgreSQL only

    table: Table = model.__table__
    dialect = session.get_bind().dialect
    columns = ["id", *sorted(c for c in rows[0] if c != "id")]
    # A TypeDecorator (UtcDateTime, EnumText) is cast as the type it stores.
    types = {c: _stored_type(table.c[c].type) for c in columns}
    json_columns = {c for c in columns if isinstance(types[c], JSON | JSONB)}
    # Strings are cast to text, not varchar(n): an explicit cast would silently truncate, while
    # assigning text to a varchar(n) column refuses a value that is too long, as usual.
    casts = {
        c: "text" if isinstance(types[c], String) else types[c].compile(dialect=dialect)
        for c in columns
    }
    template = "(" + ", ".join(f"%s::{casts[c]}" for c in columns) + ")"
    values = _driver_values(rows, columns=columns, json_columns=json_columns)
    assignments = ", ".join(f'"{c}" = v."{c}"' for c in columns if c != "id")
    names = ", ".join(f'"{c}"' for c in columns)
    sql = (
        f'UPDATE "{table.name}" SET {assignments} FROM (VALUES %s) AS v ({names}) '  # noqa: S608
        f'WHERE "{table.name}".id = v.id'
    )
    session.flush()
    with _raw_cursor(session, sql) as cursor:
        execute_values(cursor, sql, values, template=template, page_size=1000)


def table_of(model: Any) -> Table:
    """A mapped class's Table (the ORM types `__table__` as a plain FromClause)."""
    return cast(Table, model.__table__)


def affected(result: Any) -> int:
    """Rows an UPDATE or DELETE touched (`CursorResult.rowcount`; 0 when unknown)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)
