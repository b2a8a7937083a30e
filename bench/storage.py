"""Storage growth per push: bytes the database gains for an unchanged push and for a 1% change."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from agent.normalise import normalise
from bench.corpus import generate
from bench.harness import Figure
from bench.ingest import _server_url
from contracts.hashing import content_hash, state_digest
from contracts.resources import ResourceRef
from contracts.wire import SNAPSHOT_SCHEMA_ID
from store import migrate
from store.clusters import create_cluster
from store.db import make_engine, make_session_factory, unit_of_work
from store.snapshots import apply_pending, stage_snapshot

AREA = "storage"
TABLES = ("manifest_bodies", "objects", "manifest_versions", "snapshots", "snapshot_items")


@contextmanager
def _database() -> Iterator[Engine]:
    name = f"k8smon_bench_storage_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(_server_url()).set(drivername="postgresql+psycopg2")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(admin_url.set(database=name).render_as_string(hide_password=False))
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _bytes(engine: Engine) -> int:
    """Table + index + TOAST bytes of the tables a push writes, after VACUUM."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in TABLES:
            conn.execute(text(f"VACUUM {table}"))
        return sum(
            conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": table}).scalar() or 0
            for table in TABLES
        )


def _envelope(objects: list[dict]) -> dict:
    digest = state_digest((ResourceRef.of(o).key, content_hash(o)) for o in objects)
    return {"schema": SNAPSHOT_SCHEMA_ID, "type": "full", "digest": digest, "objects": objects}


def run(*, quick: bool, out: Path) -> list[Figure]:
    count = 2_000 if quick else 5_000
    pushes = 5 if quick else 10
    objects = [normalise(o) for o in generate(count)]
    unchanged_growth: list[float] = []
    changed_growth: list[float] = []
    with _database() as engine:
        sessions = make_session_factory(engine)
        with unit_of_work(sessions) as session:
            create_cluster(session, "bench")

        def push(state: list[dict]) -> None:
            with unit_of_work(sessions) as session:
                stage_snapshot(session, "bench", envelope=_envelope(state))
            with unit_of_work(sessions) as session:
                apply_pending(session, "bench")

        push(objects)
        for _ in range(pushes):
            before = _bytes(engine)
            push(objects)
            unchanged_growth.append(float(_bytes(engine) - before))
        state = objects
        step = max(1, count // 100)
        for round_number in range(pushes):
            state = copy.deepcopy(state)
            for obj in state[round_number % step :: step]:
                obj.setdefault("metadata", {}).setdefault("annotations", {})["bench/round"] = str(
                    round_number
                )
            before = _bytes(engine)
            push(state)
            changed_growth.append(float(_bytes(engine) - before))
    return [
        Figure(
            AREA,
            f"storage bytes per unchanged full push ({count:,} objects)",
            "bytes",
            tuple(unchanged_growth),
            note="same digest: acknowledged, nothing stored",
        ),
        Figure(
            AREA,
            f"storage bytes per full push with 1% of {count:,} objects changed",
            "bytes",
            tuple(changed_growth),
            note="file growth after VACUUM: the 50 new bodies and versions, the superseded "
            "versions' end, and the snapshot's item list (dropped once applied)",
        ),
    ]
