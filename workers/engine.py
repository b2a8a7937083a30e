"""The rules engine as the pipeline sees it: evaluate, serialise results for the cache, exempt.

Results are cached per manifest body *before* exemptions (exemptions can be scoped to one
cluster while a body can appear in many), so exemptions are applied when a scan is finalized.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from contracts.resources import ResourceRef


class RuleEngine(Protocol):
    """What the pipeline needs from `rules`: see docs/rules-authoring.md."""

    @property
    def catalogue_version(self) -> str: ...

    def evaluate_object(self, manifest: Mapping[str, Any]) -> Sequence[Any]: ...

    def evaluate_cluster(self, manifests: Sequence[Mapping[str, Any]]) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class EngineHandle:
    """A loaded engine plus the exemption step bound to the same configuration."""

    engine: Any

    @property
    def catalogue_version(self) -> str:
        return str(self.engine.catalogue_version)

    def evaluate_object(self, manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [result_record(r) for r in self.engine.evaluate_object(manifest)]

    def evaluate_cluster(self, manifests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [result_record(r) for r in self.engine.evaluate_cluster(manifests)]

    def exempt(
        self, records: Sequence[dict[str, Any]], *, cluster_id: str,
        labels: Mapping[str, Mapping[str, str]], now: datetime,
    ) -> list[dict[str, Any]]:
        """Apply the configuration's exemptions; returns records with status/exemption set."""
        apply = getattr(self.engine, "apply_exemptions", None)
        if apply is None:
            return list(records)
        return list(apply(records, cluster_id=cluster_id, labels=labels, now=now))


def result_record(result: Any) -> dict[str, Any]:
    """A rules Result as the plain JSON record stored in rule_result_cache."""
    if isinstance(result, Mapping):
        return dict(result)
    resource: ResourceRef = result.resource
    return {
        "rule_id": result.rule_id,
        "title": result.title,
        "severity": str(getattr(result.severity, "value", result.severity)),
        "category": result.category,
        "cis": list(result.cis),
        "pss": list(result.pss),
        "resource": resource.to_dict(),
        "container": result.container,
        "path": result.path,
        "message": result.message,
        "status": "error" if result.status == "error" else "open",
    }


def load_engine(rules_config_path: Path | None) -> EngineHandle:
    """Build the rules engine with the operator's configuration file (if any)."""
    from rules import build_engine  # noqa: PLC0415 - the catalogue is heavy; load on first use

    return EngineHandle(build_engine(config_path=rules_config_path))


def records_by_ref(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(ResourceRef.from_dict(record["resource"]).key, []).append(record)
    return grouped
