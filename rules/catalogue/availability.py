"""Autoscaling and availability rules (KM-613..KM-618): HorizontalPodAutoscalers and KEDA
ScaledObjects that cannot act, PodDisruptionBudgets that block or guard nothing, and
replicated workloads that a single node or zone can take down.

All but KM-613 are cluster rules: they join an autoscaler or budget with the workloads of
the same snapshot (the whole cluster on the server; the scanned files offline).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from contracts.severity import Severity
from rules.catalogue.hygiene import (
    PodMatcher,
    _missing_in,
    autoscaler_minimums,
    min_replicas,
    namespace_defaults,
    pdb_matcher,
)
from rules.cluster import ClusterContext, PodTemplate
from rules.model import Violation, rule
from rules.view import ObjectView, is_map

CATEGORY = "hygiene"
HPA_DOC = "https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/"
KEDA_DOC = "https://keda.sh/docs/latest/reference/scaledobject-spec/"
PDB_DOC = "https://kubernetes.io/docs/tasks/run-application/configure-pdb/"
SPREAD_DOC = "https://kubernetes.io/docs/concepts/scheduling-eviction/topology-spread-constraints/"
HPA = "HorizontalPodAutoscaler"
SCALED_OBJECT = "ScaledObject"
SCALER_KINDS = frozenset({HPA, SCALED_OBJECT})
# Built-in kinds with a scale subresource: always collected, so a missing one is really missing.
SCALABLE_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})
REPLICATED_KINDS = ("Deployment", "StatefulSet")

_EMPTY: Mapping[str, Any] = {}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if is_map(value) else _EMPTY


def _count(value: Any) -> int | None:
    """An integer field's value (None: absent or not an integer)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _target(scaler: ObjectView) -> tuple[str, str]:
    """(kind, name) of an autoscaler's `scaleTargetRef` (KEDA defaults the kind to
    Deployment)."""
    ref = _mapping(scaler.spec.get("scaleTargetRef"))
    default = "Deployment" if scaler.kind == SCALED_OBJECT else ""
    return str(ref.get("kind") or default), str(ref.get("name") or "")


# -- KM-613 --------------------------------------------------------------------------------
@rule(
    id="KM-613",
    title="Autoscaler cannot scale (minimum not below maximum)",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    references=(HPA_DOC, KEDA_DOC),
    remediation="Set `maxReplicas` above `minReplicas` (or drop the autoscaler and set "
    "`spec.replicas` on the workload).",
    kinds=SCALER_KINDS,
)
def scaler_bounds(obj: ObjectView) -> Iterator[Violation]:
    """Flags HorizontalPodAutoscalers and KEDA ScaledObjects whose minimum is not below their
    maximum.

    ## What it does
    Compares `minReplicas` (default 1) with `maxReplicas` of a HorizontalPodAutoscaler, and
    `minReplicaCount` (default 0) with `maxReplicaCount` (default 100) of a KEDA
    ScaledObject. A minimum above the maximum is reported as invalid; a minimum equal to the
    maximum as an autoscaler that can never change the replica count.

    ## Why is this bad?
    An autoscaler pinned to one count does not scale: load peaks are not absorbed and the
    workload's `spec.replicas` is overridden for nothing. A minimum above the maximum is a
    typo the API server may accept (v1) or the controller rejects at run time.

    ## Example
    ```yaml
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    spec:
      minReplicas: 5
      maxReplicas: 3
    ```

    ## Use instead
    ```yaml
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    spec:
      minReplicas: 3
      maxReplicas: 10
    ```

    ## References
    - https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
    - https://keda.sh/docs/latest/reference/scaledobject-spec/
    """
    if obj.kind == HPA:
        min_field, max_field, min_default, max_default = "minReplicas", "maxReplicas", 1, None
    else:
        min_field, max_field, min_default, max_default = (
            "minReplicaCount",
            "maxReplicaCount",
            0,
            100,
        )
    low = _count(obj.spec.get(min_field))
    high = _count(obj.spec.get(max_field))
    low = min_default if low is None else low
    high = max_default if high is None else high
    if high is None:
        return  # no maximum: a structural problem the schema check reports
    if low > high:
        yield Violation(
            f"{obj.kind} {obj.name} has {min_field} {low} above {max_field} {high}: the "
            "bounds are contradictory",
            path=f"spec.{min_field}",
        )
    elif low == high:
        yield Violation(
            f"{obj.kind} {obj.name} has {min_field} equal to {max_field} ({low}): it can "
            "never change the replica count",
            path=f"spec.{max_field}",
        )


# -- KM-614 --------------------------------------------------------------------------------
def utilisation_metrics(scaler: ObjectView) -> Iterator[tuple[str, str, str | None]]:
    """(resource, JSON path, container or None) of every utilisation target of an autoscaler.

    autoscaling/v1: `targetCPUUtilizationPercentage` (unset: the 80 % CPU default).
    autoscaling/v2 (and betas): `Resource`/`ContainerResource` metrics whose target is
    `Utilization` (v2beta1: `targetAverageUtilization`); no metrics: the 80 % CPU default.
    KEDA: `cpu`/`memory` triggers with `metricType: Utilization` (the default).
    """
    spec = scaler.spec
    if scaler.kind == SCALED_OBJECT:
        triggers = spec.get("triggers")
        for index, trigger in enumerate(triggers if isinstance(triggers, list) else ()):
            if not is_map(trigger) or trigger.get("type") not in ("cpu", "memory"):
                continue
            metric_type = trigger.get("metricType") or _mapping(trigger.get("metadata")).get("type")
            if (metric_type or "Utilization") == "Utilization":
                container = _mapping(trigger.get("metadata")).get("containerName")
                yield (
                    str(trigger["type"]),
                    f"spec.triggers[{index}].type",
                    str(container) if container else None,
                )
        return
    if scaler.api_version == "autoscaling/v1":
        yield "cpu", "spec.targetCPUUtilizationPercentage", None
        return
    metrics = spec.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        yield "cpu", "spec.metrics", None
        return
    for index, metric in enumerate(metrics):
        if not is_map(metric):
            continue
        for field, container_key in (("resource", None), ("containerResource", "container")):
            source = _mapping(metric.get(field))
            if not source:
                continue
            target = _mapping(source.get("target"))
            utilisation = target.get("type") == "Utilization" or (
                "targetAverageUtilization" in source
            )
            if utilisation and source.get("name") in ("cpu", "memory"):
                container = source.get(container_key) if container_key else None
                yield (
                    str(source["name"]),
                    f"spec.metrics[{index}].{field}.name",
                    str(container) if container else None,
                )


@rule(
    id="KM-614",
    title="Autoscaler scales on utilisation of a resource the pods do not request",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    scope="cluster",
    references=(HPA_DOC,),
    remediation="Set `resources.requests` for the scaled resource on every container of the "
    "target (or a namespace LimitRange default), or scale on an absolute `AverageValue`.",
    kinds=SCALER_KINDS,
)
def utilisation_without_requests(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags autoscalers targeting CPU or memory utilisation of pods that request none.

    ## What it does
    For each HorizontalPodAutoscaler (autoscaling/v1 `targetCPUUtilizationPercentage`, or
    its 80 % CPU default; autoscaling/v2 `Resource` and `ContainerResource` metrics with a
    `Utilization` target) and KEDA ScaledObject (`cpu`/`memory` triggers with
    `metricType: Utilization`), finds the target workload in the snapshot and reports the
    containers that have no effective request for that resource: not set, not defaulted
    from their limit or a pod-level `resources`, and not from a namespace LimitRange.

    ## Why is this bad?
    Utilisation is usage divided by the request. Without a request it is undefined: the
    controller reports `missing request for cpu` and never scales, so the autoscaler gives
    a false sense of elasticity.

    ## Example
    ```yaml
    kind: HorizontalPodAutoscaler
    spec:
      scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
      metrics:
        - type: Resource
          resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
    # ...and Deployment web's containers set no resources.requests.cpu
    ```

    ## Use instead
    ```yaml
    containers:
      - name: web
        resources:
          requests: {cpu: 250m, memory: 256Mi}
    ```

    ## References
    - https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
    """
    defaults = namespace_defaults(cluster)
    for scaler_kind in (HPA, SCALED_OBJECT):
        for scaler in cluster.by_kind(scaler_kind):
            kind, name = _target(scaler)
            target = cluster.get(kind, scaler.namespace, name)
            if target is None or target.workload is None:
                continue  # KM-615 reports a missing target
            inherited = defaults.get(target.namespace)
            for resource, path, container in utilisation_metrics(scaler):
                covered = inherited.requests if inherited else frozenset()
                missing = [
                    c.name
                    for c, _ in _missing_in(target, "requests", (resource,), covered)
                    if not c.is_init and (container is None or c.name == container)
                ]
                if missing:
                    yield Violation(
                        f"{scaler.kind} {scaler.name} scales {target.kind} {target.name} on "
                        f"{resource} utilisation, but container(s) {', '.join(missing)} "
                        f"request no {resource}: utilisation is undefined and it never scales",
                        path=path,
                        subject=scaler,
                    )


# -- KM-615 --------------------------------------------------------------------------------
@rule(
    id="KM-615",
    title="Autoscaler targets a workload that does not exist",
    severity=Severity.LOW,
    category=CATEGORY,
    scope="cluster",
    references=(HPA_DOC, KEDA_DOC),
    remediation="Point `scaleTargetRef` at the workload's kind and name, or delete the "
    "leftover autoscaler.",
    kinds=SCALER_KINDS,
)
def missing_scale_target(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags HorizontalPodAutoscalers and KEDA ScaledObjects whose target is not there.

    ## What it does
    Looks up each autoscaler's `scaleTargetRef` (kind and name; a ScaledObject's kind
    defaults to Deployment) in the autoscaler's namespace. Targets of the built-in scalable
    kinds (Deployment, StatefulSet, ReplicaSet, ReplicationController) are reported when
    absent; targets of other kinds (an Argo Rollout, a custom resource) only when the
    snapshot holds objects of that kind, so uncollected custom resources are not reported.
    Offline, the scanned files are the whole snapshot: scan the autoscaler together with
    its target.

    ## Why is this bad?
    An autoscaler without a target does nothing: typically the workload was renamed or its
    kind changed (a Deployment became a StatefulSet), and the new one is not autoscaled.

    ## Example
    ```yaml
    kind: HorizontalPodAutoscaler
    spec:
      scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web-old}
    ```

    ## Use instead
    ```yaml
    kind: HorizontalPodAutoscaler
    spec:
      scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
    ```

    ## References
    - https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
    """
    for scaler_kind in (HPA, SCALED_OBJECT):
        for scaler in cluster.by_kind(scaler_kind):
            kind, name = _target(scaler)
            if not kind or not name:
                continue  # a structural problem, not a dangling reference
            if kind not in SCALABLE_KINDS and not cluster.by_kind(kind):
                continue
            if cluster.get(kind, scaler.namespace, name) is None:
                yield Violation(
                    f"{scaler.kind} {scaler.name} targets {kind} {name}, which does not exist "
                    f"in namespace {scaler.namespace}: it scales nothing",
                    path="spec.scaleTargetRef.name",
                    subject=scaler,
                )


# -- KM-616 / KM-617 -----------------------------------------------------------------------
def _candidates(cluster: ClusterContext, pdb: ObjectView) -> Sequence[PodTemplate]:
    """The pod templates of the PDB's namespace its selector may select, in input order: with
    `matchLabels`, those that have the rarest of its labels (every one it selects has them
    all), else all of them. `pdb_matcher` still decides."""
    selector = pdb.spec.get("selector")
    match_labels = selector.get("matchLabels") if is_map(selector) else None
    if not is_map(match_labels) or not match_labels:
        return cluster.pod_templates(pdb.namespace)
    return min(
        (cluster.pod_templates(pdb.namespace, (str(k), str(v))) for k, v in match_labels.items()),
        key=len,
    )


PdbSelection = tuple[PodMatcher, Sequence[PodTemplate]]


def _selection(cluster: ClusterContext, pdb: ObjectView) -> PdbSelection:
    """The PDB's matcher and candidate templates (`pdb_matcher`, `_candidates`), worked out
    once per context for each PDB a rule asks about (KM-616 and KM-617 both do)."""
    known = cluster.derived(_selections)
    found = known.get(pdb)
    if found is None:
        found = known[pdb] = (pdb_matcher(pdb), _candidates(cluster, pdb))
    return found


def _selections(cluster: ClusterContext) -> dict[ObjectView, PdbSelection]:
    """The context's `_selection`s so far (filled as rules ask: a PDB no rule asks about
    reads no labels, as `LabelReads` records)."""
    return {}


def _selected_workloads(
    cluster: ClusterContext, pdb: ObjectView, *, kinds: Collection[str]
) -> list[ObjectView]:
    """Every object of `kinds` in the PDB's namespace whose pod template it selects (the
    kind tested first: it is cheaper than the selector, which never raises)."""
    selects, candidates = _selection(cluster, pdb)
    return [obj for obj, labels in candidates if obj.kind in kinds and selects(labels)]


def _selects_any(cluster: ClusterContext, pdb: ObjectView) -> bool:
    """Whether the PDB selects the pod template of any pod-bearing object of its namespace
    (the first match answers)."""
    selects, candidates = _selection(cluster, pdb)
    return any(selects(labels) for _obj, labels in candidates)


def _percent(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().endswith("%"):
        digits = value.strip()[:-1]
        return int(digits) if digits.isdigit() else None
    return None


@rule(
    id="KM-616",
    title="PodDisruptionBudget never allows an eviction",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    scope="cluster",
    references=(PDB_DOC,),
    remediation="Allow at least one disruption: `maxUnavailable: 1`, or a `minAvailable` "
    "below the workload's (minimum) replica count.",
    kinds=("PodDisruptionBudget",),
)
def blocking_pdb(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags PodDisruptionBudgets that can never let a pod be evicted.

    ## What it does
    Reports budgets with `maxUnavailable: 0` (or `"0%"`), `minAvailable: "100%"`, or an
    integer `minAvailable` at or above the replica count of the workloads it selects in
    the snapshot (Deployments, StatefulSets, ReplicaSets, ReplicationControllers). When an
    autoscaler targets a workload, its minimum (`minReplicas`, `minReplicaCount`) is the
    replica count used: at that minimum no pod can be evicted.

    ## Why is this bad?
    The eviction API refuses every eviction of the selected pods: `kubectl drain`, node
    upgrades and the cluster autoscaler's scale-down hang until someone deletes the budget,
    usually in the middle of a maintenance window.

    ## Example
    ```yaml
    apiVersion: policy/v1
    kind: PodDisruptionBudget
    spec:
      maxUnavailable: 0
      selector:
        matchLabels: {app: web}
    ```

    ## Use instead
    ```yaml
    apiVersion: policy/v1
    kind: PodDisruptionBudget
    spec:
      maxUnavailable: 1
      selector:
        matchLabels: {app: web}
    ```

    ## References
    - https://kubernetes.io/docs/tasks/run-application/configure-pdb/
    """
    scalers = autoscaler_minimums(cluster)
    for pdb in cluster.by_kind("PodDisruptionBudget"):
        spec = pdb.spec
        max_unavailable = spec.get("maxUnavailable")
        if "maxUnavailable" in spec and (
            _count(max_unavailable) == 0 or _percent(max_unavailable) == 0
        ):
            yield Violation(
                f"PodDisruptionBudget {pdb.name} sets maxUnavailable {max_unavailable!r}: no "
                "pod it selects can ever be evicted, so node drains block",
                path="spec.maxUnavailable",
                subject=pdb,
            )
            continue
        min_available = spec.get("minAvailable")
        if _percent(min_available) is not None and (_percent(min_available) or 0) >= 100:
            yield Violation(
                f"PodDisruptionBudget {pdb.name} sets minAvailable {min_available!r}: no pod "
                "it selects can ever be evicted, so node drains block",
                path="spec.minAvailable",
                subject=pdb,
            )
            continue
        wanted = _count(min_available)
        if wanted is None or wanted <= 0:
            continue
        replicated = [
            obj
            for obj in _selected_workloads(cluster, pdb, kinds=SCALABLE_KINDS)
            if cluster.controller_of(obj) is None
        ]
        if not replicated:
            continue
        counts = [min_replicas(obj, scalers) for obj in replicated]
        total = sum(count for count, _ in counts)
        if total and wanted >= total:
            sources = "; ".join(
                f"{obj.kind} {obj.name}: {source}"
                for obj, (_, source) in zip(replicated, counts, strict=True)
            )
            yield Violation(
                f"PodDisruptionBudget {pdb.name} requires minAvailable {wanted} of at most "
                f"{total} replica(s) ({sources}): no pod can be evicted, so node drains block",
                path="spec.minAvailable",
                subject=pdb,
            )


@rule(
    id="KM-617",
    title="PodDisruptionBudget selects no pods",
    severity=Severity.LOW,
    category=CATEGORY,
    scope="cluster",
    references=(PDB_DOC,),
    remediation="Make `spec.selector` match the pod template labels of the workload it "
    "should protect, or delete the budget.",
    kinds=("PodDisruptionBudget",),
)
def empty_pdb(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags PodDisruptionBudgets whose selector matches no pod-bearing object.

    ## What it does
    Matches each budget's `spec.selector` against the pod template labels of every Pod,
    Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job and CronJob
    of its namespace in the snapshot. A missing (null) selector selects nothing; an empty
    one (`{}`) selects every pod of the namespace in `policy/v1` and none in
    `policy/v1beta1`. Offline, scan the budget together with its workloads.

    ## Why is this bad?
    A budget that selects nothing protects nothing: the workload it was written for (often
    after a label change) has no disruption budget, and drains may evict all its replicas.

    ## Example
    ```yaml
    kind: PodDisruptionBudget
    spec:
      maxUnavailable: 1
      selector:
        matchLabels: {app: web-v1}   # the pods are labelled app: web
    ```

    ## Use instead
    ```yaml
    kind: PodDisruptionBudget
    spec:
      maxUnavailable: 1
      selector:
        matchLabels: {app: web}
    ```

    ## References
    - https://kubernetes.io/docs/tasks/run-application/configure-pdb/
    """
    for pdb in cluster.by_kind("PodDisruptionBudget"):
        if not _selects_any(cluster, pdb):
            yield Violation(
                f"PodDisruptionBudget {pdb.name} selects no pods in namespace "
                f"{pdb.namespace}: it protects nothing",
                path="spec.selector",
                subject=pdb,
            )


# -- KM-618 --------------------------------------------------------------------------------
def _spreads(obj: ObjectView) -> bool:
    """Whether the pod template spreads replicas: topology spread or pod anti-affinity."""
    assert obj.workload is not None
    spec = obj.workload.spec
    constraints = spec.get("topologySpreadConstraints")
    if isinstance(constraints, list) and any(is_map(c) for c in constraints):
        return True
    anti = _mapping(_mapping(spec.get("affinity")).get("podAntiAffinity"))
    return any(
        isinstance(anti.get(field), list) and anti.get(field)
        for field in (
            "requiredDuringSchedulingIgnoredDuringExecution",
            "preferredDuringSchedulingIgnoredDuringExecution",
        )
    )


@rule(
    id="KM-618",
    title="Replicated workload not spread across nodes or zones",
    severity=Severity.INFO,
    category=CATEGORY,
    scope="cluster",
    references=(SPREAD_DOC,),
    remediation="Add `topologySpreadConstraints` on `kubernetes.io/hostname` and/or "
    "`topology.kubernetes.io/zone`, or a `podAntiAffinity` term.",
    kinds=REPLICATED_KINDS,
)
def unspread_replicas(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags Deployments and StatefulSets with several replicas and no spreading rule.

    ## What it does
    For each Deployment and StatefulSet whose replica count (or autoscaler minimum) is
    above one, checks the pod template for `topologySpreadConstraints` or a
    `podAntiAffinity` term (required or preferred). Without either, the scheduler may put
    every replica on one node or in one zone.

    ## Why is this bad?
    Replicas exist to survive the loss of one of them. Packed on one node (or zone), a
    single node failure, drain or zone outage takes the whole service down.

    ## Example
    ```yaml
    kind: Deployment
    spec:
      replicas: 3
      template:
        spec:
          containers: [...]
    ```

    ## Use instead
    ```yaml
    kind: Deployment
    spec:
      replicas: 3
      template:
        spec:
          topologySpreadConstraints:
            - maxSkew: 1
              topologyKey: topology.kubernetes.io/zone
              whenUnsatisfiable: ScheduleAnyway
              labelSelector:
                matchLabels: {app: web}
    ```

    ## References
    - https://kubernetes.io/docs/concepts/scheduling-eviction/topology-spread-constraints/
    """
    scalers = autoscaler_minimums(cluster)
    for kind in REPLICATED_KINDS:
        for obj in cluster.by_kind(kind):
            if obj.workload is None:
                continue
            count, source = min_replicas(obj, scalers)
            if count <= 1 or _spreads(obj):
                continue
            yield Violation(
                f"{kind} {obj.name} runs {count} replicas ({source}) with no "
                "topologySpreadConstraints or podAntiAffinity: they may all land on one "
                "node or zone",
                path=obj.workload.path("topologySpreadConstraints"),
                subject=obj,
            )
