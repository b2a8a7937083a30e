"""JSON-path search over current manifests: the same basic paths on PostgreSQL and SQLite."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session

from ingest.problems import Problem
from ingest.search import search_manifests
from store import clusters
from store.snapshots import apply_pending, stage_snapshot
from tests.support.manifests import cluster_objects, full_envelope


def _cluster_with(session: Session, objects: list[dict]) -> str:
    cluster_id = f"s-{uuid.uuid4().hex[:8]}"
    clusters.create_cluster(session, cluster_id)
    stage_snapshot(session, cluster_id, envelope=full_envelope(objects))
    apply_pending(session, cluster_id)
    session.flush()
    return cluster_id


def test_search_finds_images_on_both_engines(any_db_session: Session) -> None:
    objects = cluster_objects(6)
    mine = _cluster_with(any_db_session, objects)
    other = _cluster_with(any_db_session, cluster_objects(2))
    found = search_manifests(
        any_db_session, path="$.spec.template.spec.containers[*].image", cluster_ids=[mine]
    )
    assert {m["cluster_id"] for m in found} == {mine}
    assert sorted(v for m in found for v in m["values"]) == sorted(
        o["spec"]["template"]["spec"]["containers"][0]["image"]
        for o in objects
        if o["kind"] == "Deployment"
    )
    by_kind = search_manifests(
        any_db_session, path="$.data", kind="ConfigMap", cluster_ids=[mine, other]
    )
    assert {m["resource"]["kind"] for m in by_kind} == {"ConfigMap"}
    assert {m["cluster_id"] for m in by_kind} == {mine, other}
    limited = search_manifests(any_db_session, path="$.metadata.name", cluster_ids=[mine], limit=2)
    assert len(limited) == 2


def test_invalid_path_is_a_400_on_both_engines(any_db_session: Session) -> None:
    with pytest.raises(Problem) as refused:
        search_manifests(any_db_session, path="$$[[[", cluster_ids=["x"])
    assert refused.value.status == 400
    assert refused.value.reason == "invalid_json_path"
