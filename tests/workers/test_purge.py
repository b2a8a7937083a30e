"""Purge: expired history goes, in batches; current versions and open findings never do."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from store.models import (
    Finding,
    KubeObject,
    ManifestVersion,
    Snapshot,
    TelemetryPing,
)
from store.snapshots import apply_pending, stage_snapshot
from store.telemetry import record_telemetry
from store.types import utcnow
from tests.support.factories import make_cluster
from tests.support.manifests import config_map, full_envelope
from tests.workers.conftest import Pipeline, savepoint_sessions
from workers.services.purge import purge_expired


def push_at(pipeline: Pipeline, cluster_id: str, objects: list[dict], days_ago: float) -> None:
    stage_snapshot(
        pipeline.session,
        cluster_id,
        envelope=full_envelope(objects),
        received_at=utcnow() - timedelta(days=days_ago),
    )
    apply_pending(pipeline.session, cluster_id)
    pipeline.session.commit()


def count(pipeline: Pipeline, model: type, *where: object) -> int:
    return pipeline.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_purge_keeps_current_versions_and_open_findings(pipeline: Pipeline) -> None:
    session = pipeline.session
    make_cluster(session, "old")
    a, b, c = (config_map(n, namespace="p") for n in ("a", "b", "c"))
    push_at(pipeline, "old", [a, b, c], days_ago=45)
    # 40 days ago: a changed, c deleted. 1 day ago: b changed (recent history stays).
    a2 = {**a, "data": {"key": "a2"}}
    push_at(pipeline, "old", [a2, b], days_ago=40)
    b2 = {**b, "data": {"key": "b2"}}
    push_at(pipeline, "old", [a2, b2], days_ago=1)
    record_telemetry(session, "old", payload={}, received_at=utcnow() - timedelta(days=60))
    record_telemetry(session, "old", payload={}, received_at=utcnow() - timedelta(hours=1))
    long_ago = utcnow() - timedelta(days=90)
    for status, resolved_at in (
        ("open", None),
        ("resolved", long_ago),
        ("resolved", utcnow() - timedelta(days=2)),
        ("exempted", None),
    ):
        session.add(
            Finding(
                cluster_id="old",
                fingerprint=f"{status}-{resolved_at}",
                rule_id="KM-101",
                api_version="v1",
                kind="ConfigMap",
                namespace="p",
                name="a",
                severity="high",
                message="m",
                status=status,
                first_seen=long_ago,
                last_seen=long_ago,
                resolved_at=resolved_at,
            )
        )
    session.commit()
    mine = select(KubeObject.id).where(KubeObject.cluster_id == "old").scalar_subquery()
    assert count(pipeline, ManifestVersion, ManifestVersion.object_id.in_(mine)) == 5

    deleted = purge_expired(savepoint_sessions(session), retention_days=30, batch_size=1)

    live = session.scalars(
        select(KubeObject).where(KubeObject.cluster_id == "old", KubeObject.deleted_at.is_(None))
    ).all()
    assert {o.name for o in live} == {"a", "b"}
    versions = session.scalars(
        select(ManifestVersion).where(ManifestVersion.object_id.in_(mine))
    ).all()
    current = {o.current_version_id for o in live}
    assert current <= {v.id for v in versions}, "a live object's current version was purged"
    # Left: a2 and b2 (current) plus b's first version, superseded only a day ago.
    assert len(versions) == 3
    assert deleted["manifest_versions"] + deleted["objects"] >= 2
    assert count(pipeline, KubeObject, KubeObject.cluster_id == "old", KubeObject.name == "c") == 0
    assert count(pipeline, TelemetryPing, TelemetryPing.cluster_id == "old") == 1
    snapshots = session.scalars(select(Snapshot.id).where(Snapshot.cluster_id == "old")).all()
    assert len(snapshots) == 1  # the current state's snapshot is never purged
    statuses = sorted(session.scalars(select(Finding.status).where(Finding.cluster_id == "old")))
    assert statuses == ["exempted", "open", "resolved"]
    assert deleted["findings"] >= 1 and deleted["telemetry_pings"] >= 1


def test_purge_task_runs_in_process(pipeline: Pipeline) -> None:
    outcome = pipeline.run.run("k8smon.purge_expired")
    assert outcome["complete"] is True  # the same result shape as the Celery task's
    result = outcome["deleted"]
    assert set(result) >= {
        "manifest_versions",
        "snapshots",
        "telemetry_pings",
        "findings",
        "rule_result_cache",
    }
