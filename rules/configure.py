"""Configuration as one pure function over results: severity overrides, disabled rules'
leftovers, controller dedup and exemptions (configured, annotated, stored).

`apply_config` is what the offline scan (`Engine.scan`) and the pipeline's finalize step
(`workers.engine.EngineHandle`) both call. It needs no manifests: per object only the facts
configuration reads (`ObjectFacts`: labels and the exemption annotation) and the keys of
objects reported on their controller instead (`suppressed`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from contracts.findings import ExemptionDict
from rules.config import EXEMPT_ANNOTATION, Exemption, ScanConfig, annotation_exemptions
from rules.model import Result

_NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ObjectFacts:
    """What configuration reads from one object: its labels and `k8s-monitor.io/exempt`."""

    labels: Mapping[str, str] = field(default_factory=lambda: _NO_LABELS)
    exempt: str | None = None

    @classmethod
    def of(
        cls, labels: Mapping[str, Any] | None, annotations: Mapping[str, Any] | None
    ) -> ObjectFacts:
        exempt = (annotations or {}).get(EXEMPT_ANNOTATION)
        return cls(
            labels=MappingProxyType({str(k): str(v) for k, v in (labels or {}).items()}),
            exempt=exempt if isinstance(exempt, str) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The cached form (rule_result_cache's cluster state), read back by `from_dict`."""
        return {
            "labels": dict(self.labels),
            "annotations": {EXEMPT_ANNOTATION: self.exempt} if self.exempt else {},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectFacts:
        return cls.of(data.get("labels"), data.get("annotations"))


_ANNOTATION_EXEMPTION: ExemptionDict = {
    "source": "annotation",
    "index": None,
    "reason": "object annotation k8s-monitor.io/exempt",
    "owner": "",
    "expires": None,
    "status": "active",
}


def exemption_for(
    result: Result,
    *,
    exemptions: Sequence[Exemption],
    facts: ObjectFacts | None,
    cluster: str | None,
    allow_annotations: bool,
    now: dt.datetime,
) -> ExemptionDict | None:
    """The exemption that covers one result: the first active configured one, else the
    object's annotation (when allowed), else the first active stored one; failing those, the
    first expired match (status `expired`: the finding stays open)."""
    labels = facts.labels if facts is not None else None
    res = result.resource
    expired: Exemption | None = None
    annotated = False
    if allow_annotations and facts is not None:
        listed = annotation_exemptions({EXEMPT_ANNOTATION: facts.exempt} if facts.exempt else {})
        annotated = "*" in listed or result.rule_id in listed
    for exemption in exemptions:
        if annotated and exemption.source != "config":
            break  # the annotation comes after configured, before stored exemptions
        if not exemption.matches(
            rule_id=result.rule_id,
            kind=res.kind,
            namespace=res.namespace,
            name=res.name,
            labels=labels,
            container=result.container,
            cluster=cluster,
        ):
            continue
        if exemption.is_expired(now):
            expired = expired or exemption
            continue
        return exemption.record(status="active")
    if annotated:
        return dict(_ANNOTATION_EXEMPTION)  # type: ignore[return-value]
    return expired.record(status="expired") if expired is not None else None


def apply_config(
    results: Iterable[Result],
    *,
    config: ScanConfig,
    facts: Mapping[str, ObjectFacts],
    cluster: str | None,
    now: dt.datetime,
    suppressed: Set[str] = frozenset(),
    stored: Sequence[Exemption] = (),
) -> list[Result]:
    """Apply severity overrides, controller dedup and exemptions to evaluated results.

    `facts` maps `ResourceRef.key` to the object's facts; `suppressed` holds the keys of
    objects reported on their controller instead (their results are dropped); `stored` are
    the database's exemptions converted to the one `Exemption` type. Error results pass
    through unchanged. Exempted results keep status `exempted`; results matched only by an
    expired exemption stay open and carry it with status `expired`.
    """
    exemptions = (*config.exemptions, *stored)
    allow = config.allow_annotation_exemptions
    overrides = config.severity
    if not exemptions and not overrides and not facts:
        return _dedup_only(results, suppressed)  # the usual scan: nothing to exempt or retune
    out: list[Result] = []
    for result in results:
        status = result.status
        if status == "error":
            out.append(result)
            continue
        key = result.resource.key
        if key in suppressed:
            continue
        override = overrides.get(result.rule_id) if overrides else None
        object_facts = facts.get(key)
        # Without exemptions, only an object's annotation can exempt (most objects have none).
        exemption = (
            exemption_for(
                result,
                exemptions=exemptions,
                facts=object_facts,
                cluster=cluster,
                allow_annotations=allow,
                now=now,
            )
            if exemptions or (allow and object_facts is not None and object_facts.exempt)
            else None
        )
        if (
            exemption is None
            and status == "open"
            and result.exemption is None
            and (override is None or override is result.severity)
        ):
            out.append(result)  # nothing to change: most results of a scan
            continue
        changes: dict[str, Any] = {}
        if override is not None and override is not result.severity:
            changes["severity"] = override
        if exemption is not None:
            changes["exemption"] = exemption
            changes["status"] = "exempted" if exemption["status"] == "active" else "open"
        elif result.exemption is not None or result.status != "open":
            changes["exemption"] = None
            changes["status"] = "open"
        out.append(result._replace(**changes) if changes else result)
    return out


def reads_facts(config: ScanConfig, *, stored: Sequence[Exemption] = ()) -> bool:
    """Whether `apply_config` with this configuration and these stored exemptions reads any
    object's facts: labels only for an exemption's label selector, the annotation only when
    annotation exemptions are allowed. When it does not, `facts` may be left empty: the
    results are the same (a caller need not read them)."""
    return config.allow_annotation_exemptions or any(
        exemption.labels is not None for exemption in (*config.exemptions, *stored)
    )


def exemptions_hold_until(
    config: ScanConfig, *, stored: Sequence[Exemption] = (), now: dt.datetime
) -> dt.datetime | None:
    """The first instant after `now` at which an exemption of this configuration or of
    `stored` expires (None: none will): `apply_config` reads `now` for that alone, so up to
    then it configures the same results the same way."""
    later = [
        exemption.expires
        for exemption in (*config.exemptions, *stored)
        if exemption.expires is not None and exemption.expires > now
    ]
    return min(later, default=None)


def _dedup_only(results: Iterable[Result], suppressed: Set[str]) -> list[Result]:
    """`apply_config` without exemptions, overrides or object facts: results of suppressed
    objects dropped, errors kept, every other result open without an exemption."""
    out: list[Result] = []
    for result in results:
        status = result.status
        if status == "error":
            out.append(result)
        elif result.resource.key in suppressed:
            continue
        elif status == "open" and result.exemption is None:
            out.append(result)
        else:
            out.append(result._replace(exemption=None, status="open"))
    return out
