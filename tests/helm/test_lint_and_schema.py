"""Both charts lint clean with their CI values, and their schemas reject wrong values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python
import pytest

from tests.helm.charts import (
    AGENT,
    CHARTS,
    SERVER,
    chart_dir,
    ci_values_files,
    load_chart,
    load_values,
    render,
)

WARNING = 2  # helm lint severities: 1 info, 2 warning, 3 error

CI_CASES = [(chart, path) for chart in CHARTS for path in ci_values_files(chart)]


def _case_id(case: tuple[str, Path]) -> str:
    return f"{case[0]}:{case[1].name}"


def test_every_chart_has_ci_default_values() -> None:
    for chart in CHARTS:
        assert (chart_dir(chart) / "ci" / "default-values.yaml").is_file(), chart
        assert len(ci_values_files(chart)) >= 2, f"{chart}: default plus a fuller CI case"


@pytest.mark.parametrize("case", CI_CASES, ids=[_case_id(c) for c in CI_CASES])
def test_lint_is_clean(case: tuple[str, Path]) -> None:
    chart, values_file = case
    report = helm_python.lint(chart_dir(chart), load_values(values_file), strict=True)
    assert report["errors"] == []
    serious = [m for m in report["messages"] if m["severity"] >= WARNING]
    assert serious == [], serious


@pytest.mark.parametrize("chart", CHARTS)
def test_chart_files_are_complete(chart: str) -> None:
    root = chart_dir(chart)
    for name in [
        "Chart.yaml", "values.yaml", "values.schema.json", ".helmignore",
        "templates/_helpers.tpl", "templates/NOTES.txt", "files/self-exemptions.yaml",
    ]:
        assert (root / name).is_file(), f"{chart}/{name}"
    assert list((root / "templates" / "tests").glob("*.yaml")), f"{chart} has no helm test"
    schema = json.loads((root / "values.schema.json").read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False, "unknown top-level keys must be refused"


@pytest.mark.parametrize("case", CI_CASES, ids=[_case_id(c) for c in CI_CASES])
def test_ci_values_pass_the_schema(case: tuple[str, Path]) -> None:
    chart, values_file = case
    load_chart(chart).validate_schema(load_values(values_file))


BAD_SERVER_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"web": {"replicas": "two"}}, "/web/replicas"),
    ({"worker": {"autoscaling": {"enabled": "yes"}}}, "/worker/autoscaling/enabled"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"existingSecret": 42}, "/existingSecret"),
    ({"config": {"retentionDays": 0}}, "/config/retentionDays"),
    ({"config": {"logLevel": "verbose"}}, "/config/logLevel"),
    ({"flower": {"enabled": 1}}, "/flower/enabled"),
    ({"service": {"port": 70000}}, "/service/port"),
    ({"ingress": {"tls": [{"hosts": ["a.example.org"]}]}}, "secretName"),
    ({"networkPolicy": {"database": {"to": "10.0.0.0/8"}}}, "/networkPolicy/database/to"),
    ({"databasePassword": "hunter2"}, "databasePassword"),
]

BAD_AGENT_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"serverUrl": "ftp://monitor"}, "/serverUrl"),
    ({"serverUrl": 8000}, "/serverUrl"),
    ({"clusterId": ["a"]}, "/clusterId"),
    ({"intervals": {"push": "5m"}}, "/intervals/push"),
    ({"intervals": {"ping": 0}}, "/intervals/ping"),
    ({"collect": {"resources": [{"apiGroup": "", "resources": ["secrets"]}]}}, "resources"),
    ({"collect": {"resources": [{"apiGroup": "", "resources": ["*"]}]}}, "resources"),
    ({"collect": {"resources": [{"apiGroup": "*", "resources": ["pods"]}]}}, "apiGroup"),
    ({"key": {"precreateSecret": "true"}}, "/key/precreateSecret"),
    ({"networkPolicy": {"apiServer": {"ports": ["https"]}}}, "/networkPolicy/apiServer/ports"),
    ({"privateKey": "-----BEGIN PRIVATE KEY-----"}, "privateKey"),
]


@pytest.mark.parametrize(
    ("chart", "bad", "where"),
    [(SERVER, bad, where) for bad, where in BAD_SERVER_VALUES]
    + [(AGENT, bad, where) for bad, where in BAD_AGENT_VALUES],
)
def test_schema_rejects_wrong_values(chart: str, bad: dict[str, Any], where: str) -> None:
    base = load_values(chart_dir(chart) / "ci" / "default-values.yaml")
    values = {**base, **bad}
    with pytest.raises(helm_python.HelmValuesError) as caught:
        load_chart(chart).validate_schema(values)
    assert where in str(caught.value)
    # And an install (render) with them is refused before any template runs.
    with pytest.raises(helm_python.HelmValuesError):
        render(chart, values)
    report = helm_python.lint(chart_dir(chart), values)
    assert report["errors"], "lint must report the schema violation"


@pytest.mark.parametrize(
    ("chart", "message"),
    [(SERVER, "existingSecret is required"), (AGENT, "serverUrl is required")],
)
def test_required_values_fail_with_a_clear_message(chart: str, message: str) -> None:
    """No default secrets or endpoints: rendering without them stops and says what is missing."""
    with pytest.raises(helm_python.HelmRenderError) as caught:
        render(chart, {})
    assert message in str(caught.value)


def test_agent_requires_a_cluster_id() -> None:
    with pytest.raises(helm_python.HelmRenderError) as caught:
        render(AGENT, {"serverUrl": "https://monitor.example.org"})
    assert "clusterId is required" in str(caught.value)


@pytest.mark.parametrize("chart", CHARTS)
def test_chart_packages_and_renders_from_the_archive(chart: str, tmp_path: Path) -> None:
    """`helm package` output (what a chart repository serves) carries files/ and the schema."""
    archive = helm_python.package(chart_dir(chart), destination=tmp_path)
    assert Path(archive).name == f"{chart}-0.1.0.tgz"
    packaged = helm_python.Chart.load(archive)
    names = {f["name"] for f in packaged.files}
    assert "files/self-exemptions.yaml" in names
    assert packaged.schema is not None
    values = load_values(chart_dir(chart) / "ci" / "default-values.yaml")
    assert packaged.render(values, name="pkg", namespace="pkg")
