"""The formats registry is the one list: the CLI, the admin API and OpenAPI all read it."""

from __future__ import annotations

import json

import yaml

from cli.commands.report import report as report_command
from cli.commands.scan import scan as scan_command
from ingest.openapi import openapi_document
from reports.formats import FORMATS, OFFLINE_FORMATS, SERVED_FORMATS, ReportInput
from rules import Engine
from tests.support.manifests import deployment


def _choices(command: object, option: str) -> list[str]:
    for param in command.params:  # type: ignore[attr-defined]
        if param.name == option:
            return list(param.type.choices)
    raise AssertionError(f"no option {option}")


def test_cli_and_openapi_offer_exactly_the_registrys_formats() -> None:
    assert _choices(scan_command, "fmt") == list(OFFLINE_FORMATS)
    assert set(_choices(report_command, "fmt")) >= set(SERVED_FORMATS)
    operation = openapi_document()["paths"]["/v1/admin/clusters/{cluster_id}/report"]["get"]
    (fmt,) = [p for p in operation["parameters"] if p["name"] == "format"]
    assert fmt["schema"]["enum"] == list(SERVED_FORMATS)
    content = operation["responses"]["200"]["content"]
    assert set(content) == {FORMATS[name].media_type for name in SERVED_FORMATS}
    assert "html" in SERVED_FORMATS and "html" not in OFFLINE_FORMATS
    assert "table" in OFFLINE_FORMATS and "table" not in SERVED_FORMATS


def test_every_offline_format_renders_a_real_scan() -> None:
    engine = Engine.from_config()
    outcome = engine.scan([deployment("web", image="nginx:latest")])
    data = ReportInput(
        outcome.to_report(),
        rules=[r.meta.to_info() for r in engine.all_rules],
        tool_version="1",
        terminal=True,
    )
    rendered = {name: FORMATS[name].render(data) for name in OFFLINE_FORMATS}
    assert json.loads(rendered["json"])["summary"]["objects"] == 1
    assert json.loads(rendered["sarif"])["version"] == "2.1.0"
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered["policyreport"])]
    assert kinds and set(kinds) <= {"PolicyReport", "ClusterPolicyReport"}
    assert "web" in rendered["table"]
