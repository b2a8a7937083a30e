"""The rules engine as the pipeline sees it: evaluate, serialise results for the cache, exempt.

Object-rule results are cached per manifest body *before* configuration is applied (exemptions
can be scoped to one cluster while a body can appear in many). The cluster step, which sees the
whole cluster anyway, also records what configuration needs later without reloading bodies: the
keys of controller-owned objects (reported on their controller instead) and each object's
labels and exemption annotation. Finalize then applies the configuration to cached records.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contracts.resources import ResourceRef
from contracts.severity import Severity
from rules import ClusterContext, Engine, Result, ScanConfig
from rules.cluster import suppressed_by_controller
from rules.config import EXEMPT_ANNOTATION


def result_record(result: Result) -> dict[str, Any]:
    """A rules Result as the plain JSON record stored in rule_result_cache."""
    return {
        "rule_id": result.rule_id,
        "title": result.title,
        "severity": result.severity.value,
        "category": result.category,
        "cis": list(result.cis),
        "pss": list(result.pss),
        "resource": result.resource.to_dict(),
        "container": result.container,
        "path": result.path,
        "message": result.message,
        "status": result.status,
        "exemption": dict(result.exemption) if result.exemption else None,
    }


# What every result of a rule shares (its metadata): left out of cached records, put back by
# EngineHandle.hydrate. It is the same for the whole catalogue version the cache is keyed by.
RULE_FIELDS = ("title", "category", "cis", "pss")


def cached_record(result: Result) -> dict[str, Any]:
    """A result as rule_result_cache stores it: without the rule's own metadata."""
    record = result_record(result)
    for name in RULE_FIELDS:
        del record[name]
    if record["exemption"] is None:
        del record["exemption"]
    return record


def record_result(record: Mapping[str, Any]) -> Result:
    return Result(
        record["rule_id"],
        record.get("title", ""),
        Severity.parse(record["severity"]),
        record.get("category", ""),
        tuple(record.get("cis") or ()),
        tuple(record.get("pss") or ()),
        ResourceRef.from_dict(record["resource"]),
        record.get("container"),
        record.get("path") or "",
        record.get("message", ""),
        record.get("status", "open"),
        None,
        None,
    )


class EngineHandle:
    """A rules Engine plus the pipeline's serialisation and configuration steps."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Controller dedup is applied from the cluster step's record of owned objects, so the
        # engine that applies configuration at finalize never needs whole manifests.
        self._apply = Engine(
            engine.all_rules, dataclasses.replace(engine.config, dedup_controllers=False)
        )
        self._cluster_rule_ids = frozenset(r.meta.id for r in engine.cluster_rules)
        self._rule_fields = {
            r.meta.id: {
                "title": r.meta.title,
                "category": r.meta.category,
                "cis": list(r.meta.cis),
                "pss": list(r.meta.pss),
            }
            for r in engine.all_rules
        }

    @property
    def catalogue_version(self) -> str:
        return str(self.engine.catalogue_version)

    @property
    def cluster_rule_ids(self) -> frozenset[str]:
        """Ids of the cross-resource rules (their findings come from the cluster step)."""
        return self._cluster_rule_ids

    @property
    def config_exemptions(self) -> tuple[Any, ...]:
        return tuple(self.engine.config.exemptions)

    def hydrate(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A cached record with its rule's metadata (title, category, CIS and PSS ids)."""
        return {**self._rule_fields.get(record.get("rule_id", ""), {}), **record}

    def evaluate_object(self, manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Object-rule results as cached records (see `hydrate`)."""
        return [cached_record(r) for r in self.engine.evaluate_object(manifest)]

    def evaluate_cluster(self, manifests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Cluster-rule results plus what finalize needs: owned objects, labels, annotations."""
        context = ClusterContext(manifests)
        suppressed = (
            sorted(suppressed_by_controller(context))
            if self.engine.config.dedup_controllers
            else []
        )
        meta: dict[str, dict[str, Any]] = {}
        for obj in context.objects:
            labels = dict(obj.labels)
            exempt = (obj.annotations or {}).get(EXEMPT_ANNOTATION)
            if labels or exempt:
                meta[obj.ref.key] = {
                    "labels": labels,
                    "annotations": {EXEMPT_ANNOTATION: exempt} if exempt else {},
                }
        return {
            "results": [cached_record(r) for r in self.engine.evaluate_cluster(context)],
            "suppressed": suppressed,
            "meta": meta,
        }

    def apply_config(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        cluster_id: str,
        meta: Mapping[str, Mapping[str, Any]],
        now: dt.datetime,
    ) -> list[dict[str, Any]]:
        """Severity overrides and the configuration's exemptions (status/exemption set)."""
        results_in = [record_result(r) for r in records]
        objects = {}
        for result in results_in:
            key = result.resource.key
            if key not in objects and key in meta:
                found = meta[key]
                objects[key] = {
                    "metadata": {
                        "labels": dict(found.get("labels") or {}),
                        "annotations": dict(found.get("annotations") or {}),
                    }
                }
        results = self._apply.apply_config(results_in, cluster=cluster_id, objects=objects, now=now)
        return [result_record(r) for r in results]


def load_engine(rules_config_path: Path | None) -> EngineHandle:
    """Build the rules engine with the operator's configuration file (if any)."""
    config = ScanConfig()
    if rules_config_path is not None:
        config = ScanConfig.from_yaml(rules_config_path.read_text(encoding="utf-8"))
    return EngineHandle(Engine.from_config(config))
