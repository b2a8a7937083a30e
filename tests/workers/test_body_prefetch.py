"""Bodies read ahead for a batch's next full scan (`workers.body_prefetch`), and their use."""

from __future__ import annotations

import copy
import logging
import threading
import time

import pytest
from sqlalchemy.orm import Session, sessionmaker

from rules import ObjectView
from store.manifests import live_bodies_by_id
from store.snapshots import apply_pending, stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import deployment, full_envelope
from tests.support.statements import recorded_statements
from tests.workers.conftest import Pipeline
from workers import body_prefetch
from workers.body_prefetch import BodyPrefetch
from workers.engine import EngineHandle
from workers.services import scanning


def _push(session: Session, cluster_id: str, objects: list[dict[str, object]]) -> None:
    stage_snapshot(session, cluster_id, envelope=full_envelope(objects))
    apply_pending(session, cluster_id)


def _seen(views: list[tuple[str, ObjectView]]) -> list[tuple[str, object]]:
    return [(chash, view.manifest) for chash, view in views]


def test_views_of_bodies_read_ahead_are_those_of_the_live_rows_read_after_on_both_engines(
    any_db_session: Session, rules_engine: EngineHandle
) -> None:
    """Bodies read before the cluster changed give the views of the objects as the step
    reads them: an object whose body changed, or that is new, has its body read again; one
    deleted is left out; the others are taken as they were read."""
    session = any_db_session
    make_cluster(session, "a")
    objects = [deployment(f"web-{n}", namespace="shop", image=f"shop/web:{n}") for n in range(4)]
    _push(session, "a", objects)
    ahead = live_bodies_by_id(session, "a")
    changed = copy.deepcopy(objects)
    changed[1] = deployment("web-1", namespace="shop", image="shop/web:new")
    del changed[2]
    changed.append(deployment("api", namespace="shop", image="shop/api:1"))
    _push(session, "a", changed)

    live = scanning._live_rows(session, "a")
    last = scanning._last_finished(session, "a")
    read_here = scanning._live_views(session, "a", rules=rules_engine, live=live, last=last)
    taken = scanning._live_views(
        session, "a", rules=rules_engine, live=live, last=last, prefetched=ahead
    )
    assert _seen(taken) == _seen(read_here)
    assert [view.manifest["metadata"]["name"] for _h, view in taken] == [
        "web-0",
        "web-1",
        "web-3",
        "api",
    ]
    kept = {row.id for row in live} & set(ahead)
    assert len(kept) == 3  # web-0, web-1 (its body changed: read again) and web-3
    assert taken[0][1].manifest is ahead[live[0].id][1]  # taken as it was read ahead


class _Sessions:
    """A stand-in session factory whose unit of work only records its thread."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def __call__(self) -> _Sessions:
        self.threads.append(threading.get_ident())
        return self

    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


def _reads(monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> list[str]:
    read: list[str] = []

    def live_bodies_by_id(_session: object, cluster_id: str) -> dict[int, tuple[str, object]]:
        time.sleep(delay)
        if cluster_id == "broken":
            raise RuntimeError("connection lost")
        read.append(cluster_id)
        return {1: (f"hash-of-{cluster_id}", {"kind": "Pod"})}

    monkeypatch.setattr(body_prefetch, "live_bodies_by_id", live_bodies_by_id)
    return read


def test_bodies_are_read_ahead_on_a_thread_and_taken_by_their_cluster_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read = _reads(monkeypatch)
    sessions = _Sessions()
    with BodyPrefetch(sessions, background=True) as prefetch:  # type: ignore[arg-type]
        assert prefetch.take("a") is None  # nothing read ahead yet
        prefetch.ahead("a")
        assert prefetch.take("b") is None  # another cluster's read is not this one's
        prefetch.ahead("b")
        assert prefetch.take("b") == {1: ("hash-of-b", {"kind": "Pod"})}
        assert prefetch.take("b") is None  # taken once
    assert "b" in read
    assert threading.get_ident() not in sessions.threads


def test_a_failed_read_ahead_leaves_the_scan_to_read_its_bodies(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _reads(monkeypatch)
    with BodyPrefetch(_Sessions(), background=True) as prefetch:  # type: ignore[arg-type]
        prefetch.ahead("broken")
        with caplog.at_level(logging.WARNING, logger="k8smon.workers"):
            assert prefetch.take("broken") is None
    assert "cluster broken: its bodies were not read ahead" in caplog.text


def test_nothing_is_read_ahead_without_a_background_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite, or the tests' shared SAVEPOINT sessions: the scans read their own bodies."""
    read = _reads(monkeypatch)
    with BodyPrefetch(_Sessions(), background=False) as prefetch:  # type: ignore[arg-type]
        prefetch.ahead("a")
        assert prefetch.take("a") is None
    assert read == []


def test_leaving_waits_for_the_read_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """No read's transaction is left open behind a batch that returned."""
    read = _reads(monkeypatch, delay=0.2)
    sessions: sessionmaker[Session] = _Sessions()  # type: ignore[assignment]
    with BodyPrefetch(sessions, background=True) as prefetch:
        prefetch.ahead("a")
        time.sleep(0.05)  # the read has started: it is not cancelled, it ends
    assert read == ["a"]


def test_a_full_scan_step_reads_the_last_finished_scan_once_and_asks_for_no_body_it_has(
    any_pipeline: Pipeline,
) -> None:
    """A scan step's statements (both engines): the cluster's last finished scan is read once
    for the label-only reuse and the schema checks it skips (`_last_finished`), and a step
    that has every body asks for none by hash (`bodies_by_hash` of nothing runs nothing), and
    the cluster's inventory row is written by a statement that checks the cluster's state
    (not read again before)."""
    pipeline = any_pipeline
    pipeline.push_and_process("a", [deployment(f"w{n}", image=f"shop/w:{n}") for n in range(3)])
    # The pipeline's own connection (PostgreSQL) or engine (SQLite).
    with recorded_statements(pipeline.ctx.sessions.kw["bind"]) as statements:
        for _ in range(2):  # the first scan of the cluster, then a rescan after a change
            pipeline.run.run("k8smon.rescan", "a")
            pipeline.push_and_process(
                "a", [deployment(f"w{n}", image=f"shop/w:{n + 1}") for n in range(3)]
            )
    last_finished = [
        s
        for s in statements
        if s.startswith("SELECT scan_runs.snapshot_digest") and "WHERE scan_runs.cluster_id" in s
    ]
    assert len(last_finished) == 2  # once per scan step
    by_hash = [
        s
        for s in statements
        if s.startswith("SELECT manifest_bodies.content_hash, manifest_bodies.body")
    ]
    assert by_hash == []
    # The cluster's state is not read again to cache its inventory: the row's INSERT checks
    # the cluster is still in the state the step read it in (`InventoryState`).
    assert not [
        s for s in statements if s.startswith("SELECT clusters.current_digest, clusters.current_")
    ]
    written = [s for s in statements if s.startswith("INSERT INTO rule_result_cache")]
    inventory = [s for s in written if "clusters.current_snapshot_id" in s]
    assert len(inventory) == 2 and all("EXISTS (SELECT" in s for s in inventory)
