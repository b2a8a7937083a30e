"""The JSON shape of findings, scan errors, scan reports and rule descriptions (stdlib only).

Rules produce these (via `rules.Result.to_finding()`), workers store them, reports render them
and `k8smon scan --format json` prints a `ScanReport`. Everything here is plain JSON data.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, NotRequired, TypedDict

from contracts.severity import Severity

FINDING_STATUSES = ("open", "exempted")
EXEMPTION_STATUSES = ("active", "expired")


def finding_fingerprint(
    *, rule_id: str, ref_key: str, container: str | None, path: str | None
) -> str:
    """A finding's stable identity across scans, offline and on the server alike: SHA-256 (64
    hex digits) of rule id, resource key (`apiVersion|kind|namespace|name`), container and
    JSON path."""
    raw = "\x00".join((rule_id, ref_key, container or "", path or ""))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ResourceDict(TypedDict):
    """Names the object a finding is about; `namespace` is None for cluster-scoped objects."""

    apiVersion: str
    kind: str
    namespace: str | None
    name: str


class ExemptionDict(TypedDict):
    """The exemption that matched a finding.

    `source` is `config` (an entry of the configuration's `exemptions`, `index` is its position),
    `annotation` (the object's `k8s-monitor.io/exempt` annotation) or `database` (one made with
    the CLI or the admin pages, `index` is its id; server-side only). `status` is `active`
    (the finding is exempted) or `expired` (it matched, but its expiry has passed: the finding
    stays open).
    """

    source: Literal["config", "annotation", "database"]
    index: int | None
    reason: str
    owner: str
    expires: str | None
    status: Literal["active", "expired"]


class LocationDict(TypedDict):
    """Where an offline scan read the object from (file and 1-based line of its document)."""

    file: str
    line: int


class Finding(TypedDict):
    """One violation of one rule by one object (and container, when it applies to one).

    `path` is the JSON path of the offending field, dotted with `[i]` indexes, e.g.
    `spec.template.spec.containers[0].securityContext.privileged`. `fingerprint` is stable
    for the same (rule, resource, container, path) and is what tracks a finding over time.
    """

    rule_id: str
    title: str
    severity: str
    category: str
    cis: list[str]
    pss: list[str]
    resource: ResourceDict
    container: str | None
    path: str
    message: str
    status: Literal["open", "exempted"]
    exemption: ExemptionDict | None
    fingerprint: str
    location: NotRequired[LocationDict]


class ScanErrorDict(TypedDict):
    """Something that could not be evaluated.

    `type` is `parse` (a file or document could not be read; `file`/`line` say where),
    `invalid` (a document is not a Kubernetes object, or an object is not structurally valid
    for its kind: `path` names the first offending field, `resource` the object; it was not
    scanned) or `rule` (a rule raised on an object: `rule_id` and `resource` say which; the
    rest of the scan carried on).
    """

    type: Literal["parse", "invalid", "rule"]
    message: str
    file: NotRequired[str | None]
    line: NotRequired[int | None]
    rule_id: NotRequired[str]
    resource: NotRequired[ResourceDict]
    path: NotRequired[str]


class ExpiredExemptionDict(TypedDict):
    """A configured exemption whose expiry has passed (it no longer applies)."""

    index: int
    rules: list[str]
    reason: str
    owner: str
    expires: str


class ScanSummary(TypedDict):
    """Totals of one scan. `by_severity` counts open findings only."""

    objects: int
    rules: int
    findings: int
    open: int
    exempted: int
    errors: int
    by_severity: dict[str, int]
    expired_exemptions: list[ExpiredExemptionDict]
    catalogue_version: str


class ScanReport(TypedDict):
    """What `k8smon scan --format json` prints (the design's JSON contract)."""

    findings: list[Finding]
    errors: list[ScanErrorDict]
    summary: ScanSummary


class RuleInfo(TypedDict):
    """A rule's public description, as `k8smon rules list --format json` prints it."""

    id: str
    title: str
    severity: str
    category: str
    cis: list[str]
    pss: list[str]
    references: list[str]
    remediation: str
    kinds: list[str] | None
    api_versions: list[str] | None
    status: Literal["stable", "preview", "deprecated"]
    scope: Literal["object", "cluster", "fleet"]
    summary: str
    help_uri: NotRequired[str]


_RESOURCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "namespace", "name"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "namespace": {"type": ["string", "null"]},
        "name": {"type": "string"},
    },
}
_SEVERITY_SCHEMA: dict[str, Any] = {"enum": [s.value for s in Severity]}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}

FINDING_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "rule_id",
        "title",
        "severity",
        "category",
        "cis",
        "pss",
        "resource",
        "container",
        "path",
        "message",
        "status",
        "exemption",
        "fingerprint",
    ],
    "additionalProperties": False,
    "properties": {
        "rule_id": {"type": "string", "pattern": "^KM-[0-9]{3}$"},
        "title": {"type": "string"},
        "severity": _SEVERITY_SCHEMA,
        "category": {"type": "string"},
        "cis": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)+$"}},
        "pss": {
            "type": "array",
            "items": {"type": "string", "pattern": "^(baseline|restricted)/[a-z0-9-]+$"},
        },
        "resource": _RESOURCE_SCHEMA,
        "container": {"type": ["string", "null"]},
        "path": {"type": "string"},
        "message": {"type": "string", "minLength": 1},
        "status": {"enum": list(FINDING_STATUSES)},
        "exemption": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["source", "index", "reason", "owner", "expires", "status"],
                    "additionalProperties": False,
                    "properties": {
                        "source": {"enum": ["config", "annotation", "database"]},
                        "index": {"type": ["integer", "null"]},
                        "reason": {"type": "string"},
                        "owner": {"type": "string"},
                        "expires": {"type": ["string", "null"]},
                        "status": {"enum": list(EXEMPTION_STATUSES)},
                    },
                },
            ]
        },
        "fingerprint": {"type": "string"},
        "location": {
            "type": "object",
            "required": ["file", "line"],
            "additionalProperties": False,
            "properties": {"file": {"type": "string"}, "line": {"type": "integer", "minimum": 1}},
        },
    },
}

SCAN_REPORT_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "k8smon scan --format json",
    "type": "object",
    "required": ["findings", "errors", "summary"],
    "additionalProperties": False,
    "properties": {
        "findings": {"type": "array", "items": FINDING_JSON_SCHEMA},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {
                    "type": {"enum": ["parse", "invalid", "rule"]},
                    "message": {"type": "string"},
                    "file": {"type": ["string", "null"]},
                    "line": {"type": ["integer", "null"]},
                    "rule_id": {"type": "string"},
                    "resource": _RESOURCE_SCHEMA,
                    "path": {"type": "string"},
                },
            },
        },
        "summary": {
            "type": "object",
            "required": [
                "objects",
                "rules",
                "findings",
                "open",
                "exempted",
                "errors",
                "by_severity",
                "expired_exemptions",
                "catalogue_version",
            ],
            "properties": {
                "objects": {"type": "integer", "minimum": 0},
                "rules": {"type": "integer", "minimum": 0},
                "findings": {"type": "integer", "minimum": 0},
                "open": {"type": "integer", "minimum": 0},
                "exempted": {"type": "integer", "minimum": 0},
                "errors": {"type": "integer", "minimum": 0},
                "by_severity": {
                    "type": "object",
                    "required": [s.value for s in Severity],
                    "additionalProperties": {"type": "integer", "minimum": 0},
                },
                "expired_exemptions": {"type": "array", "items": {"type": "object"}},
                "catalogue_version": {"type": "string"},
            },
        },
    },
}
