"""A push that changes a cluster's state is scanned on its own (debounced per cluster); the
same state is never scanned twice, and a push during a running scan is covered after it."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from contracts.states import ScanTrigger
from store.models import ScanRun
from store.scans import finish_scan_run, start_scan_run
from tests.workers.conftest import Pipeline
from tests.workers.test_embedded_sqlite import active
from tests.workers.test_scan_lifecycle import offline
from tests.workers.workloads import cluster_state, fixed
from workers.services.scanning import push_scan_due


def runs(pipeline: Pipeline, cluster_id: str) -> list[tuple[str, str]]:
    return [
        (r.trigger, r.state)
        for r in pipeline.session.scalars(
            select(ScanRun).where(ScanRun.cluster_id == cluster_id).order_by(ScanRun.id)
        )
    ]


def test_first_push_and_each_change_are_scanned(make_pipeline: Callable[..., Pipeline]) -> None:
    pipeline = make_pipeline(scan_on_push=True)
    objects = cluster_state("sop", 5)
    pipeline.push_and_process("sop", objects)
    assert runs(pipeline, "sop") == [(ScanTrigger.PUSH, "done")]
    assert active(pipeline, "sop") == offline(objects, "sop")

    # The same state again: nothing to scan.
    pipeline.push_and_process("sop", objects)
    assert runs(pipeline, "sop") == [(ScanTrigger.PUSH, "done")]

    changed = [fixed(objects[0]), *objects[1:]]
    pipeline.push_and_process("sop", changed)
    assert runs(pipeline, "sop") == [(ScanTrigger.PUSH, "done")] * 2
    last = pipeline.session.scalars(
        select(ScanRun).where(ScanRun.cluster_id == "sop").order_by(ScanRun.id.desc())
    ).first()
    assert last is not None and last.counts["incremental"] == 1
    assert active(pipeline, "sop") == offline(changed, "sop")


def test_no_scan_on_push_when_turned_off(make_pipeline: Callable[..., Pipeline]) -> None:
    pipeline = make_pipeline(scan_on_push=False)
    pipeline.push_and_process("sop-off", cluster_state("sopoff", 2))
    assert runs(pipeline, "sop-off") == []


def test_a_running_scan_defers_the_push_scan_until_it_ends(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_pipeline(scan_on_push=False)
    objects = cluster_state("deb", 3)
    pipeline.push_and_process("deb", objects)
    session = pipeline.session
    assert push_scan_due(session, "deb")  # applied, never scanned
    running = start_scan_run(session, "deb", trigger="rescan", catalogue_version="x")
    session.commit()
    assert not push_scan_due(session, "deb")  # covered by the running scan
    pipeline.push_and_process("deb", [fixed(objects[0]), *objects[1:]])
    assert not push_scan_due(session, "deb")  # a new state, but a scan is running
    finish_scan_run(session, running.id, counts={}, errors=[])
    session.commit()
    assert push_scan_due(session, "deb")  # the scan ended before covering the new state
