"""SARIF 2.1.0 output (GitHub code scanning): one run, rule descriptors, located results."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from contracts.findings import Finding, RuleInfo, ScanReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOOL_NAME = "k8s-monitor"
TOOL_URI = "https://github.com/k8s-monitor/k8s-monitor"
LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub maps security-severity to critical (>= 9.0), high (7.0-8.9), medium (4.0-6.9), low.
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "1.0"}


def _uri(path: str) -> str:
    pure = PurePath(path)
    if pure.is_absolute():
        return pure.as_uri() if hasattr(pure, "as_uri") else path
    return pure.as_posix()


def _descriptor(info: RuleInfo) -> dict[str, Any]:
    tags = ["security", "kubernetes", info["category"]]
    tags += [f"CIS-{cis}" for cis in info["cis"]]
    tags += [f"PSS-{pss}" for pss in info["pss"]]
    text = [info["summary"]]
    if info["remediation"]:
        text.append(f"Remediation: {info['remediation']}")
    descriptor: dict[str, Any] = {
        "id": info["id"],
        "name": "".join(part.capitalize() for part in info["title"].split() if part.isalnum())
        or info["id"],
        "shortDescription": {"text": info["title"]},
        "fullDescription": {"text": info["summary"]},
        "help": {"text": "\n\n".join(text), "markdown": "\n\n".join(text)},
        "defaultConfiguration": {"level": LEVELS[info["severity"]]},
        "properties": {
            "tags": tags,
            "precision": "high",
            "security-severity": SECURITY_SEVERITY[info["severity"]],
            "severity": info["severity"],
        },
    }
    if info.get("help_uri"):
        descriptor["helpUri"] = info["help_uri"]
    return descriptor


def _result(finding: Finding, rule_index: dict[str, int]) -> dict[str, Any]:
    res = finding["resource"]
    qualified = "/".join(p for p in (res["namespace"] or "", res["kind"], res["name"]) if p)
    location: dict[str, Any] = {
        "logicalLocations": [
            {
                "name": res["name"],
                "fullyQualifiedName": qualified
                + (f"/{finding['path']}" if finding["path"] else ""),
                "kind": "resource",
            }
        ],
    }
    if "location" in finding and not finding["location"]["file"].startswith("<"):
        location["physicalLocation"] = {
            "artifactLocation": {"uri": _uri(finding["location"]["file"])},
            "region": {"startLine": max(1, int(finding["location"]["line"]))},
        }
    result: dict[str, Any] = {
        "ruleId": finding["rule_id"],
        "level": LEVELS[finding["severity"]],
        "message": {"text": finding["message"]},
        "locations": [location],
        "partialFingerprints": {"k8sMonitorFinding/v1": finding["fingerprint"]},
        "properties": {
            "severity": finding["severity"],
            "resource": dict(res),
            "container": finding["container"],
            "path": finding["path"],
            "cis": list(finding["cis"]),
            "pss": list(finding["pss"]),
        },
    }
    if finding["rule_id"] in rule_index:
        result["ruleIndex"] = rule_index[finding["rule_id"]]
    if finding["status"] == "exempted" and finding["exemption"]:
        exemption = finding["exemption"]
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": exemption["reason"]
                + (f" (owner: {exemption['owner']})" if exemption["owner"] else ""),
            }
        ]
    return result


def render_sarif(
    report: ScanReport, rules: Sequence[RuleInfo], *, tool_version: str
) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run. `rules` describes every rule that may appear."""
    descriptors = [_descriptor(info) for info in rules]
    rule_index = {d["id"]: i for i, d in enumerate(descriptors)}
    notifications = []
    for error in report["errors"]:
        note: dict[str, Any] = {"level": "error", "message": {"text": error["message"]}}
        if error.get("file") and not str(error["file"]).startswith("<"):
            physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(str(error["file"]))}}
            if error.get("line"):
                physical["region"] = {"startLine": max(1, int(error["line"] or 1))}
            note["locations"] = [{"physicalLocation": physical}]
        if error.get("rule_id"):
            note["associatedRule"] = {"id": error["rule_id"]}
        notifications.append(note)
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": tool_version,
                        "semanticVersion": tool_version,
                        "informationUri": TOOL_URI,
                        "rules": descriptors,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": [_result(f, rule_index) for f in report["findings"]],
                "properties": {"catalogueVersion": report["summary"]["catalogue_version"]},
            }
        ],
    }
