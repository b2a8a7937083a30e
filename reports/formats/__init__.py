"""Report formats: the one registry (name → media type → renderer) that the CLI, the admin API
and its OpenAPI document read.

The renderers are pure: each takes a `ReportInput` (the JSON scan report of
`contracts.findings.ScanReport`, rule descriptions, and for the server's HTML the cluster
report) and returns text (UTF-8 bytes where it writes bytes natively). A new format is one
`ReportFormat` added to `FORMATS`; `offline` says whether `k8smon scan` offers it, `served`
whether `GET /v1/admin/clusters/<id>/report` (and so `k8smon report`) does, `names_tool`
whether it writes the tool's version (which `k8smon scan` then looks up).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from contracts.findings import RuleInfo, ScanReport
from reports.formats.json_report import render_json_bytes
from reports.formats.policyreport import render_policy_reports
from reports.formats.sarif import render_sarif
from reports.formats.table import render_table

if TYPE_CHECKING:
    from reports.model import ClusterReport


NO_TOOL_VERSION = "0.0.0"  # for outputs that do not name the tool (`ReportFormat.names_tool`)


@dataclass(frozen=True, slots=True)
class ReportInput:
    """What a renderer may read. `cluster` builds the HTML report's data (server side only);
    `terminal` is set by `k8smon scan`, whose PolicyReports are a YAML stream for people
    rather than the JSON the API serves."""

    report: ScanReport
    rules: Sequence[RuleInfo] = ()
    tool_version: str = NO_TOOL_VERSION
    show_exempted: bool = True
    cluster: Callable[[], ClusterReport] | None = None
    terminal: bool = False


@dataclass(frozen=True, slots=True)
class ReportFormat:
    name: str
    media_type: str
    # Text, or UTF-8 where the renderer writes bytes natively (JSON, by orjson): a report of
    # megabytes is then written out as it is, not decoded only to be encoded again.
    render: Callable[[ReportInput], str | bytes]
    offline: bool = True
    served: bool = True
    names_tool: bool = False  # the output carries `ReportInput.tool_version`


def _sarif(data: ReportInput) -> str:
    log = render_sarif(data.report, data.rules, tool_version=data.tool_version)
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _policy_reports(data: ReportInput) -> str:
    """The PolicyReports as a JSON array, or on a terminal one YAML document each."""
    documents = render_policy_reports(data.report)
    if data.terminal:
        return yaml.safe_dump_all(documents, sort_keys=False)
    return json.dumps(documents, indent=2)


def _html(data: ReportInput) -> str:
    from reports.html import render_html  # noqa: PLC0415 - only the server renders HTML

    if data.cluster is None:
        raise ValueError("the HTML report needs the cluster report (server side)")
    return render_html(data.cluster())


FORMATS: Mapping[str, ReportFormat] = {
    f.name: f
    for f in (
        ReportFormat(
            "table",
            "text/plain",
            lambda d: render_table(d.report, show_exempted=d.show_exempted),
            served=False,
        ),
        ReportFormat("json", "application/json", lambda d: render_json_bytes(d.report)),
        ReportFormat("sarif", "application/sarif+json", _sarif, names_tool=True),
        ReportFormat("policyreport", "application/json", _policy_reports),
        ReportFormat("html", "text/html", _html, offline=False),
    )
}
OFFLINE_FORMATS: tuple[str, ...] = tuple(name for name, f in FORMATS.items() if f.offline)
SERVED_FORMATS: tuple[str, ...] = tuple(name for name, f in FORMATS.items() if f.served)
