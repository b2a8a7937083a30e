"""Bulk helpers: per-row UPDATE by id on both engines, with JSON, NULLs and length checks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from store.bulk import update_rows_by_id
from store.models import Finding
from store.types import utcnow
from tests.conftest import _savepoint_session
from tests.support.factories import make_cluster


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
