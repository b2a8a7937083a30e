"""`k8smon advisories` and `k8smon images --workloads` as operators run them, against a live
server whose tasks run in process: a loaded advisory's findings are there when the command
returns; a bad file is refused whole (exit 2, naming the field); deleting resolves them."""

from __future__ import annotations

import json

from tests.cli.conftest import Operator

ADVISORY = """
advisories:
  - id: TEST-CLI-1
    severity: high
    summary: test advisory for registry.example/web
    url: https://advisories.example/TEST-CLI-1
    affected:
      - repository: registry.example/web
        introduced: "1.0"
        fixed: "1.2"
"""
BAD = """
- id: TEST-CLI-2
  severity: high
  affected:
    - repository: registry.example/api
      fixed: "1.2"
- id: TEST-CLI-3
  severity: urgent
  affected: [{repository: x}]
"""


def _advisory_findings(operator: Operator) -> list[tuple[str, str, str, str]]:
    result = operator.run(
        "findings", "--rule", "KM-622", "--status", "new,open,resolved", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    return sorted(
        (f["cluster_id"], f["resource"]["name"], f["status"], f["severity"])
        for f in json.loads(result.stdout)
    )


def test_advisories_load_list_delete(operator: Operator) -> None:
    good = operator.tmp / "advisories.yaml"
    good.write_text(ADVISORY, encoding="utf-8")
    bad = operator.tmp / "bad.yaml"
    bad.write_text(BAD, encoding="utf-8")

    refused = operator.run("advisories", "load", str(bad))
    assert refused.exit_code == 2
    assert "advisories[1].severity: one of critical" in refused.output
    assert operator.run("advisories", "list", "--format", "json").stdout.strip() == "[]"
    viewer = operator.run("advisories", "load", str(good), config=operator.viewer_config)
    assert viewer.exit_code != 0

    loaded = operator.run("advisories", "load", str(good))
    assert loaded.exit_code == 0, loaded.output
    assert "1 advisories loaded (1 new, 0 replaced)" in loaded.output
    # prod-eu runs registry.example/web:1.1, in [1.0, 1.2): found at once, no scan needed
    assert _advisory_findings(operator) == [("prod-eu", "web", "new", "high")]
    listed = json.loads(operator.run("advisories", "list", "--format", "json").stdout)
    assert [(a["id"], a["fixed"]) for a in listed] == [("TEST-CLI-1", "1.2")]

    deleted = operator.run("advisories", "delete", "TEST-CLI-1")
    assert deleted.exit_code == 0, deleted.output
    assert _advisory_findings(operator) == [("prod-eu", "web", "resolved", "high")]
    missing = operator.run("advisories", "delete", "TEST-CLI-1")
    assert missing.exit_code != 0 and "no advisory" in missing.output


def test_images_workloads_inventory(operator: Operator) -> None:
    result = operator.run("images", "--workloads", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted((r["cluster_id"], r["workload"], r["tag"]) for r in rows) == [
        ("prod-eu", "Deployment/api", "2"),
        ("prod-eu", "Deployment/web", "1.1"),
        ("staging-us", "Deployment/api", "2"),
    ]
    assert all(r["repository"].startswith("registry.example/") and r["since"] for r in rows)
    only = json.loads(
        operator.run("images", "--workloads", "--repository", "*/web", "--format", "json").stdout
    )
    assert [r["workload"] for r in only] == ["Deployment/web"]
    wrong = operator.run("images", "--repository", "*/web")
    assert wrong.exit_code == 2 and "--repository needs --workloads" in wrong.output
