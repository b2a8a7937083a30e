"""The scan report as JSON text (the design's `k8smon scan --format json` contract)."""

from __future__ import annotations

import json

from contracts.findings import ScanReport


def render_json(report: ScanReport, *, indent: int | None = 2) -> str:
    """Serialise a scan report; keys keep the contract's order."""
    return json.dumps(report, indent=indent, ensure_ascii=False) + "\n"
