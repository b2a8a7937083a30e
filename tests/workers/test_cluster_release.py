"""The server judges each cluster as the Kubernetes release its agent reports and with its
namespaces' Pod Security version pins: the same findings as `k8smon scan
--kubernetes-version` of the same objects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from rules import Engine, psa
from store.models import Finding, ScanRun
from store.telemetry import record_telemetry
from tests.workers.conftest import Pipeline


def _objects() -> list[dict[str, Any]]:
    def pod(name: str, namespace: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}"},
            "spec": {
                "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}]},
                "containers": [{"name": "c", "image": "registry.example/c:1"}],
            },
        }

    pinned = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "pinned",
            "uid": "uid-ns-pinned",
            "labels": {"pod-security.kubernetes.io/enforce-version": "v1.31"},
        },
    }
    plain = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain", "uid": "u"}}
    return [pinned, plain, pod("a", "pinned"), pod("b", "plain")]


def _sysctl_findings(pipeline: Pipeline, cluster_id: str) -> set[str | None]:
    rows = pipeline.session.scalars(
        select(Finding).where(Finding.cluster_id == cluster_id, Finding.rule_id == "KM-120")
    )
    return {f.namespace for f in rows}


def _all_findings(pipeline: Pipeline, cluster_id: str) -> set[tuple[str, str]]:
    rows = pipeline.session.scalars(select(Finding).where(Finding.cluster_id == cluster_id))
    return {(f.rule_id, f.name) for f in rows}


def test_findings_follow_the_reported_release_and_namespace_pins(any_pipeline: Pipeline) -> None:
    pipeline = any_pipeline  # PostgreSQL and SQLite
    objects = _objects()
    pipeline.push_and_process("latest", objects)
    pipeline.push_and_process("old", objects)
    record_telemetry(
        pipeline.session, "old", payload={"agent_version": "1", "kubernetes_version": "v1.30.4"}
    )
    pipeline.session.commit()
    pipeline.run.run("k8smon.scan_fleet")

    # No telemetry: the newest policy, except where a namespace pins an older one.
    assert _sysctl_findings(pipeline, "latest") == {"pinned"}
    # A 1.30 cluster judges every namespace by its own (older) policy.
    assert _sysctl_findings(pipeline, "old") == {"pinned", "plain"}
    for cluster_id, release in (("latest", None), ("old", (1, 30))):
        offline = Engine.from_config(None).scan(objects, kubernetes_version=release)
        assert _all_findings(pipeline, cluster_id) == {
            (r.rule_id, r.resource.name) for r in offline.results
        }
    runs = pipeline.session.scalars(select(ScanRun).where(ScanRun.cluster_id == "old"))
    assert all("@" in (run.catalogue_version or "") for run in runs)
    assert psa.parse_version("v1.30.4") == (1, 30)
