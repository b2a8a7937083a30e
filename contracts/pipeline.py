"""What the scan steps hand to the finalize step: typed shard and cluster-step outcomes.

They travel as JSON (a Celery chord's results, or the in-process runner's list), so each has
`to_dict()` and `step_outcome()` reads either back by its `kind`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardOutcome:
    """One shard's object-rule evaluation: results went to the rule-result cache."""

    scan_id: int | None = None
    shard: int
    objects: int
    evaluated: int
    cache_hits: int
    errors: tuple[Mapping[str, Any], ...] = ()
    kind: Literal["shard"] = field(default="shard", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scan_id": self.scan_id,
            "shard": self.shard,
            "objects": self.objects,
            "evaluated": self.evaluated,
            "cache_hits": self.cache_hits,
            "errors": [dict(e) for e in self.errors],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterStepOutcome:
    """The cluster step: the cache key of its stored state (None when it failed)."""

    scan_id: int | None = None
    cluster_key: str | None
    cached: bool
    errors: tuple[Mapping[str, Any], ...] = ()
    kind: Literal["cluster"] = field(default="cluster", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scan_id": self.scan_id,
            "cluster_key": self.cluster_key,
            "cached": self.cached,
            "errors": [dict(e) for e in self.errors],
        }


StepOutcome = ShardOutcome | ClusterStepOutcome


def step_outcome(data: Mapping[str, Any] | StepOutcome) -> StepOutcome:
    """A step's outcome from its JSON form (or as it is)."""
    if isinstance(data, ShardOutcome | ClusterStepOutcome):
        return data
    errors = tuple(dict(e) for e in data.get("errors") or ())
    scan_id = data.get("scan_id")
    if data.get("kind") == "cluster":
        return ClusterStepOutcome(
            scan_id=scan_id,
            cluster_key=data.get("cluster_key"),
            cached=bool(data.get("cached")),
            errors=errors,
        )
    return ShardOutcome(
        scan_id=scan_id,
        shard=int(data.get("shard", 0)),
        objects=int(data.get("objects", 0)),
        evaluated=int(data.get("evaluated", 0)),
        cache_hits=int(data.get("cache_hits", 0)),
        errors=errors,
    )
