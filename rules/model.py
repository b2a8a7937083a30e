"""Rule metadata, the `@rule` decorator, and the values rules yield (Violation) and the engine
returns (Result).

The decorator only attaches frozen metadata to the function (`fn.__rule__`); nothing is
registered anywhere. `rules.registry` collects decorated functions from the modules it lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from contracts.findings import (
    ExemptionDict,
    Finding,
    LocationDict,
    RuleInfo,
    finding_fingerprint,
)
from contracts.resources import ResourceRef
from contracts.severity import Severity

RULE_ID_PATTERN = re.compile(r"^KM-[1-9][0-9]{2}$")
CIS_PATTERN = re.compile(r"^[1-5](\.[0-9]{1,2}){2}$")
PSS_PATTERN = re.compile(r"^(baseline|restricted)/[a-z0-9-]+$")
DOC_URL = "https://github.com/k8s-monitor/k8s-monitor/blob/main/docs/rules/{id}.md"


class Status(StrEnum):
    """Lifecycle of a rule: preview rules may change; deprecated ones will be removed."""

    STABLE = "stable"
    PREVIEW = "preview"
    DEPRECATED = "deprecated"


class Scope(StrEnum):
    """`object` rules see one manifest; `cluster` rules see a whole cluster's state; `fleet`
    rules see the images every cluster runs and the loaded advisories (`rules.fleet`)."""

    OBJECT = "object"
    CLUSTER = "cluster"
    FLEET = "fleet"


@dataclass(frozen=True, slots=True)
class RuleMeta:
    """Everything known about a rule except its code. Immutable."""

    id: str
    title: str
    severity: Severity
    category: str
    scope: Scope
    cis: tuple[str, ...] = ()
    pss: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    remediation: str = ""
    kinds: frozenset[str] | None = None
    api_versions: frozenset[str] | None = None
    status: Status = Status.STABLE
    doc: str = ""

    @property
    def summary(self) -> str:
        """First paragraph of the docstring's *What it does* section (or its first line)."""
        return doc_summary(self.doc) or self.title

    def applies_to(self, kind: str, api_version: str) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        return self.api_versions is None or api_version in self.api_versions

    def to_info(self) -> RuleInfo:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.value,
            "category": self.category,
            "cis": list(self.cis),
            "pss": list(self.pss),
            "references": list(self.references),
            "remediation": self.remediation,
            "kinds": sorted(self.kinds) if self.kinds is not None else None,
            "api_versions": sorted(self.api_versions) if self.api_versions is not None else None,
            "status": self.status.value,
            "scope": self.scope.value,
            "summary": self.summary,
            "help_uri": DOC_URL.format(id=self.id),
        }


def doc_summary(doc: str) -> str:
    """The first paragraph under `## What it does` (or the docstring's first paragraph)."""
    text = doc.strip()
    if not text:
        return ""
    marker = "## What it does"
    if marker in text:
        text = text.split(marker, 1)[1]
    paragraph = text.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines()).strip()


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered rule: its metadata and the function that checks it."""

    meta: RuleMeta
    check: Callable[..., Iterable[Violation]]

    @property
    def id(self) -> str:
        return self.meta.id


def rule(
    *,
    id: str,
    title: str,
    severity: Severity,
    category: str,
    scope: Scope | str = Scope.OBJECT,
    cis: Iterable[str] = (),
    pss: Iterable[str] = (),
    references: Iterable[str] = (),
    remediation: str = "",
    kinds: Iterable[str] | None = None,
    api_versions: Iterable[str] | None = None,
    status: Status | str = Status.STABLE,
) -> Callable[[Callable[..., Iterable[Violation]]], Callable[..., Iterable[Violation]]]:
    """Attach frozen metadata to a rule function; registers nothing.

    Object rules are `def check(obj: ObjectView) -> Iterable[Violation]`; cluster rules are
    `def check(cluster: ClusterContext) -> Iterable[Violation]` and must set `subject=` on
    each violation. The docstring follows the ruff template (What it does / Why is this bad? /
    Example / Use instead / References) and becomes the rule's documentation page.
    """
    meta_fields: dict[str, Any] = {
        "id": id,
        "title": title,
        "severity": severity,
        "category": category,
        "scope": Scope(scope),
        "cis": tuple(cis),
        "pss": tuple(pss),
        "references": tuple(references),
        "remediation": remediation,
        "kinds": frozenset(kinds) if kinds is not None else None,
        "api_versions": frozenset(api_versions) if api_versions is not None else None,
        "status": Status(status),
    }
    _validate(meta_fields)

    def decorate(fn: Callable[..., Iterable[Violation]]) -> Callable[..., Iterable[Violation]]:
        doc = _dedent_doc(fn.__doc__ or "")
        if not doc:
            raise ValueError(f"rule {id} ({fn.__qualname__}) has no docstring")
        fn.__rule__ = RuleMeta(doc=doc, **meta_fields)  # type: ignore[attr-defined]
        return fn

    return decorate


def _validate(fields: Mapping[str, Any]) -> None:
    rule_id = fields["id"]
    if not RULE_ID_PATTERN.match(rule_id):
        raise ValueError(f"rule id {rule_id!r} does not match KM-NNN")
    if not isinstance(fields["severity"], Severity):
        raise TypeError(f"rule {rule_id}: severity must be a contracts.severity.Severity")
    if not fields["title"] or not fields["category"]:
        raise ValueError(f"rule {rule_id}: title and category are required")
    for cis in fields["cis"]:
        if not CIS_PATTERN.match(cis):
            raise ValueError(f"rule {rule_id}: CIS id {cis!r} is not like '5.2.2'")
    for pss in fields["pss"]:
        if not PSS_PATTERN.match(pss):
            raise ValueError(f"rule {rule_id}: PSS control {pss!r} is not '<level>/<control>'")


def _dedent_doc(doc: str) -> str:
    lines = doc.expandtabs().splitlines()
    if not lines:
        return ""
    rest = [line for line in lines[1:] if line.strip()]
    indent = min((len(line) - len(line.lstrip()) for line in rest), default=0)
    out = [lines[0].strip()] + [line[indent:].rstrip() for line in lines[1:]]
    return "\n".join(out).strip()


def rule_meta(fn: Callable[..., Any]) -> RuleMeta | None:
    """The metadata `@rule` attached to `fn`, or None for an undecorated function."""
    meta = getattr(fn, "__rule__", None)
    return meta if isinstance(meta, RuleMeta) else None


class Violation(NamedTuple):
    """What a rule yields: a message a developer can act on and where the problem is.

    `path` is the JSON path of the offending field (dotted, `[i]` indexes); `container` names
    the container when the problem is in one. Cluster rules set `subject` to the manifest (or
    `ObjectView`) the violation is about; object rules leave it None (the object itself);
    fleet rules set it to the `rules.fleet.RunningImage` (which names its cluster).
    `severity` overrides the rule's own for this violation (fleet rules: an advisory's).
    Immutable (a named tuple: several times cheaper to build than a frozen dataclass, and a
    scan builds one per violation).
    """

    message: str
    path: str = ""
    container: str | None = None
    subject: Any = None
    severity: Severity | None = None


ResultStatus = str  # "open" | "exempted" | "error"
# Each severity's text, by plain look-up (`Severity.value` is an enum property, and a report
# reads it once per finding).
SEVERITY_VALUES: Mapping[Severity, str] = {severity: severity.value for severity in Severity}


class Result(NamedTuple):
    """One evaluated violation (or rule error) with everything needed to report it.

    Immutable; `result._replace(...)` makes a changed copy. A named tuple rather than a frozen
    dataclass because a scan builds one per finding and construction cost matters.
    """

    rule_id: str
    title: str
    severity: Severity
    category: str
    cis: tuple[str, ...]
    pss: tuple[str, ...]
    resource: ResourceRef
    container: str | None
    path: str
    message: str
    status: ResultStatus = "open"
    exemption: ExemptionDict | None = None
    location: LocationDict | None = None

    @property
    def is_error(self) -> bool:
        return self.status == "error"

    @property
    def fingerprint(self) -> str:
        """Stable identity of the finding across scans: rule, resource, container and path."""
        return finding_fingerprint(
            rule_id=self.rule_id,
            ref_key=self.resource.key,
            container=self.container,
            path=self.path,
        )

    def to_finding(self) -> Finding:
        """The JSON finding of the design's contract (`contracts.findings.Finding`)."""
        finding: Finding = {
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": SEVERITY_VALUES[self.severity],
            "category": self.category,
            "cis": list(self.cis),
            "pss": list(self.pss),
            "resource": self.resource.to_dict(),  # type: ignore[typeddict-item]
            "container": self.container,
            "path": self.path,
            "message": self.message,
            "status": "exempted" if self.status == "exempted" else "open",
            "exemption": dict(self.exemption) if self.exemption else None,  # type: ignore[typeddict-item]
            "fingerprint": finding_fingerprint(
                rule_id=self.rule_id,
                ref_key=self.resource.key,
                container=self.container,
                path=self.path,
            ),
        }
        if self.location is not None:
            finding["location"] = dict(self.location)  # type: ignore[typeddict-item]
        return finding
