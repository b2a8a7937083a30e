"""A cluster's current findings as PolicyReport / ClusterPolicyReport documents (via
reports.formats.policyreport), ready to apply to the cluster or serve to tooling."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from sqlalchemy.orm import Session

from contracts.findings import ExemptionDict, ScanReport
from contracts.findings import Finding as FindingDict
from contracts.resources import resource_key
from contracts.states import FindingStatus
from reports.formats.policyreport import render_policy_reports
from store.findings import cluster_findings, fingerprint
from store.models import Finding


def finding_dict(finding: Finding) -> FindingDict:
    """A stored finding in the contract's JSON shape (`contracts.findings.Finding`)."""
    details = finding.details or {}
    exemption = details.get("exemption")
    ref_key = resource_key(finding.api_version, finding.kind, finding.namespace, finding.name)
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
        "fingerprint": fingerprint(
            rule_id=finding.rule_id, ref_key=ref_key, container=finding.container, path=finding.path
        ),
    }


def cluster_policy_reports(
    session: Session,
    cluster_id: str,
    *,
    now: dt.datetime | None = None,
    active: Sequence[Finding] | None = None,
) -> list[dict[str, Any]]:
    """The cluster's active findings as PolicyReport documents. `active`: those findings
    (`cluster_findings` with its default statuses, in its order), when the caller has them."""
    stored = cluster_findings(session, cluster_id) if active is None else active
    findings = [finding_dict(f) for f in stored]
    report: ScanReport = {"findings": findings, "errors": [], "summary": {}}  # type: ignore[typeddict-item]
    return render_policy_reports(report, now=now)


def write_policy_reports(documents: list[dict[str, Any]], path: Path) -> Path:
    """Write the documents as one JSON `List` (what `kubectl apply -f` takes); JSON rather
    than YAML because the pure-Python YAML emitter is slow on thousands of results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    listing = {"apiVersion": "v1", "kind": "List", "items": documents}
    path.write_text(json.dumps(listing, separators=(",", ":")), encoding="utf-8")
    return path
