"""Finding filters of the admin pages, read from and written back to the URL.

One `FindingFilter` is what the cluster, rule and fleet-findings pages (and the fleet page's
count links) share: severity at or above, category, rule, namespace, kind, status, team,
cluster label and page. `from_args` accepts only known values (anything else is a 400 with the
field named), `query` renders the same filter as URL parameters, so every list has a stable
deep link, and `conditions` turns it into SQL conditions on `findings`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, select

from contracts.severity import Severity
from contracts.states import FindingStatus
from store.models import Cluster, Finding

PAGE_SIZE = 100
SEVERITIES = tuple(s.value for s in Severity)  # most severe first
STATUS_CHOICES: dict[str, tuple[str, ...]] = {
    "active": FindingStatus.active(),
    "open": FindingStatus.unresolved(),
    **{s.value: (s,) for s in (FindingStatus.NEW, FindingStatus.EXEMPTED, FindingStatus.RESOLVED)},
    "all": tuple(FindingStatus),
}
DEFAULT_STATUS = "active"
MAX_TEXT = 253
_LABEL = re.compile(r"^[A-Za-z0-9._/-]{1,253}=[A-Za-z0-9._-]{0,63}$")
TEXT_FIELDS = ("cluster", "category", "rule", "namespace", "kind", "team")


class FilterError(ValueError):
    """A filter value the pages do not accept (the message names the parameter)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingFilter:
    """What a findings list shows; empty strings mean "any"."""

    cluster: str = ""
    severity: str = ""
    exact: bool = False  # only that severity, not "at or above"
    category: str = ""
    rule: str = ""
    namespace: str = ""
    kind: str = ""
    status: str = DEFAULT_STATUS
    team: str = ""
    label: str = ""
    exemption: str = ""  # findings an exemption covers (its id)
    page: int = 1
    fixed: tuple[str, ...] = ()  # fields the page's own URL names (left out of `query`)

    @classmethod
    def from_args(cls, args: Mapping[str, str], **fixed: str) -> FindingFilter:
        """The filter named by URL parameters; `fixed` values (a page's own cluster or rule)
        win over the parameters."""
        values: dict[str, Any] = {}
        for name in TEXT_FIELDS:
            raw = (fixed.get(name) or args.get(name) or "").strip()
            if len(raw) > MAX_TEXT:
                raise FilterError(f"{name}: at most {MAX_TEXT} characters")
            values[name] = raw
        severity = (args.get("severity") or "").strip().lower()
        if severity and severity not in SEVERITIES:
            raise FilterError(f"severity: one of {', '.join(SEVERITIES)}")
        status = (args.get("status") or DEFAULT_STATUS).strip().lower()
        if status not in STATUS_CHOICES:
            raise FilterError(f"status: one of {', '.join(STATUS_CHOICES)}")
        exemption = (args.get("exemption") or "").strip()
        if exemption and not (exemption.isdigit() and len(exemption) < 19):
            raise FilterError("exemption: an exemption number")
        label = (args.get("label") or "").strip()
        if label and not _LABEL.match(label):
            raise FilterError("label: give key=value, e.g. env=prod")
        return cls(
            **values,
            severity=severity,
            exact=bool(severity) and args.get("exact", "") in ("1", "on", "true"),
            status=status,
            label=label,
            exemption=exemption,
            page=page_number(args),
            fixed=tuple(sorted(k for k, v in fixed.items() if v)),
        )

    @property
    def severities(self) -> tuple[str, ...]:
        """The severities the filter keeps (at or above the chosen one)."""
        if not self.severity:
            return SEVERITIES
        if self.exact:
            return (self.severity,)
        return SEVERITIES[: SEVERITIES.index(self.severity) + 1]

    @property
    def statuses(self) -> tuple[str, ...]:
        return STATUS_CHOICES[self.status]

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    @property
    def is_narrowed(self) -> bool:
        """True when anything beyond the defaults is chosen."""
        return self.query(page=None) != {}

    def query(self, *, page: int | None = 0, **changes: Any) -> dict[str, str]:
        """URL parameters of this filter (defaults left out), with `changes` applied;
        `page=None` drops the page, `page=0` keeps the current one."""
        chosen = replace(self, **changes) if changes else self
        params = {
            name: getattr(chosen, name)
            for name in (*TEXT_FIELDS, "severity", "label", "exemption")
            if getattr(chosen, name) and name not in chosen.fixed
        }
        if chosen.exact and chosen.severity:
            params["exact"] = "1"
        if chosen.status != DEFAULT_STATUS:
            params["status"] = chosen.status
        number = chosen.page if page == 0 else page
        if number and number > 1:
            params["page"] = str(number)
        return params

    def conditions(self) -> list[ColumnElement[bool]]:
        """SQL conditions on `findings` (plus a cluster subquery for team and label)."""
        where: list[ColumnElement[bool]] = [Finding.status.in_(self.statuses)]
        if self.severity:
            where.append(Finding.severity.in_(self.severities))
        if self.cluster:
            where.append(Finding.cluster_id == self.cluster)
        if self.rule:
            where.append(Finding.rule_id == self.rule)
        if self.namespace:
            where.append(Finding.namespace == self.namespace)
        if self.kind:
            where.append(Finding.kind == self.kind)
        if self.exemption:
            where.append(Finding.exemption_id == int(self.exemption))
        if self.category:
            where.append(Finding.details["category"].as_string() == self.category)
        if self.team or self.label:
            clusters = select(Cluster.id)
            if self.team:
                clusters = clusters.where(Cluster.team == self.team)
            if self.label:
                key, _, value = self.label.partition("=")
                clusters = clusters.where(Cluster.labels[key].as_string() == value)
            where.append(Finding.cluster_id.in_(clusters))
        return where


def page_number(args: Mapping[str, str]) -> int:
    """The `page` URL parameter (1 when absent)."""
    raw = (args.get("page") or "1").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise FilterError("page: a page number from 1")
    return int(raw)
