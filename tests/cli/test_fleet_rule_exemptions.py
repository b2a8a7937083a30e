"""`k8smon exemptions add --labels/--container` as operators run them against a live server
(tasks in process): the exemption covers an advisory finding (KM-622, a fleet rule) from the
cluster's rescan, which evaluates the fleet rules for that cluster."""

from __future__ import annotations

import json

from tests.cli.conftest import Operator
from tests.cli.test_advisories import ADVISORY, _advisory_findings


def test_a_label_exemption_from_the_cli_covers_an_advisory_finding(operator: Operator) -> None:
    advisories = operator.tmp / "advisories.yaml"
    advisories.write_text(ADVISORY, encoding="utf-8")
    assert operator.run("advisories", "load", str(advisories)).exit_code == 0
    assert _advisory_findings(operator) == [("prod-eu", "web", "new", "high")]

    refused = operator.run(
        "exemptions", "add", "--rule", "KM-622", "--labels", "app in (web",
        "--reason", "x", "--expires", "30d",
    )  # fmt: skip
    assert refused.exit_code != 0 and "labels" in refused.output
    added = operator.run(
        "exemptions", "add", "--rule", "KM-622", "--labels", "app=web", "--container", "ma*",
        "--reason", "patched in place by the vendor", "--expires", "30d", "-o", "json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["selector"] == {"labels": "app=web", "container": "ma*"}

    rescan = operator.run("rescan", "prod-eu", "--wait", "--timeout", "60s")
    assert rescan.exit_code == 0, rescan.output
    result = operator.run(
        "findings", "--rule", "KM-622", "--status", "exempted", "--format", "json"
    )
    assert [(f["cluster_id"], f["resource"]["name"]) for f in json.loads(result.stdout)] == [
        ("prod-eu", "web")
    ]
