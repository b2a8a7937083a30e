"""PolicyReport documents of a scanned cluster."""

from __future__ import annotations

import json

from reports.policyreport import cluster_policy_reports
from tests.support.manifests import config_map
from tests.workers.conftest import Pipeline
from tests.workers.workloads import privileged


def test_policy_reports_per_namespace_then_cluster(pipeline: Pipeline) -> None:
    pipeline.push_and_process(
        "pr", [privileged("web", namespace="shop"), config_map("plain", namespace="other")]
    )
    pipeline.run.run("k8smon.rescan", "pr")
    documents = cluster_policy_reports(pipeline.session, "pr")
    kinds = [d["kind"] for d in documents]
    assert kinds[-1] == "ClusterPolicyReport" and set(kinds[:-1]) == {"PolicyReport"}
    shop = next(d for d in documents if d["metadata"].get("namespace") == "shop")
    assert shop["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
    privileged_result = next(r for r in shop["results"] if r["policy"] == "KM-101")
    assert privileged_result["result"] == "fail" and privileged_result["severity"] == "critical"
    assert privileged_result["properties"]["cis"] == "5.2.2"
    assert privileged_result["resources"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "shop"}
    ]
    assert shop["summary"]["fail"] == len(shop["results"])


def test_the_scan_writes_html_and_policy_reports(pipeline: Pipeline) -> None:
    pipeline.push_and_process("files", [privileged("web", namespace="shop")])
    pipeline.run.run("k8smon.rescan", "files")
    folder = pipeline.ctx.settings.instance_path / "reports"
    assert "KM-101" in (folder / "files.html").read_text(encoding="utf-8")
    listing = json.loads((folder / "files.policyreports.json").read_text(encoding="utf-8"))
    assert listing["kind"] == "List"
    assert [d["kind"] for d in listing["items"]][-1] == "ClusterPolicyReport"
