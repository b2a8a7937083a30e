"""Exemptions of every form cover fleet-rule findings (KM-621, KM-622) in the offline scan
as they cover any other finding: label selectors and the exempt annotation read the workload
the finding names."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.advisories import parse_advisories
from rules import Engine, ScanConfig
from tests.support.manifests import deployment

APP = "r.example/log4j-app"
ADVISORIES = parse_advisories(
    {
        "id": "TEST-OFFLINE-1",
        "severity": "critical",
        "affected": [{"repository": "*/log4j-app", "introduced": "2.0.0", "fixed": "2.15.0"}],
    }
)


def workload(name: str, tag: str, *, labels: dict[str, str] | None = None, **notes: str) -> Any:
    body = deployment(name, namespace="shop", image=f"{APP}:{tag}")
    body["metadata"]["labels"].update(labels or {})
    if notes:
        body["metadata"]["annotations"] = dict(notes)
    return body


def fleet_statuses(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    objects = [
        workload("new", "2.17.1"),
        workload("legacy", "2.14.1", labels={"team": "legacy"}),
        workload("current", "2.14.1", labels={"team": "shop"}),
        workload("annotated", "2.14.1", **{"k8s-monitor.io/exempt": "KM-621,KM-622"}),
    ]
    engine = Engine.from_config(ScanConfig.from_dict(config))
    outcome = engine.scan(objects, cluster="prod", advisories=ADVISORIES)
    return sorted(
        (r.rule_id, r.resource.name, r.status)
        for r in outcome.results
        if r.rule_id in {"KM-621", "KM-622"}
    )


@pytest.mark.parametrize(
    "labels", ["team=legacy", {"team": "legacy"}, "team in (legacy),team!=shop"]
)
def test_label_selector_exemptions_cover_fleet_findings(labels: Any) -> None:
    exemption = {
        "rules": ["KM-621", "KM-622"],
        "labels": labels,
        "kinds": ["Deployment"],
        "containers": ["ma*"],
        "reason": "legacy",
    }
    assert fleet_statuses({"exemptions": [exemption]}) == [
        ("KM-621", "annotated", "open"),
        ("KM-621", "current", "open"),
        ("KM-621", "legacy", "exempted"),
        ("KM-622", "annotated", "open"),
        ("KM-622", "current", "open"),
        ("KM-622", "legacy", "exempted"),
    ]


def test_the_exempt_annotation_covers_fleet_findings_when_allowed() -> None:
    assert fleet_statuses({"allow_annotation_exemptions": True}) == [
        ("KM-621", "annotated", "exempted"),
        ("KM-621", "current", "open"),
        ("KM-621", "legacy", "open"),
        ("KM-622", "annotated", "exempted"),
        ("KM-622", "current", "open"),
        ("KM-622", "legacy", "open"),
    ]
