"""The JSON shape of findings, scan errors, scan reports and rule descriptions (stdlib only).

Rules produce these (via `rules.Result.to_finding()`), workers store them, reports render them
and `k8smon scan --format json` prints a `ScanReport`. Everything here is plain JSON data.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

FINDING_STATUSES = ("open", "exempted")
EXEMPTION_STATUSES = ("active", "expired")


class ResourceDict(TypedDict):
    """Names the object a finding is about; `namespace` is None for cluster-scoped objects."""

    apiVersion: str
    kind: str
    namespace: str | None
    name: str


class ExemptionDict(TypedDict):
    """The exemption that matched a finding.

    `source` is `config` (an entry of the configuration's `exemptions`, `index` is its position)
    or `annotation` (the object's `k8s-monitor.io/exempt` annotation). `status` is `active`
    (the finding is exempted) or `expired` (it matched, but its expiry has passed: the finding
    stays open).
    """

    source: Literal["config", "annotation"]
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
    `invalid` (a document is not a Kubernetes object) or `rule` (a rule raised on an object:
    `rule_id` and `resource` say which; the rest of the scan carried on).
    """

    type: Literal["parse", "invalid", "rule"]
    message: str
    file: NotRequired[str | None]
    line: NotRequired[int | None]
    rule_id: NotRequired[str]
    resource: NotRequired[ResourceDict]


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
    scope: Literal["object", "cluster"]
    summary: str
    help_uri: NotRequired[str]
