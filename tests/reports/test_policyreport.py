"""PolicyReport documents of a scanned cluster."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from sqlalchemy import event

from reports.build import build_cluster_report
from reports.html import render_html
from reports.policyreport import cluster_policy_reports, write_policy_reports
from tests.support.manifests import config_map
from tests.workers.conftest import Pipeline
from tests.workers.workloads import privileged
from workers import jobs
from workers.services import delivery
from workers.services.delivery import write_cluster_html


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


def test_a_scans_reports_are_written_from_one_read_of_its_findings(pipeline: Pipeline) -> None:
    """The HTML report and the PolicyReports written after a scan are those each function
    builds on its own reading, and the findings are read once for both."""
    pipeline.push_and_process(
        "one", [privileged("web", namespace="shop"), config_map("plain", namespace="other")]
    )
    pipeline.run.run("k8smon.rescan", "one")
    pipeline.push_and_process("one", [config_map("plain", namespace="other")])
    scan_id = pipeline.run.run("k8smon.rescan", "one")["scan_id"]  # resolves web's findings
    session, settings = pipeline.session, pipeline.ctx.settings
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = session.get_bind().engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        write_cluster_html(session, settings=settings, scan_id=scan_id)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len([s for s in statements if "FROM findings" in s]) == 1, statements
    folder = settings.instance_path / "reports"
    report = build_cluster_report(session, "one", public_url=settings.public_url, scan_id=scan_id)
    assert report.resolved  # the scan's resolved findings are in the one read too
    assert (folder / "one.html").read_text(encoding="utf-8") == render_html(report)
    listing = json.loads((folder / "one.policyreports.json").read_text(encoding="utf-8"))
    expected = cluster_policy_reports(session, "one")
    stamp = {"creationTimestamp", "timestamp"}

    def unstamped(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: unstamped(v) for k, v in value.items() if k not in stamp}
        if isinstance(value, list):
            return [unstamped(v) for v in value]
        return value

    assert unstamped(listing["items"]) == unstamped(expected)


def test_a_scans_reports_are_written_with_the_cyclic_collector_paused(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    enabled: list[bool] = []
    write = delivery.write_cluster_html

    def spying(*args: Any, **kwargs: Any) -> Any:
        enabled.append(gc.isenabled())
        return write(*args, **kwargs)

    pipeline.push_and_process("gc", [privileged("web", namespace="shop")])
    scan_id = pipeline.run.run("k8smon.rescan", "gc")["scan_id"]
    monkeypatch.setattr(delivery, "write_cluster_html", spying)
    assert gc.isenabled()
    jobs.deliver_reports(pipeline.ctx, scan_id)
    assert enabled == [False]
    assert gc.isenabled()


def test_written_policy_reports_are_utf8_json_and_what_orjson_refuses_is_still_written(
    tmp_path: Any,
) -> None:
    # A lone surrogate escape is valid JSON a manifest can carry; orjson refuses it.
    # orjson writes UTF-8; the standard library writes what it refuses, escaped to ASCII.
    for text, number, spelled in (
        ("naïve — 😀", 1, "😀".encode()),
        ("lone \ud800 surrogate", 1, b"\\ud800"),
        ("big", 2**70, str(2**70).encode()),
    ):
        documents = [{"kind": "PolicyReport", "results": [{"message": text, "n": number}]}]
        written = write_policy_reports(documents, tmp_path / "reports.json").read_bytes()
        assert json.loads(written)["items"] == documents and spelled in written
        written.decode("utf-8")
