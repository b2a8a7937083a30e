"""`k8smon scan` and `k8smon rules`: formats, exit codes, configuration, docs generation."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from click.testing import CliRunner

from cli.main import main
from contracts.findings import SCAN_REPORT_JSON_SCHEMA
from rules import default_rules

FIXTURES = Path(__file__).parent / "fixtures"
PRIVILEGED = str(FIXTURES / "KM-101" / "fail-deployment-privileged.yaml")
CLEAN = str(FIXTURES / "KM-101" / "pass-unset.yaml")


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_scan_json_and_fail_on() -> None:
    result = run("scan", PRIVILEGED, "--format", "json", "--fail-on", "critical")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert any(f["rule_id"] == "KM-101" and f["cis"] == ["5.2.2"] for f in data["findings"])
    assert run("scan", CLEAN, "--format", "json", "--fail-on", "high").exit_code == 0
    assert run("scan", PRIVILEGED, "--format", "json").exit_code == 0  # default: none


def test_fail_on_ignores_exempted_findings(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("exemptions:\n  - rules: [KM-101]\n    reason: break-glass\n")
    result = run(
        "scan", PRIVILEGED, "--config", str(config), "--fail-on", "critical", "--format", "json"
    )
    assert result.exit_code == 0
    assert {
        f["status"] for f in json.loads(result.output)["findings"] if f["rule_id"] == "KM-101"
    } == {"exempted"}


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("scan").exit_code == 2
    assert run("scan", str(tmp_path / "missing.yaml")).exit_code == 2
    assert run("scan", CLEAN, "--format", "xml").exit_code == 2
    assert run("scan", CLEAN, "--fail-on", "urgent").exit_code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("disabled: [KM-999]\n")
    result = run("scan", CLEAN, "--config", str(bad))
    assert result.exit_code == 2 and "KM-999" in result.output


def test_broken_file_is_reported_and_the_rest_scanned(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: [\n")
    result = run("scan", str(broken), PRIVILEGED, "--format", "json")
    data = json.loads(result.output)
    assert data["errors"][0]["file"] == str(broken) and data["errors"][0]["line"] == 3
    assert data["summary"]["objects"] == 1


def test_scan_other_formats() -> None:
    sarif = json.loads(run("scan", PRIVILEGED, "--format", "sarif").output)
    assert sarif["version"] == "2.1.0"
    documents = list(yaml.safe_load_all(run("scan", PRIVILEGED, "--format", "policyreport").output))
    assert [d["kind"] for d in documents] == ["PolicyReport", "ClusterPolicyReport"]
    table = run("scan", PRIVILEGED).output
    assert "KM-101" in table and "objects" in table


def test_rules_list_json_and_table() -> None:
    data = json.loads(run("rules", "list", "--format", "json").output)
    ids = [r["id"] for r in data["rules"]]
    assert ids == [r.id for r in default_rules()]
    first = data["rules"][0]
    assert {"id", "title", "severity", "category", "cis", "pss"} <= set(first)
    assert "KM-101" in run("rules", "list").output
    assert "# KM-104" in run("rules", "show", "km-104").output


def test_rules_docs_write_and_check(tmp_path: Path) -> None:
    target = tmp_path / "rules"
    assert run("rules", "docs", "--write", str(target), "--check").exit_code == 1
    assert run("rules", "docs", "--write", str(target)).exit_code == 0
    assert (target / "index.md").is_file() and (target / "KM-101.md").is_file()
    (target / "KM-999.md").write_text("old")
    assert run("rules", "docs", "--write", str(target), "--check").exit_code == 1
    run("rules", "docs", "--write", str(target))
    assert not (target / "KM-999.md").exists()
    assert run("rules", "docs", "--write", str(target), "--check").exit_code == 0


def test_scan_reads_standard_input() -> None:
    text = Path(PRIVILEGED).read_text()
    result = CliRunner().invoke(main, ["scan", "-", "--format", "json"], input=text)
    assert result.exit_code == 0
    data = json.loads(result.output)
    hit = next(f for f in data["findings"] if f["rule_id"] == "KM-101")
    assert hit["location"]["file"] == "<stdin>"


def test_json_output_validates_against_the_contract_schema(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        "exemptions:\n  - rules: [KM-123]\n    reason: r\n    owner: o\n"
        "    expires: 2020-01-01\n  - rules: [KM-105]\n    reason: r\n"
    )
    result = run("scan", str(FIXTURES), str(broken), "--config", str(config), "--format", "json")
    report = json.loads(result.output)
    jsonschema.validate(report, SCAN_REPORT_JSON_SCHEMA)
    statuses = {f["status"] for f in report["findings"]}
    assert statuses == {"open", "exempted"}
    assert report["errors"] and report["summary"]["expired_exemptions"]
