"""A cluster's current findings as PolicyReport / ClusterPolicyReport documents (via
reports.formats.policyreport), ready to apply to the cluster or serve to tooling."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy.orm import Session

from contracts.findings import ExemptionDict, ScanReport
from contracts.findings import Finding as FindingDict
from contracts.states import FindingStatus
from reports.formats.policyreport import render_policy_reports
from store.finding_rows import FindingRow, finding_rows


def finding_dict(finding: FindingRow) -> FindingDict:
    """A stored finding in the contract's JSON shape (`contracts.findings.Finding`). Its
    fingerprint is the stored one: the store keys findings by it, and it is the one a scan
    computes (`contracts.findings.finding_fingerprint`) of the same rule, object, container
    and path."""
    details = finding.details or {}
    exemption = details.get("exemption")
    return {
        "rule_id": finding.rule_id,
        "title": str(details.get("title") or finding.rule_id),
        "severity": finding.severity,
        "category": str(details.get("category") or ""),
        "cis": list(details.get("cis") or []),
        "pss": list(details.get("pss") or []),
        "resource": {
            "apiVersion": finding.api_version,
            "kind": finding.kind,
            "namespace": finding.namespace,
            "name": finding.name,
        },
        "container": finding.container,
        "path": finding.path or "",
        "message": finding.message,
        "status": "exempted" if finding.status == FindingStatus.EXEMPTED else "open",
        "exemption": cast(ExemptionDict, exemption)
        if isinstance(exemption, dict)
        else (
            {
                "source": "config",
                "index": None,
                "reason": f"exemption #{finding.exemption_id}",
                "owner": "",
                "expires": None,
                "status": "active",
            }
            if finding.exemption_id
            else None
        ),
        "fingerprint": finding.fingerprint,
    }


def cluster_policy_reports(
    session: Session,
    cluster_id: str,
    *,
    now: dt.datetime | None = None,
    active: Sequence[FindingRow] | None = None,
) -> list[dict[str, Any]]:
    """The cluster's active findings as PolicyReport documents. `active`: those findings
    (`finding_rows` with its default statuses, in its order), when the caller has them."""
    stored = finding_rows(session, cluster_id) if active is None else active
    findings = [finding_dict(f) for f in stored]
    report: ScanReport = {"findings": findings, "errors": [], "summary": {}}  # type: ignore[typeddict-item]
    return render_policy_reports(report, now=now)


def write_policy_reports(documents: list[dict[str, Any]], path: Path) -> Path:
    """Write the documents as one JSON `List` (what `kubectl apply -f` takes); JSON rather
    than YAML because the pure-Python YAML emitter is slow on thousands of results. UTF-8
    by orjson; what orjson refuses (a lone surrogate escape pushed in a manifest, an integer
    beyond 64 bits) is written by the standard library, escaped to ASCII."""
    path.parent.mkdir(parents=True, exist_ok=True)
    listing = {"apiVersion": "v1", "kind": "List", "items": documents}
    try:
        text = orjson.dumps(listing)
    except orjson.JSONEncodeError:
        text = json.dumps(listing, separators=(",", ":")).encode("ascii")
    path.write_bytes(text)
    return path
