"""End to end as an operator's CI would do it: render the charts to files and run the offline
scanner, `k8smon scan DIR --format json --config FILE --fail-on high`, as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helm.charts import CHARTS, ci_values_files, load_values, render
from tests.helm.test_self_scan import rules_config

CASES = [(chart, path) for chart in CHARTS for path in ci_values_files(chart)]


def k8smon(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script when present, else the same entry point via python -m."""
    script = Path(sys.executable).with_name("k8smon")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.parametrize(("chart", "values_file"), CASES,
                         ids=[f"{c}:{p.name}" for c, p in CASES])
def test_k8smon_scan_passes_the_rendered_chart(
    chart: str, values_file: Path, tmp_path: Path
) -> None:
    rendered = render(chart, load_values(values_file))
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    # One file per kind, multi-document, as `helm template --output-dir` would spread them.
    by_kind: dict[str, list[dict]] = {}
    for doc in rendered.documents:
        by_kind.setdefault(doc["kind"], []).append(doc)
    for kind, docs in by_kind.items():
        (manifests / f"{kind.lower()}.yaml").write_text(
            yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    config = tmp_path / "rules-config.yaml"
    config.write_text(yaml.safe_dump(rules_config(chart, rendered)), encoding="utf-8")

    result = k8smon("scan", str(manifests), "--format", "json", "--config", str(config),
                    "--fail-on", "high")

    assert result.returncode == 0, result.stderr + result.stdout[-2000:]
    report = json.loads(result.stdout)
    assert report["errors"] == []
    for finding in report["findings"]:
        assert finding["severity"] not in {"high", "critical"}, finding
        assert finding["status"] == "exempted", finding
        assert finding["exemption"]["reason"].strip()
    summary = report["summary"]
    assert summary["objects"] == len(rendered.documents), "every rendered object was scanned"
    assert summary["open"] == 0 and summary["errors"] == 0
    assert summary["expired_exemptions"] == []
