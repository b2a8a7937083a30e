"""Read models of the admin pages and the JSON-path search, on PostgreSQL and on SQLite."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from ingest.web import queries
from ingest.web.manifest_view import diff, highlight, render
from store.clusters import create_cluster
from store.models import Finding, ScanRun
from store.telemetry import record_telemetry
from store.types import utcnow
from tests.support.manifests import deployment


def _finding(cluster_id: str, n: int, *, severity: str, status: str) -> Finding:
    return Finding(
        cluster_id=cluster_id,
        fingerprint=f"fp-{cluster_id}-{n}",
        rule_id="KM-101",
        api_version="apps/v1",
        kind="Deployment",
        namespace="ns",
        name=f"d{n}",
        severity=severity,
        message="m",
        status=status,
        details={},
    )


def test_fleet_overview_on_both_engines(any_db_session: Session) -> None:
    session = any_db_session
    create_cluster(session, "a")
    create_cluster(session, "b")
    create_cluster(session, "c")
    record_telemetry(session, "a", payload={"agent_version": "1", "kubernetes_version": "v1"})
    record_telemetry(
        session, "b", payload={"agent_version": "1"}, received_at=utcnow() - timedelta(hours=2)
    )
    for i, (severity, status) in enumerate(
        [
            ("critical", "new"),
            ("high", "open"),
            ("high", "open"),
            ("low", "resolved"),
            ("medium", "exempted"),
        ]
    ):
        session.add(_finding("a", i, severity=severity, status=status))
    for i in range(10):
        session.add(ScanRun(cluster_id="a", state="done", counts={"new": i, "open": 1}, errors=[]))
    session.add(ScanRun(cluster_id="a", state="failed", counts={"new": 99}, errors=[]))
    session.flush()
    rows = {
        r.cluster_id: r
        for r in queries.fleet_overview(session, now=utcnow(), stale_after=timedelta(minutes=15))
    }
    assert rows["a"].health == "healthy" and rows["b"].health == "stale"
    assert rows["c"].health == "never"
    assert rows["a"].severity_counts == [1, 2, 0, 0, 0]
    assert rows["b"].severity_counts == [0, 0, 0, 0, 0]
    assert rows["a"].trend == [3, 4, 5, 6, 7, 8, 9, 10]  # last 8 finished scans, oldest first
    assert rows["a"].sparkline.endswith("█") and len(rows["a"].sparkline) == 8


def test_manifest_rendering_highlight_and_diff() -> None:
    body = deployment("web", image="nginx:1")
    lines = highlight(
        render(body),
        ["spec.template.spec.containers[0].securityContext.privileged", "spec.replicas"],
    )
    marked = [line.text.strip() for line in lines if line.highlighted]
    assert marked == ["replicas: 2", "- name: main", "image: nginx:1"]
    changed = deployment("web", image="nginx:2")
    kinds = [(d.kind, d.text) for d in diff(body, changed, old_label="a", new_label="b")]
    assert ("del", "-        image: nginx:1") in kinds
    assert ("add", "+        image: nginx:2") in kinds
    assert diff(body, body, old_label="a", new_label="b") == []
    assert render({"a": "true", "b": "1", "c": "x: y", "d": {}, "e": []})[0].text == 'a: "true"'
