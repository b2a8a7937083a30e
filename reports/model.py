"""A cluster's report as plain data: per rule, each violation with kind, namespace, name,
container and path; plus what is new and what was resolved by the latest scan."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.severity import Severity

SEVERITY_ORDER = tuple(Severity)  # most severe first


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def severity_rank(severity: str) -> int:
    try:
        return SEVERITY_ORDER.index(severity)
    except ValueError:
        return len(SEVERITY_ORDER)


@dataclass(frozen=True, slots=True)
class ViolationLine:
    api_version: str
    kind: str
    namespace: str | None
    name: str
    container: str | None
    path: str | None
    message: str
    status: str
    first_seen: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def where(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        text = f"{self.kind} {ns}{self.name}"
        if self.container:
            text += f" [container {self.container}]"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "container": self.container,
            "path": self.path,
            "message": self.message,
            "status": self.status,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViolationLine:
        return cls(
            api_version=data["apiVersion"],
            kind=data["kind"],
            namespace=data["namespace"],
            name=data["name"],
            container=data["container"],
            path=data["path"],
            message=data["message"],
            status=data["status"],
            first_seen=_when(data["first_seen"]),
            resolved_at=_when(data["resolved_at"]),
        )


@dataclass(frozen=True, slots=True)
class RuleSection:
    rule_id: str
    title: str
    severity: str
    cis: tuple[str, ...]
    pss: tuple[str, ...]
    violations: tuple[ViolationLine, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": self.severity,
            "cis": list(self.cis),
            "pss": list(self.pss),
            "violations": [v.to_dict() for v in self.violations],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleSection:
        return cls(
            rule_id=data["rule_id"],
            title=data["title"],
            severity=data["severity"],
            cis=tuple(data["cis"]),
            pss=tuple(data["pss"]),
            violations=tuple(ViolationLine.from_dict(v) for v in data["violations"]),
        )


@dataclass(frozen=True, slots=True)
class ClusterReport:
    """Everything a channel needs to hear about one cluster after one scan."""

    cluster_id: str
    display_name: str
    team: str | None
    scan_id: int | None
    scanned_at: datetime | None
    admin_url: str
    counts: dict[str, int] = field(default_factory=dict)
    rules: tuple[RuleSection, ...] = ()  # open (new + still open) findings, per rule
    exempted: tuple[RuleSection, ...] = ()
    new: tuple[RuleSection, ...] = ()  # first seen in this scan
    resolved: tuple[RuleSection, ...] = ()  # resolved by this scan

    @property
    def open_count(self) -> int:
        return sum(len(s.violations) for s in self.rules)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": {"id": self.cluster_id, "name": self.display_name, "team": self.team},
            "scan": {
                "id": self.scan_id,
                "finished_at": self.scanned_at.isoformat() if self.scanned_at else None,
                "counts": dict(self.counts),
            },
            "admin_url": self.admin_url,
            "new": [s.to_dict() for s in self.new],
            "resolved": [s.to_dict() for s in self.resolved],
            "open": [s.to_dict() for s in self.rules],
            "exempted": [s.to_dict() for s in self.exempted],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterReport:
        """The report `to_dict` gave (stored with a delivery, so it is sent as it was)."""

        def sections(key: str) -> tuple[RuleSection, ...]:
            return tuple(RuleSection.from_dict(s) for s in data[key])

        return cls(
            cluster_id=data["cluster"]["id"],
            display_name=data["cluster"]["name"],
            team=data["cluster"]["team"],
            scan_id=data["scan"]["id"],
            scanned_at=_when(data["scan"]["finished_at"]),
            admin_url=data["admin_url"],
            counts=dict(data["scan"]["counts"]),
            rules=sections("open"),
            exempted=sections("exempted"),
            new=sections("new"),
            resolved=sections("resolved"),
        )
