"""Output formats: JSON contract, table, SARIF 2.1.0 (schema-validated), PolicyReport."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest

from contracts.findings import ScanReport
from reports.formats.json_report import render_json
from reports.formats.policyreport import render_policy_reports
from reports.formats.sarif import render_sarif
from reports.formats.table import render_table
from rules import Engine, load_paths
from tests.rules.helpers import pod

DATA = Path(__file__).parent / "data"
FIXTURES = Path(__file__).parent / "fixtures"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_config(
        {
            "exemptions": [
                {
                    "rules": ["KM-123"],
                    "reason": "legacy image writes to /var",
                    "owner": "shop-team",
                },
                {"rules": ["KM-101"], "reason": "expired", "expires": "2020-01-01"},
            ]
        }
    )


@pytest.fixture(scope="module")
def report(engine: Engine) -> ScanReport:
    loaded = load_paths([FIXTURES / "KM-101", FIXTURES / "KM-113"])
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    outcome = engine.scan(
        [*loaded.documents, namespace],
        now=NOW,
        load_errors=[
            {"type": "parse", "message": "invalid YAML: x", "file": "broken.yaml", "line": 3}
        ],
    )
    return outcome.to_report()


def test_json_contract(report: ScanReport) -> None:
    data = json.loads(render_json(report))
    assert set(data) == {"findings", "errors", "summary"}
    for finding in data["findings"]:
        assert {"rule_id", "title", "severity", "cis", "pss", "resource", "path", "message"} <= set(
            finding
        )
        assert set(finding["resource"]) == {"apiVersion", "kind", "namespace", "name"}
        assert finding["severity"] in {"critical", "high", "medium", "low", "info"}
    assert data["errors"][0]["file"] == "broken.yaml"
    summary = data["summary"]
    assert summary["open"] + summary["exempted"] == summary["findings"] == len(data["findings"])
    assert summary["expired_exemptions"][0]["rules"] == ["KM-101"]


def test_table_lists_findings_errors_and_summary(report: ScanReport) -> None:
    text = render_table(report)
    assert "KM-101" in text and "Deployment shop/web [app]" in text
    assert "broken.yaml:3: invalid YAML: x" in text
    assert "exempted" in text
    assert "expired on 2020-01-01" in text
    hidden = render_table(report, show_exempted=False)
    assert "(low, exempted)" not in hidden


def test_sarif_validates_against_the_schema(report: ScanReport, engine: Engine) -> None:
    schema = json.loads((DATA / "sarif-2.1.0-subset.schema.json").read_text())
    infos = [r.meta.to_info() for r in engine.all_rules]
    sarif = json.loads(json.dumps(render_sarif(report, infos, tool_version="1.2.3")))
    jsonschema.validate(sarif, schema, format_checker=jsonschema.FormatChecker())
    run = sarif["runs"][0]
    assert run["tool"]["driver"]["name"] == "k8s-monitor"
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert len(run["results"]) == len(report["findings"])
    for result, finding in zip(run["results"], report["findings"], strict=True):
        assert rule_ids[result["ruleIndex"]] == result["ruleId"] == finding["rule_id"]
        assert result["locations"][0]["logicalLocations"][0]["name"] == finding["resource"]["name"]
        if "location" in finding:  # read from a file: the file and line are the location
            physical = result["locations"][0]["physicalLocation"]
            assert physical["artifactLocation"]["uri"].endswith(".yaml")
            assert physical["region"]["startLine"] == finding["location"]["line"] >= 1
        else:
            assert "physicalLocation" not in result["locations"][0]
        assert ("suppressions" in result) == (finding["status"] == "exempted")
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels["KM-101"] == "error" and levels["KM-123"] == "note"
    assert run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]


def test_sarif_schema_rejects_a_broken_log(report: ScanReport, engine: Engine) -> None:
    schema = json.loads((DATA / "sarif-2.1.0-subset.schema.json").read_text())
    sarif = render_sarif(report, [r.meta.to_info() for r in engine.all_rules], tool_version="1")
    sarif["runs"][0]["results"][0]["level"] = "critical"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(sarif, schema)


POLICY_REPORT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "summary", "results"],
    "properties": {
        "apiVersion": {"const": "wgpolicyk8s.io/v1alpha2"},
        "kind": {"enum": ["PolicyReport", "ClusterPolicyReport"]},
        "metadata": {"type": "object", "required": ["name"]},
        "summary": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                k: {"type": "integer", "minimum": 0}
                for k in ("pass", "fail", "warn", "error", "skip")
            },
        },
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["policy", "result", "source"],
                "additionalProperties": False,
                "properties": {
                    "source": {"type": "string"},
                    "policy": {"type": "string"},
                    "rule": {"type": "string"},
                    "category": {"type": "string"},
                    "severity": {"enum": ["critical", "high", "low", "medium", "info"]},
                    "result": {"enum": ["pass", "fail", "warn", "error", "skip"]},
                    "scored": {"type": "boolean"},
                    "message": {"type": "string"},
                    "timestamp": {"type": "object", "required": ["seconds", "nanos"]},
                    "resources": {
                        "type": "array",
                        "items": {"type": "object", "required": ["apiVersion", "kind", "name"]},
                    },
                    "properties": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        },
    },
}


def test_policy_reports_per_namespace_and_cluster(report: ScanReport) -> None:
    documents = render_policy_reports(report, now=NOW)
    for document in documents:
        jsonschema.validate(document, POLICY_REPORT_SCHEMA)
    kinds = [(d["kind"], d["metadata"].get("namespace")) for d in documents]
    assert kinds[-1] == ("ClusterPolicyReport", None)
    assert ("PolicyReport", "shop") in kinds
    shop = next(d for d in documents if d["metadata"].get("namespace") == "shop")
    assert shop["summary"]["fail"] == sum(1 for r in shop["results"] if r["result"] == "fail")
    assert {r["result"] for r in shop["results"]} == {"fail", "skip"}
    assert all(r["resources"][0]["namespace"] == "shop" for r in shop["results"])


def test_rule_errors_become_policy_report_errors() -> None:
    report: ScanReport = Engine.from_config(None).scan([pod()]).to_report()
    report["errors"].append(
        {
            "type": "rule",
            "message": "boom",
            "rule_id": "KM-101",
            "resource": {"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "p"},
        }
    )
    documents = render_policy_reports(report, now=NOW)
    default = next(d for d in documents if d["metadata"].get("namespace") == "default")
    assert default["summary"]["error"] == 1
