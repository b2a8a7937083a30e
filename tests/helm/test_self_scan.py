"""Our charts pass our own rules: no high or critical finding, and every remaining finding is
covered by a reviewed exemption (with a reason) from the chart's files/self-exemptions.yaml."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.severity import Severity
from rules import Engine, ScanConfig
from rules.engine import ScanOutcome
from tests.helm.charts import (
    CHARTS,
    NAMESPACE,
    SERVER,
    Rendered,
    chart_dir,
    ci_values_files,
    load_values,
    render,
)

CASES = [(chart, path) for chart in CHARTS for path in ci_values_files(chart)]
IDS = [f"{chart}:{path.name}" for chart, path in CASES]


def self_exemptions(chart: str) -> dict[str, Any]:
    path = chart_dir(chart) / "files" / "self-exemptions.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def rules_config(chart: str, rendered: Rendered) -> dict[str, Any]:
    """The configuration a scan of this release uses.

    Server: the rules ConfigMap the chart renders (its self-exemptions narrowed to the release
    namespace), exactly what the running server loads. Agent: its self-exemptions file, which
    operators add to the server's configuration.
    """
    if chart == SERVER:
        configmap = rendered.one("ConfigMap", "-rules")
        return yaml.safe_load(configmap["data"]["config.yaml"]) or {}
    return self_exemptions(chart)


@cache
def scan(chart: str, values_file: Path) -> ScanOutcome:
    """Render and scan once per (chart, values file); the outcome is immutable."""
    rendered = render(chart, load_values(values_file))
    config = ScanConfig.from_dict(rules_config(chart, rendered))
    return Engine.from_config(config).scan(rendered.documents, cluster="self-test")


def describe(results: Iterable[Any]) -> str:
    return "\n".join(
        f"  {r.rule_id} {r.severity.value} {r.resource} {r.container or ''} {r.path}: {r.message}"
        for r in results
    )


@pytest.mark.parametrize(("chart", "values_file"), CASES, ids=IDS)
def test_no_high_or_critical_findings(chart: str, values_file: Path) -> None:
    outcome = scan(chart, values_file)
    severe = [r for r in outcome.results if r.severity.at_least(Severity.HIGH)]
    assert not severe, f"fix these in the chart (exemptions are not enough):\n{describe(severe)}"


@pytest.mark.parametrize(("chart", "values_file"), CASES, ids=IDS)
def test_every_finding_is_exempted_with_a_reason(chart: str, values_file: Path) -> None:
    outcome = scan(chart, values_file)
    errors = [r for r in outcome.results if r.status == "error"]
    assert not errors, f"rules crashed on our manifests:\n{describe(errors)}"
    assert not outcome.errors, outcome.errors
    unexempted = [r for r in outcome.results if r.status != "exempted"]
    assert not unexempted, (
        f"fix, or add a reviewed exemption to helm/{chart}/files/self-exemptions.yaml:\n"
        f"{describe(unexempted)}"
    )
    for result in outcome.results:
        assert result.exemption is not None and result.exemption["reason"].strip()


@pytest.mark.parametrize("chart", CHARTS)
def test_self_exemptions_are_reviewed_and_used(chart: str) -> None:
    """Each exemption names its rules, a reason and an owner, is narrow, and still matches."""
    exemptions = self_exemptions(chart).get("exemptions") or []
    used: set[int] = set()
    for values_file in ci_values_files(chart):
        rendered = render(chart, load_values(values_file))
        config = rules_config(chart, rendered)
        own = config.get("exemptions") or []
        offset = len(own) - len(exemptions)  # the operator's own entries come first
        for result in scan(chart, values_file).results:
            if result.exemption is not None:
                used.add(result.exemption["index"] - offset)
    for index, exemption in enumerate(exemptions):
        assert "*" not in exemption["rules"], "exempt named rules only"
        assert exemption.get("kinds"), "narrow each exemption to kinds"
        assert exemption.get("names"), "narrow each exemption to object names"
        assert exemption["reason"].strip() and exemption.get("owner")
        assert "expires" not in exemption or exemption["expires"] > dt.date.today()
        assert index in used, f"exemption {index} ({exemption['rules']}) matches nothing: remove it"


def test_server_exemptions_are_narrowed_to_the_release_namespace() -> None:
    rendered = render(SERVER, load_values(chart_dir(SERVER) / "ci" / "full-values.yaml"))
    config = rules_config(SERVER, rendered)
    for exemption in config.get("exemptions") or []:
        assert exemption["namespaces"] == [NAMESPACE]
    ScanConfig.from_dict(config)  # the running server must be able to load it


def test_operator_rules_config_is_kept_alongside_self_exemptions() -> None:
    operator = {"rules": ["KM-101"], "kinds": ["Deployment"], "names": ["legacy"],
                "reason": "migrating", "owner": "team-a"}
    values = {**load_values(chart_dir(SERVER) / "ci" / "default-values.yaml"),
              "rulesConfig": {"config": {"severity": {"KM-101": "low"},
                                         "exemptions": [operator]}}}
    config = rules_config(SERVER, render(SERVER, values))
    assert config["severity"] == {"KM-101": "low"}
    assert config["exemptions"][0] == operator
    assert len(config["exemptions"]) == 1 + len(self_exemptions(SERVER).get("exemptions") or [])
    without = render(SERVER, {**values, "rulesConfig": {"includeSelfExemptions": False,
                                                          "config": {}}})
    assert rules_config(SERVER, without) == {}

