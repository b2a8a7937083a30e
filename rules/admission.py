"""Pod Security Admission verdicts and the per-namespace rollout report.

`evaluate(obj, level, version)` answers what PSA answers for one pod template: the controls it
fails at a level and policy version (the catalogue rules that implement each control, run at
that version; see `rules.psa.CONTROLS`). `namespace_reports(context, ...)` judges every
namespace by its own `pod-security.kubernetes.io/*` labels: which workloads its `enforce`
level and version would refuse (they predate the label, or came in through an exemption),
which draw `warn` or `audit`, and the strictest level every workload already satisfies (the
level the namespace can be labelled with today).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.resources import ResourceRef
from rules.cluster import ClusterContext
from rules.model import Rule
from rules.psa import (
    LATEST,
    LEVEL_LABEL,
    LEVEL_ORDER,
    MODES,
    VERSION_LABEL,
    Level,
    Version,
    VersionError,
    controls_for,
    format_version,
    parse_version,
)
from rules.registry import default_rules
from rules.view import ObjectView


def _rules_by_id(rules: Iterable[Rule] | None) -> Mapping[str, Rule]:
    return {r.id: r for r in (default_rules() if rules is None else rules)}


def evaluate(
    obj: ObjectView | Mapping[str, Any],
    level: Level,
    version: Version | None = None,
    *,
    rules: Iterable[Rule] | None = None,
) -> list[str]:
    """The Pod Security controls (`pss` tags, e.g. `baseline/sysctls`) a pod-bearing object
    fails at `level` and policy `version` (None: latest); empty when PSA would admit it.
    Objects that are not pod-bearing, or not structurally valid, fail nothing."""
    manifest = obj.manifest if isinstance(obj, ObjectView) else obj
    view = ObjectView(manifest)
    if view.workload is None or view.problems:
        return []
    view.policy_version = version or LATEST
    by_id = _rules_by_id(rules)
    failed: list[str] = []
    for control in controls_for(level, version or LATEST):
        for rule_id in control.rules:
            found = by_id.get(rule_id)
            if found is not None and next(iter(found.check(view)), None) is not None:
                failed.append(control.pss)
                break
    return failed


def strictest_level(
    obj: ObjectView | Mapping[str, Any],
    version: Version | None = None,
    *,
    rules: Iterable[Rule] | None = None,
) -> Level:
    """The strictest level that admits the object at policy `version`."""
    for level in (Level.RESTRICTED, Level.BASELINE):
        if not evaluate(obj, level, version, rules=rules):
            return level
    return Level.PRIVILEGED


@dataclass(frozen=True, slots=True)
class ModeSetting:
    """One mode's labels on a namespace: the level and the pinned version (None: latest).
    `label_error` says why a label was not understood (PSA then uses restricted/latest)."""

    level: Level
    version: Version | None
    labelled: bool
    label_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level.value,
            "version": format_version(self.version),
            "labelled": self.labelled,
            "label_error": self.label_error or None,
        }


@dataclass(frozen=True, slots=True)
class WorkloadVerdict:
    """A workload and the controls it fails under one mode's level and version."""

    ref: ResourceRef
    controls: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"resource": self.ref.to_dict(), "controls": list(self.controls)}


@dataclass(slots=True)
class NamespaceReport:
    """How Pod Security Admission treats one namespace's workloads under its own labels."""

    namespace: str
    modes: dict[str, ModeSetting]
    workloads: int = 0
    refused: list[WorkloadVerdict] = field(default_factory=list)
    warned: list[WorkloadVerdict] = field(default_factory=list)
    audited: list[WorkloadVerdict] = field(default_factory=list)
    satisfies: Level = Level.RESTRICTED
    judged_at: Version = LATEST

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "modes": {mode: setting.to_dict() for mode, setting in self.modes.items()},
            "workloads": self.workloads,
            "refused": [v.to_dict() for v in self.refused],
            "warned": [v.to_dict() for v in self.warned],
            "audited": [v.to_dict() for v in self.audited],
            "satisfies": self.satisfies.value,
            "satisfies_at": format_version(self.judged_at),
        }


def mode_setting(
    labels: Mapping[str, Any], mode: str, kubernetes_version: Version | None
) -> ModeSetting:
    """A namespace's level and version for one mode. No level label: privileged (PSA's
    default). A level or version PSA cannot parse: restricted at the cluster's release, as PSA
    falls back to the most restrictive setting for a malformed label."""
    cluster = kubernetes_version or LATEST
    raw_level = labels.get(LEVEL_LABEL.format(mode=mode))
    raw_version = labels.get(VERSION_LABEL.format(mode=mode))
    if raw_level is None:
        level, labelled, error = Level.PRIVILEGED, False, ""
    else:
        try:
            level, labelled, error = Level(str(raw_level)), True, ""
        except ValueError:
            level, labelled, error = Level.RESTRICTED, True, f"unknown level {raw_level!r}"
    try:
        pinned = parse_version(raw_version)
    except VersionError as problem:
        return ModeSetting(Level.RESTRICTED, cluster, True, str(problem))
    version = min(pinned, cluster) if pinned is not None else kubernetes_version
    return ModeSetting(level, version, labelled, error)


def namespace_reports(
    context: ClusterContext,
    *,
    kubernetes_version: Version | None = None,
    rules: Iterable[Rule] | None = None,
) -> list[NamespaceReport]:
    """One report per namespace (Namespace objects and namespaces workloads live in), by name.

    Workloads are the objects findings are reported on (`ClusterContext.workloads()`): a
    Deployment's pod template stands for its ReplicaSets and Pods.
    """
    rule_list = list(default_rules() if rules is None else rules)
    labels: dict[str, Mapping[str, Any]] = {
        ns.name: ns.labels for ns in context.by_kind("Namespace") if ns.name
    }
    by_namespace: dict[str, list[ObjectView]] = defaultdict(list)
    for obj in context.workloads():
        if obj.namespace:
            by_namespace[obj.namespace].append(obj)
    reports: list[NamespaceReport] = []
    for name in sorted(set(labels) | set(by_namespace)):
        own = labels.get(name, {})
        modes = {mode: mode_setting(own, mode, kubernetes_version) for mode in MODES}
        judged_at = modes["enforce"].version or kubernetes_version or LATEST
        report = NamespaceReport(name, modes, judged_at=judged_at)
        cache: dict[tuple[int, Level, Version | None], list[str]] = {}
        for obj in by_namespace.get(name, ()):
            report.workloads += 1
            for mode, out in (
                ("enforce", report.refused),
                ("warn", report.warned),
                ("audit", report.audited),
            ):
                setting = modes[mode]
                if setting.level is Level.PRIVILEGED:
                    continue
                key = (id(obj), setting.level, setting.version)
                if key not in cache:
                    cache[key] = evaluate(obj, setting.level, setting.version, rules=rule_list)
                if cache[key]:
                    out.append(WorkloadVerdict(obj.ref, tuple(cache[key])))
            level = strictest_level(obj, judged_at, rules=rule_list)
            if LEVEL_ORDER.index(level) < LEVEL_ORDER.index(report.satisfies):
                report.satisfies = level
        reports.append(report)
    return reports
