"""A resource's and a cluster's timeline from the real pipeline, on PostgreSQL and SQLite:
the change that opened a finding and the change that resolved it, removal, pagination."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from contracts.timeline import TimelineKind
from store.models import FindingEvent, KubeObject, ManifestVersion
from store.timeline import Cursor, Entry, find_resource, timeline
from tests.support.manifests import config_map, deployment
from tests.workers.conftest import Pipeline
from tests.workers.workloads import fixed, privileged

PRIVILEGED_PATH = "spec.template.spec.containers[0].securityContext.privileged"


@pytest.fixture(params=["postgresql", "sqlite"])
def any_pipeline(request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    yield request.getfixturevalue(
        "pipeline" if request.param == "postgresql" else "sqlite_pipeline"
    )


def _history(pipeline: Pipeline) -> None:
    """web: v1 clean-ish, v2 privileged, v3 a new image (still privileged), v4 fixed, then
    removed; a scan after each push."""
    base = deployment("web", namespace="shop")
    v3 = privileged("web", namespace="shop")
    v3["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    states = [base, privileged("web", namespace="shop"), v3, fixed(v3)]
    other = config_map("settings", namespace="shop")
    for state in states:
        pipeline.push_and_process("tl", [state, other])
        pipeline.run.run("k8smon.rescan", "tl")
    pipeline.push_and_process("tl", [other])
    pipeline.run.run("k8smon.rescan", "tl")


def _privileged(entries: list[Entry], kind: TimelineKind) -> Entry:
    found = [
        e
        for e in entries
        if e.kind == kind and e.finding is not None and e.finding.path == PRIVILEGED_PATH
    ]
    assert len(found) == 1, [(e.kind, e.finding) for e in entries]
    return found[0]


def test_opened_by_version_2_resolved_by_version_4_then_removed(any_pipeline: Pipeline) -> None:
    pipeline = any_pipeline
    _history(pipeline)
    session = pipeline.session
    session.expire_all()
    web = find_resource(session, "tl", kind="Deployment", namespace="shop", name="web")
    assert web is not None and web.deleted_at is not None
    versions = session.scalars(
        select(ManifestVersion.id)
        .where(ManifestVersion.object_id == web.id)
        .order_by(ManifestVersion.first_seen, ManifestVersion.id)
    ).all()
    assert len(versions) == 4

    entries = timeline(session, "tl", obj=web, limit=100).entries
    opened = _privileged(entries, TimelineKind.FINDING_OPENED)
    assert opened.change is not None
    assert (opened.change.version_id, opened.change.previous_version_id) == (
        versions[1],
        versions[0],
    )
    resolved = _privileged(entries, TimelineKind.FINDING_RESOLVED)
    assert resolved.change is not None and not resolved.removed
    assert (resolved.change.version_id, resolved.change.previous_version_id) == (
        versions[3],
        versions[2],
    )
    assert resolved.finding is not None and resolved.finding.status == "resolved"
    kinds = [e.kind for e in entries]
    # Newest first: the scan after the removal resolved web's remaining findings.
    deleted = kinds.index(TimelineKind.DELETED)
    assert all(e.removed for e in entries[:deleted]) and deleted > 0
    assert kinds.count(TimelineKind.CHANGED) == 3 and kinds.count(TimelineKind.CREATED) == 1
    assert entries[-1].kind == TimelineKind.CREATED and entries[-1].version_id == versions[0]
    assert all(e.ref is not None and e.ref.name == "web" for e in entries)
    # The other findings of web stayed open until the removal resolved them.
    removed = [e for e in entries if e.kind == TimelineKind.FINDING_RESOLVED and e.removed]
    assert removed and all(e.change is None and e.object_id == web.id for e in removed)
    assert [e.cursor for e in entries] == sorted((e.cursor for e in entries), reverse=True)


def test_cluster_timeline_pages_without_gaps_or_repeats(any_pipeline: Pipeline) -> None:
    pipeline = any_pipeline
    _history(pipeline)
    session = pipeline.session
    session.expire_all()
    everything = timeline(session, "tl", limit=500)
    assert everything.next_cursor is None
    kinds = {e.kind for e in everything.entries}
    assert kinds == set(TimelineKind)
    assert sum(e.kind == TimelineKind.SCAN for e in everything.entries) == 5
    pages: list[Entry] = []
    before = None
    while True:
        page = timeline(session, "tl", before=before, limit=3)
        assert len(page.entries) <= 3
        pages.extend(page.entries)
        if page.next_cursor is None:
            break
        before = Cursor.decode(page.next_cursor)
    assert [e.cursor for e in pages] == [e.cursor for e in everything.entries]

    only_findings = timeline(
        session,
        "tl",
        kinds={TimelineKind.FINDING_OPENED, TimelineKind.FINDING_RESOLVED},
        limit=500,
    )
    assert only_findings.entries and all(e.finding for e in only_findings.entries)
    events = session.scalars(select(FindingEvent).where(FindingEvent.cluster_id == "tl")).all()
    assert len(only_findings.entries) == len(events)
    settings = session.scalar(select(KubeObject).where(KubeObject.name == "settings"))
    assert settings is not None
    mine = timeline(session, "tl", obj=settings, limit=50).entries
    assert [e.kind for e in mine] == [TimelineKind.CREATED]


def test_a_cursor_not_made_here_is_refused() -> None:
    for bad in ("", "x", "1.2", "1.9.3", "-1.1.1", "1.1.1.1", "9" * 30 + ".1.1", "1.1." + "9" * 20):
        with pytest.raises(ValueError, match="before"):
            Cursor.decode(bad)
