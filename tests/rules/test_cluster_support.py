"""Cluster versions: the dated end-of-support table, KM-619 and KM-609's next-minor wording,
through the offline `k8smon scan --kubernetes-version` the user runs."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from rules import default_rules, psa, releases

K8SMON = Path(sys.executable).with_name("k8smon")


def _scan(path: Path, *args: str) -> dict[tuple[str, str], str]:
    done = subprocess.run(
        [str(K8SMON), "scan", str(path), "--format", "json", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return {(f["rule_id"], f["resource"]["name"]): f["message"] for f in report["findings"]}


def test_the_table_is_dated_ordered_and_reaches_the_newest_release() -> None:
    table = releases.RELEASES
    assert max(table) == psa.LATEST and min(table) == (1, 19)
    versions = sorted(table)
    assert versions == [(1, minor) for minor in range(19, psa.LATEST[1] + 1)]
    for version in versions:
        row = table[version]
        assert row.released < row.end_of_support
    ends = [table[v].end_of_support for v in versions]
    assert ends == sorted(ends)
    # Upstream supports the three newest minors as of the table's date.
    supported = [v for v in versions if releases.is_supported(v)]
    assert supported == versions[-3:]
    assert not releases.is_supported((1, 16))  # older than the table: long unsupported
    assert releases.is_supported((1, 34), on=dt.date(2026, 10, 27))
    assert not releases.is_supported((1, 34), on=dt.date(2026, 10, 28))
    assert releases.next_minor((1, 32)) == (1, 33)


def test_offline_scan_reports_the_release_and_the_next_minor_break(tmp_path: Path) -> None:
    manifest = tmp_path / "cluster.json"
    flow = {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1beta3",
        "kind": "FlowSchema",
        "metadata": {"name": "batch"},
        "spec": {"priorityLevelConfiguration": {"name": "low"}, "matchingPrecedence": 1000},
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}
    manifest.write_text(json.dumps([namespace, flow]))

    at_1_31 = _scan(manifest, "--kubernetes-version", "v1.31.4")
    assert "support ended on 2025-10-28" in at_1_31[("KM-619", "kube-system")]
    assert "will break when the cluster upgrades to Kubernetes 1.32" in at_1_31[("KM-609", "batch")]
    assert ("KM-608", "batch") not in at_1_31
    assert (
        "1 object will break when the cluster upgrades to Kubernetes 1.32"
        in (at_1_31[("KM-620", "kube-system")])
    )

    # Two minors before the removal: deprecated, but not the next upgrade's break.
    at_1_30 = _scan(manifest, "--kubernetes-version", "1.30")
    assert "upgrades to" not in at_1_30[("KM-609", "batch")]
    assert "1.32 stops serving" in at_1_30[("KM-609", "batch")]
    assert ("KM-620", "kube-system") not in at_1_30

    for supported in ("1.35", "latest"):
        found = _scan(manifest, "--kubernetes-version", supported)
        assert ("KM-619", "kube-system") not in found
        assert ("KM-608", "batch") in found
    assert ("KM-619", "kube-system") not in _scan(manifest)  # unknown: judged as the newest


def test_the_table_date_is_part_of_the_catalogue_version() -> None:
    """A refreshed table (new AS_OF) must change the catalogue version cached results use."""
    (meta,) = [r.meta for r in default_rules() if r.id == "KM-619"]
    assert releases.AS_OF.isoformat() in meta.to_info()["remediation"]
