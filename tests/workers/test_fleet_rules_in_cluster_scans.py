"""The fleet rules (KM-621 drift, KM-622 advisories) in a cluster's own scan: a push's scan
gives that cluster's drift and advisory findings at once, exactly as the fleet evaluation
gives them, and resolves them when the image is updated; exemptions of every form (label
selectors too) match fleet-rule findings in both paths. In process, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from contracts.advisories import parse_advisories
from contracts.states import ScanTrigger
from contracts.tasks import EVALUATE_FLEET, SCAN_FLEET
from store.advisories import load_advisories
from store.db import unit_of_work
from store.exemptions import create_exemption
from store.models import Finding, ScanRun
from store.types import utcnow
from tests.support.manifests import deployment
from tests.workers.conftest import Pipeline
from tests.workers.test_fleet_rules import LOG4J

FLEET_RULES = ("KM-621", "KM-622")
IMAGE = "r.example/log4j-app"


def labelled(name: str, image: str, **labels: str) -> dict[str, Any]:
    body = deployment(name, namespace="shop", image=image)
    body["metadata"]["labels"] = {**body["metadata"]["labels"], **labels}
    return body


def fleet_findings(pipeline: Pipeline, cluster_id: str) -> list[tuple[Any, ...]]:
    """(rule, name, status, severity, path, message) of the cluster's fleet-rule findings."""
    pipeline.session.expire_all()
    rows = pipeline.session.execute(
        select(
            Finding.rule_id,
            Finding.name,
            Finding.status,
            Finding.severity,
            Finding.path,
            Finding.message,
        )
        .where(Finding.cluster_id == cluster_id, Finding.rule_id.in_(FLEET_RULES))
        .order_by(Finding.rule_id, Finding.name)
    )
    return [tuple(r) for r in rows]


def summary(pipeline: Pipeline, cluster_id: str) -> list[tuple[str, str, str]]:
    return [(r, n, s) for r, n, s, *_ in fleet_findings(pipeline, cluster_id)]


def push_runs(pipeline: Pipeline, cluster_id: str) -> list[ScanRun]:
    pipeline.session.expire_all()
    return list(
        pipeline.session.scalars(
            select(ScanRun).where(ScanRun.cluster_id == cluster_id).order_by(ScanRun.id)
        )
    )


def load_advisory(pipeline: Pipeline) -> None:
    with unit_of_work(pipeline.ctx.sessions) as session:
        load_advisories(session, parse_advisories(LOG4J), loaded_by="test")


def test_a_push_scan_gives_its_clusters_fleet_findings_as_the_fleet_evaluation_does(
    make_any_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_any_pipeline(scan_on_push=True)
    load_advisory(pipeline)
    pipeline.push_and_process(
        "ahead", [deployment("app", namespace="shop", image=f"{IMAGE}:2.17.1")]
    )
    assert summary(pipeline, "ahead") == []  # the newest, and fixed

    pipeline.push_and_process(
        "behind",
        [
            deployment("app", namespace="shop", image=f"{IMAGE}:2.14.1"),
            deployment("floating", namespace="shop", image=f"{IMAGE}:latest"),
        ],
    )
    runs = push_runs(pipeline, "behind")
    assert [(r.trigger, r.state) for r in runs] == [(ScanTrigger.PUSH, "done")]
    # No fleet scan and no fleet evaluation ran: the push's scan found them.
    assert summary(pipeline, "behind") == [
        ("KM-621", "app", "new"),  # 3 minor releases behind 2.17.1 in cluster ahead
        ("KM-622", "app", "new"),
        ("KM-622", "floating", "new"),  # `latest`: cannot tell
    ]
    found = fleet_findings(pipeline, "behind")
    assert [severity for _r, _n, _s, severity, _p, _m in found] == ["low", "critical", "medium"]
    assert "2.17.1, the newest version of r.example/log4j-app" in found[0][5]
    assert "TEST-LOG4J-1 (critical, fixed in 2.15.0)" in found[1][5]
    assert runs[0].counts["new"] >= 3 and not runs[0].errors

    # The fleet evaluation gives exactly the same findings: it changes nothing.
    outcome = pipeline.run.run(EVALUATE_FLEET)
    assert outcome["errors"] == []
    assert {k: outcome["counts"].get(k, 0) for k in ("new", "resolved", "reopened")} == {
        "new": 0,
        "resolved": 0,
        "reopened": 0,
    }
    after = fleet_findings(pipeline, "behind")
    assert [(r, n, v, p, m) for r, n, _s, v, p, m in after] == [
        (r, n, v, p, m) for r, n, _s, v, p, m in found
    ]
    assert {status for _r, _n, status, *_ in after} == {"open"}  # seen again: no longer new

    # The image is updated: the next push's scan resolves its drift and advisory findings.
    pipeline.push_and_process(
        "behind",
        [
            deployment("app", namespace="shop", image=f"{IMAGE}:2.17.1"),
            deployment("floating", namespace="shop", image=f"{IMAGE}:latest"),
        ],
    )
    assert [r.trigger for r in push_runs(pipeline, "behind")] == [ScanTrigger.PUSH] * 2
    assert summary(pipeline, "behind") == [
        ("KM-621", "app", "resolved"),
        ("KM-622", "app", "resolved"),
        ("KM-622", "floating", "open"),
    ]
    # ... and a fleet scan (whose cluster scans leave the fleet rules to its evaluation)
    # agrees.
    pipeline.run.run(SCAN_FLEET)
    assert summary(pipeline, "behind") == [
        ("KM-621", "app", "resolved"),
        ("KM-622", "app", "resolved"),
        ("KM-622", "floating", "open"),
    ]


def test_a_scan_of_another_cluster_does_not_touch_this_ones_fleet_findings(
    make_any_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_any_pipeline(scan_on_push=True)
    load_advisory(pipeline)
    pipeline.push_and_process("one", [deployment("app", namespace="shop", image=f"{IMAGE}:2.14.1")])
    before = fleet_findings(pipeline, "one")
    assert [(r, n) for r, n, *_ in before] == [("KM-622", "app")]
    # cluster two runs a newer version: one's drift appears at one's next scan or the fleet
    # evaluation, never in two's scan
    pipeline.push_and_process("two", [deployment("app", namespace="shop", image=f"{IMAGE}:2.17.1")])
    assert fleet_findings(pipeline, "one") == before
    pipeline.run.run(EVALUATE_FLEET)
    assert summary(pipeline, "one") == [("KM-621", "app", "new"), ("KM-622", "app", "open")]


@pytest.mark.parametrize(
    "selector",
    [
        {"labels": {"team": "legacy"}},
        {"labels": "team in (legacy, frozen),tier!=web"},
        {"labels": "team=legacy", "container": "ma*", "kind": "Deployment", "namespace": "shop"},
    ],
    ids=["labels-map", "labels-text", "labels-and-globs"],
)
def test_label_selector_exemptions_match_fleet_findings_in_both_paths(
    make_any_pipeline: Callable[..., Pipeline], selector: dict[str, Any]
) -> None:
    pipeline = make_any_pipeline(scan_on_push=True)
    load_advisory(pipeline)
    with unit_of_work(pipeline.ctx.sessions) as session:
        create_exemption(
            session,
            rule_ids=list(FLEET_RULES),
            reason="legacy app, replaced next quarter",
            created_by="test",
            selector=selector,
            expires_at=utcnow() + timedelta(days=30),
        )
    pipeline.push_and_process(
        "ahead", [deployment("app", namespace="shop", image=f"{IMAGE}:2.17.1")]
    )
    objects = [
        labelled("legacy", f"{IMAGE}:2.14.1", team="legacy"),
        labelled("current", f"{IMAGE}:2.14.1", team="shop"),
    ]
    pipeline.push_and_process("prod", objects)
    expected = [
        ("KM-621", "current", "new"),
        ("KM-621", "legacy", "exempted"),
        ("KM-622", "current", "new"),
        ("KM-622", "legacy", "exempted"),
    ]
    assert summary(pipeline, "prod") == expected  # the push's scan

    # The fleet evaluation reads the same labels: nothing is unexempted or reopened.
    outcome = pipeline.run.run(EVALUATE_FLEET)
    assert outcome["counts"].get("unexempted", 0) == 0
    seen_again = [(r, n, "open" if s == "new" else s) for r, n, s in expected]
    assert summary(pipeline, "prod") == seen_again

    # A cluster the fleet evaluation sees first (no scan on push): exempted there too.
    quiet = make_any_pipeline(scan_on_push=False)
    quiet.push_and_process("staging", objects)
    quiet.run.run(EVALUATE_FLEET)
    assert summary(quiet, "staging") == expected
    pipeline.session.expire_all()
    exemption_ids = pipeline.session.scalars(
        select(Finding.exemption_id).where(
            Finding.cluster_id.in_(("prod", "staging")),
            Finding.name == "legacy",
            Finding.rule_id.in_(FLEET_RULES),
        )
    ).all()
    assert len(exemption_ids) == 4 and None not in exemption_ids


def test_the_exempt_annotation_covers_fleet_findings_in_both_paths(
    make_pipeline: Callable[..., Pipeline], tmp_path: Path
) -> None:
    config = tmp_path / "rules.yaml"
    config.write_text("allow_annotation_exemptions: true\n", encoding="utf-8")
    pipeline = make_pipeline(config_path=config, scan_on_push=True)
    load_advisory(pipeline)
    pipeline.push_and_process(
        "ahead", [deployment("app", namespace="shop", image=f"{IMAGE}:2.17.1")]
    )
    annotated = deployment("frozen", namespace="shop", image=f"{IMAGE}:2.14.1")
    annotated["metadata"]["annotations"] = {"k8s-monitor.io/exempt": "KM-622"}
    pipeline.push_and_process("prod", [annotated])
    expected = [("KM-621", "frozen", "new"), ("KM-622", "frozen", "exempted")]
    assert summary(pipeline, "prod") == expected
    pipeline.run.run(EVALUATE_FLEET)
    assert summary(pipeline, "prod") == [
        ("KM-621", "frozen", "open"),
        ("KM-622", "frozen", "exempted"),
    ]
