"""Every rendered object matches the Kubernetes API types: no unknown, misplaced or mistyped
field that a real API server would silently drop or refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helm.charts import CHARTS, ci_values_files, load_values, render
from tests.helm.kube_schema import validate

CASES = [(chart, path) for chart in CHARTS for path in ci_values_files(chart)]


@pytest.mark.parametrize(("chart", "values_file"), CASES,
                         ids=[f"{c}:{p.name}" for c, p in CASES])
def test_rendered_objects_match_the_api_types(chart: str, values_file: Path) -> None:
    rendered = render(chart, load_values(values_file))
    problems = [p for doc in rendered.documents for p in validate(doc)]
    assert problems == []


def test_the_validator_catches_a_misplaced_security_setting() -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {
            "containers": [{"name": "c", "image": "i",
                            "readOnlyRootFilesystem": True,
                            "securityContext": {"runAsNonRoot": "yes"}}]}}},
    }
    problems = validate(deployment)
    assert any("readOnlyRootFilesystem: no such field in V1Container" in p for p in problems)
    assert any("runAsNonRoot: expected bool" in p for p in problems)
    assert len(problems) == 2
