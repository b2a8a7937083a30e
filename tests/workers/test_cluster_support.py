"""The server judges each cluster's release (its agent's telemetry) against the dated
end-of-support table (KM-619) and reports APIs its next minor removes (KM-609, KM-620) — the same
findings as `k8smon scan --kubernetes-version` of the same objects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from rules import Engine
from store.models import Finding
from store.telemetry import record_telemetry
from tests.workers.conftest import Pipeline


def _objects() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system", "uid": "k"}},
        {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1beta3",
            "kind": "FlowSchema",
            "metadata": {"name": "batch", "uid": "uid-flowschema-batch"},
            "spec": {"priorityLevelConfiguration": {"name": "low"}, "matchingPrecedence": 1000},
        },
    ]


def _findings(pipeline: Pipeline, cluster_id: str) -> dict[tuple[str, str], str]:
    rows = pipeline.session.scalars(select(Finding).where(Finding.cluster_id == cluster_id))
    return {(f.rule_id, f.name): f.message for f in rows}


def test_release_support_and_next_minor_removals_follow_telemetry(any_pipeline: Pipeline) -> None:
    pipeline = any_pipeline  # PostgreSQL and SQLite
    objects = _objects()
    for cluster_id in ("latest", "prod-eu-1", "current"):
        pipeline.push_and_process(cluster_id, objects)
    record_telemetry(
        pipeline.session,
        "prod-eu-1",
        payload={"agent_version": "1", "kubernetes_version": "v1.31.7-eks-1a2b"},
    )
    record_telemetry(
        pipeline.session, "current", payload={"agent_version": "1", "kubernetes_version": "1.36.1"}
    )
    pipeline.session.commit()
    pipeline.run.run("k8smon.scan_fleet")

    old = _findings(pipeline, "prod-eu-1")
    assert "Kubernetes 1.31" in old[("KM-619", "kube-system")]
    assert "2025-10-28" in old[("KM-619", "kube-system")]
    assert "upgrades to Kubernetes 1.32" in old[("KM-609", "batch")]
    assert ("KM-608", "batch") not in old  # 1.31 still serves flowcontrol v1beta3
    assert old[("KM-620", "kube-system")].startswith(
        "1 object will break when the cluster upgrades to Kubernetes 1.32"
    )

    for cluster_id in ("latest", "current"):
        found = _findings(pipeline, cluster_id)
        assert ("KM-619", "kube-system") not in found  # supported (or unknown: the newest)
        assert ("KM-620", "kube-system") not in found  # nothing the next minor removes
        assert "stopped serving" in found[("KM-608", "batch")]

    for cluster_id, release in (("latest", None), ("prod-eu-1", (1, 31)), ("current", (1, 36))):
        offline = Engine.from_config(None).scan(objects, kubernetes_version=release)
        assert _findings(pipeline, cluster_id) == {
            (r.rule_id, r.resource.name): r.message for r in offline.results
        }
