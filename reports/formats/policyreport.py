"""PolicyReport / ClusterPolicyReport (wgpolicyk8s.io/v1alpha2) from a scan report.

One PolicyReport per namespace with findings, one ClusterPolicyReport for cluster-scoped
objects. Open findings are `fail`, exempted ones `skip`, rule errors `error`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Any

from contracts.findings import Finding, ScanReport
from contracts.severity import Severity

API_VERSION = "wgpolicyk8s.io/v1alpha2"
SOURCE = "k8s-monitor"
MANAGED_BY = {"app.kubernetes.io/managed-by": "k8s-monitor"}
_SEVERITIES = frozenset(Severity)


def _name(suffix: str) -> str:
    clean = re.sub(r"[^a-z0-9-]+", "-", suffix.lower()).strip("-")
    return f"k8s-monitor-{clean}"[:253].rstrip("-")


def _timestamp(seconds: int) -> dict[str, int]:
    return {"seconds": seconds, "nanos": 0}


def _result(finding: Finding, seconds: int) -> dict[str, Any]:
    res = finding["resource"]
    resource = {"apiVersion": res["apiVersion"], "kind": res["kind"], "name": res["name"]}
    if res["namespace"]:
        resource["namespace"] = res["namespace"]
    properties = {"path": finding["path"], "fingerprint": finding["fingerprint"]}
    if finding["container"]:
        properties["container"] = finding["container"]
    if finding["cis"]:
        properties["cis"] = ",".join(finding["cis"])
    if finding["pss"]:
        properties["pss"] = ",".join(finding["pss"])
    if finding["exemption"]:
        properties["exemption"] = finding["exemption"]["reason"]
    result: dict[str, Any] = {
        "source": SOURCE,
        "policy": finding["rule_id"],
        "rule": finding["title"],
        "category": finding["category"],
        "result": "skip" if finding["status"] == "exempted" else "fail",
        "scored": True,
        "message": finding["message"],
        "resources": [resource],
        "timestamp": _timestamp(seconds),
        "properties": properties,
    }
    if finding["severity"] in _SEVERITIES:
        result["severity"] = finding["severity"]
    return result


def _summary(results: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    for result in results:
        counts[result["result"]] += 1
    return counts


def render_policy_reports(
    report: ScanReport, *, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """PolicyReports (namespaced, sorted by namespace) then the ClusterPolicyReport."""
    seconds = int((now or dt.datetime.now(dt.UTC)).timestamp())
    by_namespace: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for finding in report["findings"]:
        by_namespace[finding["resource"]["namespace"]].append(_result(finding, seconds))
    for error in report["errors"]:
        res = error.get("resource")
        if error.get("type") != "rule" or not res:
            continue
        by_namespace[res.get("namespace")].append(
            {
                "source": SOURCE,
                "policy": error.get("rule_id", ""),
                "result": "error",
                "scored": False,
                "message": error["message"],
                "timestamp": _timestamp(seconds),
                "resources": [{k: v for k, v in res.items() if v is not None}],
            }
        )
    documents = []
    for namespace in sorted(ns for ns in by_namespace if ns):
        results = by_namespace[namespace]
        documents.append(
            {
                "apiVersion": API_VERSION,
                "kind": "PolicyReport",
                "metadata": {
                    "name": _name(namespace),
                    "namespace": namespace,
                    "labels": dict(MANAGED_BY),
                },
                "summary": _summary(results),
                "results": results,
            }
        )
    cluster_results = by_namespace.get(None, [])
    documents.append(
        {
            "apiVersion": API_VERSION,
            "kind": "ClusterPolicyReport",
            "metadata": {"name": _name("cluster"), "labels": dict(MANAGED_BY)},
            "summary": _summary(cluster_results),
            "results": cluster_results,
        }
    )
    return documents
