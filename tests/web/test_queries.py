"""Read models of the admin pages and the JSON-path search, on PostgreSQL and on SQLite."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from ingest.web import queries
from ingest.web.manifest_view import diff, highlight, render
from ingest.web.search import SearchError, run_search
from store.telemetry import record_telemetry
from store.types import utcnow
from tests.support.factories import make_cluster, make_finding, make_scan_run
from tests.support.manifests import config_map, deployment
from tests.web.fleet import push


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


def test_search_on_both_engines(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "a")
    make_cluster(session, "b")
    push(
        session,
        "a",
        [deployment("x", image="img:1"), deployment("y", image="img:2"), config_map("c")],
    )
    push(session, "b", [deployment("x", image="img:1")])
    distinct = run_search(
        session, "$.spec.template.spec.containers[*].image", kind="Deployment", distinct=True
    )
    assert [(v.value, v.occurrences, v.clusters) for v in distinct.values] == [
        ("img:1", 2, 2),
        ("img:2", 1, 1),
    ]
    hits = run_search(session, "$.spec.replicas", cluster_id="a")
    assert sorted((h.name, h.value) for h in hits.hits) == [("x", 2), ("y", 2)]
    limited = run_search(session, "$.metadata.name", limit=2)
    assert len(limited.hits) == 2 and limited.truncated
    with pytest.raises(SearchError, match="invalid JSON path"):
        run_search(session, "$.spec[")
    with pytest.raises(SearchError, match="give a JSON path"):
        run_search(session, "  ")
    # The session is still usable after a refused path (PostgreSQL: the SAVEPOINT).
    assert run_search(session, "$.kind", cluster_id="b").hits[0].value == "Deployment"


def test_search_over_several_clusters_on_both_engines(any_db_session: Session) -> None:
    session = any_db_session
    for cluster_id in ("a", "b", "c"):
        make_cluster(session, cluster_id)
        push(
            session,
            cluster_id,
            [deployment("x", image=f"img:{cluster_id}"), deployment("y", image="img:shared")],
        )
    path = "$.spec.template.spec.containers[*].image"
    two = run_search(session, path, cluster_ids=["a", "c"], distinct=True)
    assert [(v.value, v.occurrences, v.clusters) for v in two.values] == [
        ("img:shared", 2, 2),
        ("img:a", 1, 1),
        ("img:c", 1, 1),
    ]
    hits = run_search(session, path, cluster_ids=["c", "b"])
    assert [(h.cluster_id, h.name) for h in hits.hits] == [
        ("b", "x"),
        ("b", "y"),
        ("c", "x"),
        ("c", "y"),
    ]
    # cluster_id and cluster_ids together: the union; an empty list means every cluster.
    union = run_search(session, path, cluster_id="a", cluster_ids=["b"], distinct=True)
    assert {v.value for v in union.values} == {"img:a", "img:b", "img:shared"}
    every = run_search(session, path, cluster_ids=[], distinct=True)
    assert every.values[0].value == "img:shared" and every.values[0].clusters == 3


def test_a_search_the_database_gives_up_on_is_a_search_error(db_session: Session) -> None:
    session = db_session
    make_cluster(session, "a")
    push(session, "a", [deployment("x", image="img:1"), config_map("c")])
    # Strict mode: a path that does not exist in a manifest is an error, raised while the
    # query runs (not when the path is parsed).
    with pytest.raises(SearchError, match="the search failed"):
        run_search(session, "strict $.spec.template.spec.containers[*].image", distinct=True)
    # The session is still usable (the query ran in a SAVEPOINT).
    assert run_search(session, "$.kind", cluster_id="a", distinct=True).values


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
