"""The rules engine as the pipeline sees it: evaluate, serialise results for the cache, exempt.

Object-rule results are cached per manifest body *before* configuration is applied (exemptions
can be scoped to one cluster while a body can appear in many). The cluster step, which sees the
whole cluster anyway, also records what configuration needs later without reloading bodies: the
keys of controller-owned objects (reported on their controller instead) and each object's facts
(`rules.configure.ObjectFacts`: labels and exemption annotation). Finalize then calls the same
pure configuration function as the offline scan (`rules.configure.apply_config`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contracts.hashing import canonical_json
from contracts.resources import ResourceRef
from contracts.severity import Severity
from rules import ClusterContext, Engine, Exemption, Result, ScanConfig
from rules.cluster import LabelReads, suppressed_by_controller
from rules.config import EXEMPT_ANNOTATION
from rules.configure import ObjectFacts, apply_config
from rules.psa import Version, assign_version
from rules.view import ObjectView

_new_result = tuple.__new__  # a Result from its fields' tuple (as `rules.engine` makes them)
_UNDESCRIBED: tuple[str, str, tuple[str, ...], tuple[str, ...]] = ("", "", (), ())


def cached_record(result: Result, resource: dict[str, Any] | None = None) -> dict[str, Any]:
    """A result as rule_result_cache stores it: plain JSON, without the rule's own metadata
    (title, category, CIS and PSS ids: the same for the whole catalogue version the cache is
    keyed by; `EngineHandle.result` puts them back) and before configuration. `resource`:
    the result's `resource.to_dict()`, when the caller has it (one per object)."""
    return cached_records((result,), resource)[0]


# A severity's cached text, looked up rather than read through the enum's descriptor.
_SEVERITY_TEXT: dict[Severity, str] = {severity: severity.value for severity in Severity}


def cached_records(
    results: Sequence[Result], resource: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """`cached_record` of each result, built in one pass (a scan makes one per result of
    every object). `resource`: the `resource.to_dict()` of the one object they all name."""
    text = _SEVERITY_TEXT
    return [
        {
            "rule_id": rule_id,
            "severity": text[severity],
            "resource": ref.to_dict() if resource is None else resource,
            "container": container,
            "path": path,
            "message": message,
            "status": status,
        }
        for (
            rule_id,
            _title,
            severity,
            _category,
            _cis,
            _pss,
            ref,
            container,
            path,
            message,
            status,
            _exemption,
            _location,
        ) in results
    ]


def _cached_facts(context: ClusterContext) -> dict[str, dict[str, Any]]:
    """The cached form (`ObjectFacts.to_dict`) of `rules.engine.object_facts(context)`, of
    the objects with labels or an exemption annotation, written directly (a cluster step
    makes it for every object of the cluster)."""
    meta: dict[str, dict[str, Any]] = {}
    for obj in context.objects:
        facts = object_meta(obj)
        if facts is not None:
            meta[obj.ref.key] = facts
    return meta


def object_meta(obj: ObjectView) -> dict[str, Any] | None:
    """One object's entry of `_cached_facts` (None: it has none)."""
    labels, annotations = obj.labels, obj.annotations
    if not (labels or annotations):
        return None
    exempt = annotations.get(EXEMPT_ANNOTATION) if annotations else None
    if not isinstance(exempt, str):
        exempt = None
    if labels or exempt:
        return {
            "labels": {str(k): str(v) for k, v in labels.items()},
            "annotations": {EXEMPT_ANNOTATION: exempt} if exempt else {},
        }
    return None


class EngineHandle:
    """A rules Engine plus the pipeline's serialisation and configuration steps.

    `at_versions()` gives the handle that judges one cluster as the release it runs (its
    agent's telemetry) and its namespaces' Pod Security `enforce-version` pins, as the offline
    `k8smon scan --kubernetes-version` does; its `catalogue_version` carries a suffix naming
    them, so results cached for one release or set of pins are never reused for another.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        kubernetes_version: Version | None = None,
        pins: Mapping[str, Version | None] | None = None,
    ) -> None:
        self.engine = engine
        self._cluster_rule_ids = frozenset(r.meta.id for r in engine.cluster_rules)
        self._fleet_rule_ids = frozenset(r.meta.id for r in engine.fleet_rules)
        # What `result` puts back of each rule's metadata: title, category, CIS and PSS ids.
        self._described = {
            r.meta.id: (r.meta.title, r.meta.category, r.meta.cis, r.meta.pss)
            for r in engine.all_rules
        }
        self.kubernetes_version = kubernetes_version
        self._pins = {ns: v for ns, v in (pins or {}).items() if v is not None}
        self._suffix = ""
        if kubernetes_version is not None or self._pins:
            text = canonical_json(
                {"release": kubernetes_version, "pins": sorted(self._pins.items())}
            )
            self._suffix = "@" + hashlib.sha256(text).hexdigest()[:16]

    def at_versions(
        self, kubernetes_version: Version | None, pins: Mapping[str, Version | None]
    ) -> EngineHandle:
        """This engine judging a cluster of `kubernetes_version` (None: the newest release
        known) whose namespaces pin `pins` (`rules.psa.namespace_pins`)."""
        handle = EngineHandle(self.engine, kubernetes_version=kubernetes_version, pins=pins)
        return self if not handle._suffix else handle

    @property
    def catalogue_version(self) -> str:
        return str(self.engine.catalogue_version) + self._suffix

    def _view(self, manifest: Mapping[str, Any], *, valid: bool = False) -> ObjectView:
        view = ObjectView(manifest)
        if self._suffix:
            assign_version(view, self.kubernetes_version, self._pins)
        if valid:
            view.known_valid()
        return view

    @property
    def cluster_rule_ids(self) -> frozenset[str]:
        """Ids of the cross-resource rules (their findings come from the cluster step)."""
        return self._cluster_rule_ids

    @property
    def fleet_rule_ids(self) -> frozenset[str]:
        """Ids of the fleet rules (their findings come from `workers.services.fleet`)."""
        return self._fleet_rule_ids

    @property
    def config_exemptions(self) -> tuple[Any, ...]:
        return tuple(self.engine.config.exemptions)

    def result(self, record: Mapping[str, Any]) -> Result:
        """A cached record as the rules' `Result`, with its rule's metadata put back."""
        rule_id = record["rule_id"]
        title, category, cis, pss = self._described.get(rule_id, _UNDESCRIBED)
        return _new_result(
            Result,
            (
                rule_id,
                title,
                Severity.parse(record["severity"]),
                category,
                cis,
                pss,
                ResourceRef.from_dict(record["resource"]),
                record.get("container"),
                record.get("path") or "",
                record.get("message", ""),
                record.get("status", "open"),
                None,
                None,
            ),
        )

    def view(self, manifest: Mapping[str, Any], *, valid: bool = False) -> ObjectView:
        """A manifest's view as this handle judges it (release and pins assigned): what
        `evaluate_view` and `evaluate_cluster` take, so that a step evaluating both object
        and cluster rules builds (and schema-checks) each view once. `valid`: the body is
        known to have no structural problems at this handle's release (an earlier step of
        the same catalogue version checked it), so it is not schema-checked again."""
        return self._view(manifest, valid=valid)

    def evaluate_object(self, manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Object-rule results as cached records (see `cached_record`)."""
        return self.evaluate_view(self._view(manifest))

    def evaluate_view(self, view: ObjectView) -> list[dict[str, Any]]:
        """`evaluate_object` of a view from `views`."""
        found = self.engine.evaluate_object(view)
        # Every result of the object names it.
        return cached_records(found, view.ref.to_dict()) if found else []

    def evaluate_view_kept(self, view: ObjectView) -> tuple[list[dict[str, Any]], list[Result]]:
        """`evaluate_view`'s records, and the results `result()` makes of them (what a step
        reading them back from the cache gets) without that round trip: a scan that
        evaluates and finalizes in one process hands them over."""
        found = self.engine.evaluate_object(view)
        if not found:
            return [], []
        # Every result of the object names it (`view.ref`), whose fields come back as they are
        # from the cached record (`ResourceRef.from_dict` of its `to_dict()`: strings, the
        # namespace already normalised), so the results are those `result()` would make,
        # but for a path that is not a string.
        ref = view.ref
        records = cached_records(found, ref.to_dict())
        if all(type(r.path) is str for r in found):
            return records, found  # the engine's results are those already
        return records, [r._replace(path=r.path or "") for r in found]

    def evaluate_cluster(
        self,
        manifests: Sequence[Mapping[str, Any]] | Sequence[ObjectView],
        *,
        record_label_reads: bool = False,
    ) -> dict[str, Any]:
        """Cluster-rule results plus what finalize needs: owned objects, labels, annotations
        (of manifests, or of views from `views`). `record_label_reads`: also which labels
        the rules read (`rules.cluster.LabelReads`), under `label_reads`."""
        reads = LabelReads() if record_label_reads else None
        context = ClusterContext(
            [
                m if isinstance(m, ObjectView) else self._view(m)
                for m in manifests
                if isinstance(m, ObjectView | Mapping)
            ],
            dedup_controllers=self.engine.config.dedup_controllers,
            label_reads=reads,
        )
        try:
            results = cached_records(self.engine.evaluate_cluster(context))
        finally:
            record = reads.restore() if reads is not None else None
        suppressed = (
            sorted(suppressed_by_controller(context))
            if self.engine.config.dedup_controllers
            else []
        )
        meta = _cached_facts(context)
        state: dict[str, Any] = {"results": results, "suppressed": suppressed, "meta": meta}
        if record is not None:
            state["label_reads"] = record
        return state

    def apply_config(
        self,
        results: Sequence[Result],
        *,
        cluster_id: str,
        facts: Mapping[str, ObjectFacts],
        suppressed: frozenset[str] = frozenset(),
        stored: Sequence[Exemption] = (),
        now: dt.datetime,
    ) -> list[Result]:
        """The configuration (and the database's exemptions, `stored`) applied to results:
        `rules.configure.apply_config`, the offline scan's function."""
        return apply_config(
            results,
            config=self.engine.config,
            facts=facts,
            cluster=cluster_id,
            now=now,
            suppressed=suppressed,
            stored=stored,
        )


def load_engine(rules_config_path: Path | None) -> EngineHandle:
    """Build the rules engine with the operator's configuration file (if any)."""
    return EngineHandle(Engine.from_config(ScanConfig.from_file(rules_config_path)))
