"""Bulk helpers: per-row UPDATE by id on both engines, with JSON, NULLs and length checks;
COPY, insert-if-absent and streamed reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from store.bulk import (
    FEW_ROWS,
    _copy_payload,
    copy_rows,
    insert_absent,
    insert_ignoring_conflicts,
    keyed_json_payload,
    next_ids,
    streamed_rows,
    table_of,
    update_rows_by_id,
)
from store.models import Finding, RuleResultCache
from store.rule_cache import cached_results, store_results
from store.types import utcnow
from tests.conftest import _savepoint_session
from tests.support.factories import make_cluster
from tests.support.statements import recorded_statements


def _finding(cluster_id: str, n: int) -> Finding:
    return Finding(
        cluster_id=cluster_id,
        fingerprint=f"{n:064x}",
        rule_id="KM-101",
        api_version="v1",
        kind="Pod",
        namespace="shop",
        name=f"web-{n}",
        severity="high",
        message="privileged",
        status="new",
        details={"n": n},
    )


def test_update_rows_by_id_sets_each_rows_own_values(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "bulk")
    rows = [_finding("bulk", n) for n in range(3)]
    session.add_all(rows)
    session.flush()
    later = utcnow() + timedelta(hours=1)
    update_rows_by_id(
        session,
        Finding,
        [
            {
                "id": rows[0].id,
                "status": "open",
                "message": "still privileged",
                "resolved_at": None,
                "details": {"source": "object", "cis": ["5.2.1"]},
                "last_seen": later,
            },
            {
                "id": rows[2].id,
                "status": "resolved",
                "message": "gone",
                "resolved_at": later,
                "details": {"n": 2, "big": 2**63 - 1},
                "last_seen": later,
            },
        ],
    )
    session.expire_all()
    found = {
        f.name: f for f in session.scalars(select(Finding).where(Finding.cluster_id == "bulk"))
    }
    assert (found["web-0"].status, found["web-0"].message) == ("open", "still privileged")
    assert found["web-0"].details == {"source": "object", "cis": ["5.2.1"]}
    assert found["web-0"].last_seen == later and found["web-0"].resolved_at is None
    assert (found["web-1"].status, found["web-1"].details) == ("new", {"n": 1})
    assert found["web-2"].resolved_at == later and found["web-2"].details["big"] == 2**63 - 1


@pytest.fixture
def pg_session(store_pg_engine: Engine) -> Iterator[Session]:
    yield from _savepoint_session(store_pg_engine)


def test_update_rows_by_id_refuses_a_value_too_long_on_postgresql(pg_session: Session) -> None:
    """Never a silent truncation (SQLite does not enforce VARCHAR lengths at all)."""
    session = pg_session
    make_cluster(session, "bulk-long")
    row = _finding("bulk-long", 7)
    session.add(row)
    session.flush()
    with pytest.raises(sqlalchemy.exc.DataError), session.begin_nested():
        update_rows_by_id(session, Finding, [{"id": row.id, "status": "x" * 40}])


TRICKY = "tab\there\nnew line\r\\N back\\slash \\t é \U0001f600 \x01"


def _finding_row(cluster_id: str, n: int, message: str, *, at: object) -> dict[str, object]:
    """A findings row for the bulk inserts, JSON holding COPY's special characters."""
    return {
        "cluster_id": cluster_id,
        "fingerprint": f"{n:064x}",
        "rule_id": "KM-101",
        "api_version": "v1",
        "kind": "Pod",
        "namespace": None if n % 2 else "shop",
        "name": f"web-{n}",
        "container": None,
        "path": "spec.containers[0]",
        "severity": "high",
        "message": message,
        "status": "new",
        "first_seen": at,
        "last_seen": at,
        "details": {"text": TRICKY, "list": [None, True, 2**63 - 1], "n": n},
    }


def test_insert_ignoring_conflicts_stores_every_value_exactly_and_each_row_once(
    any_db_session: Session,
) -> None:
    """PostgreSQL COPYs the rows through a staging table: text with COPY's special characters,
    JSON holding them, NULLs, times; a second batch in the same transaction; rows already
    there are skipped."""
    session = any_db_session
    make_cluster(session, "copy")
    at = utcnow()

    def row(n: int, message: str) -> dict[str, object]:
        return _finding_row("copy", n, message, at=at)

    insert_ignoring_conflicts(session, table_of(Finding), [row(0, TRICKY), row(1, "plain")])
    insert_ignoring_conflicts(session, table_of(Finding), [row(1, "again"), row(2, "")])
    session.expire_all()
    found = {
        f.name: f for f in session.scalars(select(Finding).where(Finding.cluster_id == "copy"))
    }
    assert sorted(found) == ["web-0", "web-1", "web-2"]
    assert found["web-0"].message == TRICKY and found["web-0"].details["text"] == TRICKY
    assert found["web-0"].details["list"] == [None, True, 2**63 - 1]
    assert found["web-1"].message == "plain" and found["web-1"].namespace is None
    assert found["web-2"].message == "" and found["web-2"].container is None
    assert found["web-2"].first_seen == at and found["web-0"].id < found["web-2"].id


def test_insert_ignoring_conflicts_of_many_rows_copies_them_exactly(
    any_db_session: Session,
) -> None:
    """More than `FEW_ROWS` rows take the staging table's COPY on PostgreSQL (the test above,
    with fewer, takes one VALUES statement): the same values, each row once, in order."""
    session = any_db_session
    make_cluster(session, "many")
    at = utcnow()
    count = FEW_ROWS + 5
    rows = [_finding_row("many", n, TRICKY if n % 2 else f"m{n}", at=at) for n in range(count)]
    bind = session.connection()
    with recorded_statements(bind) as statements:
        insert_ignoring_conflicts(session, table_of(Finding), rows[: count - 1])
        insert_ignoring_conflicts(session, table_of(Finding), rows[1:])  # one new, the rest there
    if bind.dialect.name == "postgresql":  # the staging table's statements go on the driver
        assert not any(s.startswith("INSERT INTO findings") for s in statements)
    session.expire_all()
    found = sorted(
        session.scalars(select(Finding).where(Finding.cluster_id == "many")), key=lambda f: f.id
    )
    assert [f.name for f in found] == [f"web-{n}" for n in range(count)]
    assert all(f.message == (TRICKY if n % 2 else f"m{n}") for n, f in enumerate(found))
    assert all(f.details["text"] == TRICKY and f.details["n"] == n for n, f in enumerate(found))


def test_few_rows_are_one_statement_on_postgresql(db_session: Session) -> None:
    """A row or two (a cluster's inventory row) is one round trip, not the staging table's."""
    session = db_session
    make_cluster(session, "few")
    with recorded_statements(session.connection()) as statements:
        insert_ignoring_conflicts(
            session, table_of(Finding), [_finding_row("few", 0, TRICKY, at=utcnow())]
        )
    assert len(statements) == 1 and "ON CONFLICT DO NOTHING" in statements[0]


def test_insert_absent_and_copy_rows_store_every_value_exactly(any_db_session: Session) -> None:
    """`insert_absent` COPYs straight into the table (PostgreSQL); when a row turns out to be
    there already (another transaction stored it since the caller looked) the COPY is undone
    and every row is still stored once, the existing one untouched. `copy_rows` COPYs rows
    that cannot conflict. Both keep COPY's special characters, JSON, NULLs and times exact."""
    session = any_db_session
    make_cluster(session, "absent")
    at = utcnow()

    def row(n: int, message: str) -> dict[str, object]:
        return _finding_row("absent", n, message, at=at)

    insert_absent(session, table_of(Finding), [row(0, TRICKY), row(1, "plain")])
    insert_absent(session, table_of(Finding), [row(1, "raced"), row(2, "")])  # web-1 exists
    copy_rows(session, table_of(Finding), [row(3, TRICKY)])
    session.expire_all()
    found = {
        f.name: f for f in session.scalars(select(Finding).where(Finding.cluster_id == "absent"))
    }
    assert sorted(found) == ["web-0", "web-1", "web-2", "web-3"]
    for name in ("web-0", "web-3"):
        assert found[name].message == TRICKY and found[name].details["text"] == TRICKY
        assert found[name].details["list"] == [None, True, 2**63 - 1]
    assert found["web-1"].message == "plain" and found["web-1"].namespace is None
    assert found["web-2"].message == "" and found["web-2"].container is None
    assert found["web-2"].first_seen == at


def test_streamed_rows_are_the_query_rows_in_order(any_db_session: Session) -> None:
    """`streamed_rows` (PostgreSQL: the driver's server-side cursor) gives the rows SQLAlchemy
    gives, JSON decoded, in the query's order, across fetches of `batch_size`; a reader that
    stops early leaves the session usable."""
    session = any_db_session
    make_cluster(session, "sr")
    session.add_all([_finding("sr", n) for n in range(7)])
    session.flush()
    query = (
        select(Finding.fingerprint, Finding.details, Finding.name)
        .where(Finding.cluster_id == "sr")
        .order_by(Finding.name.desc())
    )
    expected = [tuple(row) for row in session.execute(query)]
    assert len(expected) == 7
    assert [tuple(row) for row in streamed_rows(session, query, batch_size=3)] == expected
    assert expected[0][1] == {"n": 6}
    first = streamed_rows(session, query, batch_size=2)
    assert tuple(next(first)) == expected[0]
    first.close()
    assert session.scalar(select(Finding.name).where(Finding.fingerprint == f"{0:064x}")) == "web-0"


def _primary_key_scans(session: Session) -> int:
    """Scans of `findings`' primary key index so far in this transaction."""
    return int(
        session.scalar(text("SELECT pg_stat_get_xact_numscans('pk_findings'::regclass)")) or 0
    )


def test_streamed_rows_are_planned_for_every_row(db_session: Session) -> None:
    """A cursor is planned by default for its first tenth of rows: one cluster's rows in id
    order then walk the whole table by primary key, filtering (a cost growing with the
    fleet). `streamed_rows` reads every row and is planned for all of them: by the cluster's
    index, then sorted."""
    session = db_session
    for c in range(30):
        make_cluster(session, f"pl-{c}")
    session.add_all([_finding(f"pl-{c}", c * 100 + n) for c in range(30) for n in range(100)])
    session.flush()
    session.execute(text("ANALYZE findings"))
    query = select(Finding.fingerprint, Finding.details).where(Finding.cluster_id == "pl-7")
    query = query.order_by(Finding.id)
    statement = query.compile(dialect=session.get_bind().dialect)
    before = _primary_key_scans(session)
    cursor = session.connection().connection.cursor(name="default_plan")
    cursor.execute(str(statement), statement.params)  # a cursor as the driver declares it
    assert len(cursor.fetchall()) == 100
    cursor.close()
    walked = _primary_key_scans(session)
    assert walked > before  # the default plan: the primary key, every row of the table
    rows = list(streamed_rows(session, query, batch_size=30))
    assert [fp for fp, _details in rows] == [f"{700 + n:064x}" for n in range(100)]
    assert _primary_key_scans(session) == walked
    assert session.scalar(text("SHOW cursor_tuple_fraction")) == "0.1"  # put back


def test_next_ids_look_the_sequence_up_once(db_session: Session) -> None:
    """`next_ids` takes distinct increasing values of `findings.id`'s sequence, the sequence
    looked up once per statement (an InitPlan) rather than once per value (a cold scan takes
    thousands: as a subquery in FROM the look-up was flattened into every row's nextval)."""
    from store.bulk import _NEXT_IDS  # noqa: PLC0415

    session = db_session
    ids = next_ids(session, table_of(Finding), 5)
    assert len(set(ids)) == 5 and ids == sorted(ids)
    with session.connection().connection.cursor() as cursor:
        cursor.execute("EXPLAIN (VERBOSE, FORMAT JSON) " + _NEXT_IDS, ("findings", 5))
        ((plan,),) = cursor.fetchall()
    top = plan[0]["Plan"]
    assert "pg_get_serial_sequence" not in " ".join(top["Output"]), top
    assert [p["Subplan Name"] for p in top.get("Plans", [])][:1] == ["InitPlan 1 (returns $0)"]
    assert next_ids(session, table_of(Finding), 0) == []


def test_keyed_json_payload_is_the_copy_text_of_the_same_rows(any_db_session: Session) -> None:
    """`keyed_json_payload` (rows differing only in key and document, assembled as bytes)
    writes each row exactly as `_copy_payload` does (COPY's special characters, non-ASCII,
    integers beyond 64 bits, a document given encoded, none), and the cache's rows stored
    through it read back the same on both engines."""
    at = utcnow()
    documents: list[object] = [
        [{"message": TRICKY, "path": "a\\b", "n": 2**70}],
        {"k\tey": ["x\ny", None, True, 1.5]},
        b'{"pre":"encoded \\\\ once"}',
        None,
        [],
    ]
    keys = [f"{n:064x}" for n in range(len(documents))]
    keys[1] = "key with \\ and \t tab"
    rows = [
        {"content_hash": key, "results": doc, "catalogue_version": "v\\1", "created_at": at}
        for key, doc in zip(keys, documents, strict=True)
    ]
    table = table_of(RuleResultCache)
    columns, text = keyed_json_payload(
        table,
        keys=("content_hash", keys),
        documents=("results", documents),
        same={"catalogue_version": "v\\1", "created_at": at},
    )
    expected_columns, expected = _copy_payload(table, rows)

    def fields(names: list[str], payload: bytes) -> list[dict[str, bytes]]:
        lines = payload.split(b"\n")
        assert lines[-1] == b""
        return [dict(zip(names, line.split(b"\t"), strict=True)) for line in lines[:-1]]

    assert fields(columns, text.getvalue()) == fields(expected_columns, expected.getvalue())

    session = any_db_session
    stored = {f"{n:064x}": [{"message": TRICKY, "n": n, "path": "\\"}] for n in range(3)}
    store_results(session, stored, catalogue_version="cv-bulk")
    assert cached_results(session, stored, catalogue_version="cv-bulk") == stored
