"""Read models of the admin pages and the JSON-path search, on PostgreSQL and on SQLite."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from ingest.web import queries
from ingest.web.manifest_view import diff, highlight, render
from store.telemetry import record_telemetry
from store.types import utcnow
from tests.support.factories import make_cluster, make_finding, make_scan_run
from tests.support.manifests import deployment


def test_fleet_overview_on_both_engines(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "a")
    make_cluster(session, "b")
    make_cluster(session, "c")
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
        make_finding(session, "a", name=f"d{i}", severity=severity, status=status)
    for i in range(10):
        make_scan_run(session, "a", state="done", counts={"new": i, "open": 1})
    make_scan_run(session, "a", state="failed", counts={"new": 99})
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
