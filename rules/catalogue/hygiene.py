"""Operational hygiene rules (KM-6xx) the SRE team asked for: resource requests and limits,
probes, image tags and digests, removed and deprecated API versions, replicas and
PodDisruptionBudgets, priority classes.

Several of these are cluster rules because the cluster can supply what a manifest omits:
a namespace's LimitRange defaults container requests and limits, a HorizontalPodAutoscaler
(or KEDA ScaledObject) owns a Deployment's replica count, and a PriorityClass with
`globalDefault: true` gives every pod a priority. Kubernetes' own defaulting is applied too:
a container that sets a limit but no request gets the limit as its request.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.images import ImageRef
from contracts.selectors import Selector, SelectorError, parse_selector
from contracts.severity import Severity
from rules import psa
from rules.cluster import ClusterContext
from rules.model import Violation, rule
from rules.view import POD_KINDS, ContainerView, ObjectView, is_map

CATEGORY = "hygiene"
RESOURCES_DOC = "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"
PROBES_DOC = (
    "https://kubernetes.io/docs/tasks/configure-pod-container/"
    "configure-liveness-readiness-startup-probes/"
)
IMAGES_DOC = "https://kubernetes.io/docs/concepts/containers/images/"
DEPRECATION_DOC = "https://kubernetes.io/docs/reference/using-api/deprecation-guide/"
PDB_DOC = "https://kubernetes.io/docs/tasks/run-application/configure-pdb/"
PRIORITY_DOC = "https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/"
RESOURCE_NAMES = ("cpu", "memory")
BATCH_KINDS = frozenset({"Job", "CronJob"})


_EMPTY: Mapping[str, Any] = {}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if is_map(value) else _EMPTY


# -- resources -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Defaults:
    """Container defaults of a namespace's LimitRanges (resource -> quantity)."""

    requests: frozenset[str] = frozenset()
    limits: frozenset[str] = frozenset()


def _container_defaults(limit_range: ObjectView) -> tuple[set[str], set[str]]:
    requests: set[str] = set()
    limits: set[str] = set()
    items = limit_range.spec.get("limits")
    for item in items if isinstance(items, list) else ():
        if not is_map(item) or item.get("type", "Container") != "Container":
            continue
        # API defaulting: default <- max; defaultRequest <- default, then <- min.
        default = set(_mapping(item.get("default"))) | set(_mapping(item.get("max")))
        limits |= default
        requests |= default | set(_mapping(item.get("defaultRequest")))
        requests |= set(_mapping(item.get("min")))
    return requests, limits


def namespace_defaults(cluster: ClusterContext) -> dict[str | None, Defaults]:
    """Container request/limit defaults of every namespace's LimitRanges (one pass)."""
    requests: dict[str | None, set[str]] = {}
    limits: dict[str | None, set[str]] = {}
    for limit_range in cluster.by_kind("LimitRange"):
        req, lim = _container_defaults(limit_range)
        requests.setdefault(limit_range.namespace, set()).update(req)
        limits.setdefault(limit_range.namespace, set()).update(lim)
    return {ns: Defaults(frozenset(requests[ns]), frozenset(limits.get(ns, ()))) for ns in requests}


def missing_resources(
    cluster: ClusterContext, field: str, wanted: tuple[str, ...]
) -> Iterator[tuple[ObjectView, ContainerView, list[str]]]:
    """(object, container, resources) with no effective `requests` or `limits` entry.

    Walks `cluster.workloads()`: Pods and ReplicaSets whose controller is present are left
    out (with controller dedup on), as their findings would be dropped anyway. CPU and
    memory are looked up in `resource_gaps`, worked out once per context for the three
    rules that ask (KM-601, KM-602, KM-603).
    """
    if field in ("requests", "limits") and _RESOURCE_SET.issuperset(wanted):
        requests = field == "requests"
        for obj, c, no_request, no_limit in cluster.derived(resource_gaps):
            gap = no_request if requests else no_limit
            if gap:
                missing = [r for r in wanted if r in gap]
                if missing:
                    yield obj, c, missing
        return
    defaults = namespace_defaults(cluster)
    none = Defaults()
    for obj in cluster.workloads():
        found = defaults.get(obj.namespace, none)
        inherited = found.requests if field == "requests" else found.limits
        for c, missing in _missing_in(obj, field, wanted, inherited):
            yield obj, c, missing


_RESOURCE_SET = frozenset(RESOURCE_NAMES)
ResourceGap = tuple[ObjectView, ContainerView, list[str], list[str]]
_Covered = frozenset[str] | set[str]


def resource_gaps(cluster: ClusterContext) -> tuple[ResourceGap, ...]:
    """(object, container, CPU/memory without a request, CPU/memory without a limit) of every
    container of `cluster.workloads()` that lacks either (both fields in one pass), in
    workload and container order."""
    defaults = namespace_defaults(cluster)
    none = Defaults()
    out: list[ResourceGap] = []
    for obj in cluster.workloads():
        workload = obj.workload
        assert workload is not None
        found = defaults.get(obj.namespace, none)
        requests_covered, limits_covered = _pod_coverage(workload.spec, found, RESOURCE_NAMES)
        for c in workload.containers:
            if c.group == "ephemeralContainers":
                continue  # ephemeral containers cannot set resources
            no_request, no_limit = _container_gaps(
                c, RESOURCE_NAMES, requests_covered=requests_covered, limits_covered=limits_covered
            )
            if no_request or no_limit:
                out.append((obj, c, no_request, no_limit))
    return tuple(out)


def _has(block: Any, name: str) -> bool:
    return isinstance(block, dict) and block.get(name) is not None


def _pod_coverage(
    pod_spec: Mapping[str, Any], found: Defaults, names: tuple[str, ...]
) -> tuple[_Covered, _Covered]:
    """(names whose request, names whose limit) every container of the pod has without
    setting it: the namespace's LimitRange defaults and the pod-level resources (a pod-level
    limit covers the request too)."""
    pod_level = _mapping(pod_spec.get("resources"))
    if not pod_level:
        return found.requests, found.limits
    pod_requests, pod_limits = pod_level.get("requests"), pod_level.get("limits")
    requests = set(found.requests)
    requests.update(r for r in names if _has(pod_requests, r) or _has(pod_limits, r))
    limits = set(found.limits)
    limits.update(r for r in names if _has(pod_limits, r))
    return requests, limits


def _container_gaps(
    c: ContainerView,
    names: tuple[str, ...],
    *,
    requests_covered: _Covered,
    limits_covered: _Covered,
) -> tuple[list[str], list[str]]:
    """(names without an effective request, names without an effective limit) of a container
    (`_has` written out: this runs for every container of every workload)."""
    resources = c.raw.get("resources")
    if is_map(resources):
        requests = resources.get("requests")
        if not isinstance(requests, dict):
            requests = _EMPTY
        limits = resources.get("limits")
        if not isinstance(limits, dict):
            limits = _EMPTY
    else:
        requests = limits = _EMPTY
    no_request: list[str] = []
    no_limit: list[str] = []
    for r in names:  # (one loop, not two comprehensions: this runs for every container)
        unlimited = limits.get(r) is None
        if unlimited and r not in limits_covered:
            no_limit.append(r)
        # API defaulting: a missing request takes the container's limit.
        if unlimited and r not in requests_covered and requests.get(r) is None:
            no_request.append(r)
    return no_request, no_limit


def _missing_in(
    obj: ObjectView, field: str, wanted: tuple[str, ...], inherited: frozenset[str]
) -> Iterator[tuple[ContainerView, list[str]]]:
    """(container, `wanted` resources without an effective `field` entry) of a workload,
    `inherited` being what the namespace's defaults give for that field."""
    workload = obj.workload
    assert workload is not None
    requests = field == "requests"
    found = Defaults(requests=inherited) if requests else Defaults(limits=inherited)
    requests_covered, limits_covered = _pod_coverage(workload.spec, found, wanted)
    for c in workload.containers:
        if c.group == "ephemeralContainers":
            continue  # ephemeral containers cannot set resources
        no_request, no_limit = _container_gaps(
            c, wanted, requests_covered=requests_covered, limits_covered=limits_covered
        )
        missing = no_request if requests else no_limit
        if missing:
            yield c, missing


@rule(
    id="KM-601",
    title="Container without CPU or memory requests",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    scope="cluster",
    references=(RESOURCES_DOC,),
    remediation="Set `resources.requests.cpu` and `resources.requests.memory` from observed "
    "usage (or a namespace LimitRange default).",
    kinds=POD_KINDS,
)
def missing_requests(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags containers whose CPU or memory request is not set by anything.

    ## What it does
    Reports regular and init containers with no effective `requests.cpu` or
    `requests.memory`: neither set on the container, nor defaulted from the container's limit
    (Kubernetes copies a limit to a missing request), nor from a pod-level `resources`, nor
    from a `LimitRange` of the namespace in the input.

    ## Why is this bad?
    The scheduler places pods by their requests. Without them, nodes are overcommitted,
    pods are the first to be evicted under pressure (BestEffort QoS), and capacity
    planning has nothing to go on.

    ## Example
    ```yaml
    containers:
      - name: web
        image: registry.example/web:2.1.0
    ```

    ## Use instead
    ```yaml
    containers:
      - name: web
        image: registry.example/web:2.1.0
        resources:
          requests: {cpu: 100m, memory: 256Mi}
          limits: {memory: 256Mi}
    ```

    ## References
    - https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/
    """
    for obj, c, missing in missing_resources(cluster, "requests", RESOURCE_NAMES):
        yield Violation(
            f"container {c.name!r} of {obj.kind} {obj.name} has no "
            f"{' or '.join(missing)} request; set resources.requests",
            path=f"{c.path}.resources.requests",
            container=c.name,
            subject=obj,
        )


@rule(
    id="KM-602",
    title="Container without a memory limit",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    scope="cluster",
    references=(RESOURCES_DOC,),
    remediation="Set `resources.limits.memory` (usually equal to the memory request).",
    kinds=POD_KINDS,
)
def missing_memory_limit(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags containers with no effective memory limit.

    ## What it does
    Reports regular and init containers without `limits.memory`, unless a pod-level
    `resources.limits.memory` or a LimitRange default of the namespace provides one.

    ## Why is this bad?
    A container without a memory limit can take all of a node's memory; the kernel's OOM
    killer then picks victims among its neighbours, and a memory leak becomes a node outage.

    ## Example
    ```yaml
    resources:
      requests: {cpu: 100m, memory: 256Mi}
    ```

    ## Use instead
    ```yaml
    resources:
      requests: {cpu: 100m, memory: 256Mi}
      limits: {memory: 256Mi}
    ```

    ## References
    - https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/
    """
    for obj, c, _ in missing_resources(cluster, "limits", ("memory",)):
        yield Violation(
            f"container {c.name!r} of {obj.kind} {obj.name} has no memory limit; set "
            "resources.limits.memory",
            path=f"{c.path}.resources.limits.memory",
            container=c.name,
            subject=obj,
        )


@rule(
    id="KM-603",
    title="Container without a CPU limit",
    severity=Severity.LOW,
    category=CATEGORY,
    scope="cluster",
    references=(RESOURCES_DOC,),
    remediation="Set `resources.limits.cpu`, or record an exemption where CPU throttling is "
    "deliberately avoided.",
    kinds=POD_KINDS,
)
def missing_cpu_limit(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags containers with no effective CPU limit.

    ## What it does
    Reports regular and init containers without `limits.cpu`, unless a pod-level
    `resources.limits.cpu` or a LimitRange default of the namespace provides one. Low
    severity: some teams leave CPU unlimited on purpose to avoid throttling; exempt them.

    ## Why is this bad?
    An unlimited container can use every idle CPU of the node, so its latency depends on its
    neighbours being idle, and a runaway process starves system daemons that have no
    reservation.

    ## Example
    ```yaml
    resources:
      requests: {cpu: 100m, memory: 256Mi}
    ```

    ## Use instead
    ```yaml
    resources:
      requests: {cpu: 100m, memory: 256Mi}
      limits: {cpu: "1", memory: 256Mi}
    ```

    ## References
    - https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/
    """
    for obj, c, _ in missing_resources(cluster, "limits", ("cpu",)):
        yield Violation(
            f"container {c.name!r} of {obj.kind} {obj.name} has no CPU limit; set "
            "resources.limits.cpu",
            path=f"{c.path}.resources.limits.cpu",
            container=c.name,
            subject=obj,
        )


# -- probes --------------------------------------------------------------------------------
def _long_running(obj: ObjectView) -> bool:
    """Whether the workload's pods are meant to keep running (not run to completion)."""
    if obj.kind in BATCH_KINDS or obj.workload is None:
        return False
    if obj.kind in ("Pod", "PodTemplate"):
        if str(obj.workload.spec.get("restartPolicy") or "Always") != "Always":
            return False
        owners = obj.metadata.get("ownerReferences")
        if not isinstance(owners, list):
            return True
        return not any(is_map(o) and o.get("kind") == "Job" for o in owners)
    return True


def _probed_containers(obj: ObjectView) -> Iterator[ContainerView]:
    """Regular containers and sidecars (init containers with restartPolicy: Always)."""
    if not _long_running(obj):
        return
    assert obj.workload is not None
    for c in obj.workload.containers:
        if c.group == "containers" or (c.is_init and c.raw.get("restartPolicy") == "Always"):
            yield c


@rule(
    id="KM-604",
    title="Container without a liveness probe",
    severity=Severity.LOW,
    category=CATEGORY,
    references=(PROBES_DOC,),
    remediation="Add a `livenessProbe` that fails only when the process is stuck beyond recovery.",
    kinds=POD_KINDS,
)
def missing_liveness_probe(obj: ObjectView) -> Iterator[Violation]:
    """Flags long-running containers without a liveness probe.

    ## What it does
    Reports regular containers and sidecar containers (init containers with
    `restartPolicy: Always`) of long-running workloads that have no `livenessProbe`. Jobs,
    CronJobs, pods owned by Jobs and pods with `restartPolicy` `Never`/`OnFailure` run to
    completion and are skipped, as are ordinary init containers and ephemeral containers
    (which cannot have probes).

    ## Why is this bad?
    A deadlocked process keeps its container "running": without a liveness probe nothing
    restarts it, and it keeps receiving traffic or holding work.

    ## Example
    ```yaml
    containers:
      - name: web
        image: registry.example/web:2.1.0
    ```

    ## Use instead
    ```yaml
    containers:
      - name: web
        image: registry.example/web:2.1.0
        livenessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 10
          failureThreshold: 6
    ```

    ## References
    - https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/
    """
    for c in _probed_containers(obj):
        if not is_map(c.raw.get("livenessProbe")):
            yield Violation(
                f"container {c.name!r} of {obj.kind} {obj.name} has no livenessProbe; add "
                "one so a hung process is restarted",
                path=f"{c.path}.livenessProbe",
                container=c.name,
            )


def _selected_by_service(cluster: ClusterContext, obj: ObjectView) -> bool:
    """Whether a Service in the workload's namespace selects its pods (equality selector)."""
    assert obj.workload is not None
    labels = obj.workload.pod_meta.get("labels")
    if not is_map(labels) or not labels:
        return False
    for service in cluster.in_namespace(obj.namespace, "Service"):
        selector = service.spec.get("selector")
        if (
            is_map(selector)
            and selector
            and all(
                isinstance(value, str) and labels.get(key) == value
                for key, value in selector.items()
            )
        ):
            return True
    return False


@rule(
    id="KM-605",
    title="Serving container without a readiness probe",
    severity=Severity.LOW,
    category=CATEGORY,
    scope="cluster",
    references=(PROBES_DOC,),
    remediation="Add a `readinessProbe` that succeeds only when the container can serve requests.",
    kinds=POD_KINDS,
)
def missing_readiness_probe(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags long-running containers that serve traffic but have no readiness probe.

    ## What it does
    Reports regular and sidecar containers of long-running workloads (see KM-604) that
    serve traffic and have no `readinessProbe`. A container serves traffic when it declares
    `ports`, or when a Service in the same input selects its pods and no container of the
    pod declares ports (declaring ports is optional: the Service's `targetPort` reaches the
    process all the same). Containers without ports in pods no Service selects (queue
    workers, agents) are not reported.

    ## Why is this bad?
    Without a readiness probe a pod receives traffic as soon as its process starts, before
    caches are warm or connections are open, and keeps receiving it while overloaded: users
    see errors on every rollout.

    ## Example
    ```yaml
    containers:
      - name: web
        ports: [{containerPort: 8080}]
    ```

    ## Use instead
    ```yaml
    containers:
      - name: web
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /ready, port: 8080}
    ```

    ## References
    - https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/
    """
    for obj in cluster.workloads():
        containers = list(_probed_containers(obj))
        if not containers:
            continue
        declared = [c for c in containers if _declares_ports(c)]
        serving = declared or (containers if _selected_by_service(cluster, obj) else [])
        for c in serving:
            if isinstance(c.raw.get("readinessProbe"), Mapping):
                continue
            how = "serves ports" if c in declared else "is selected by a Service"
            yield Violation(
                f"container {c.name!r} of {obj.kind} {obj.name} {how} but has no "
                "readinessProbe; add one so it gets traffic only when ready",
                path=f"{c.path}.readinessProbe",
                container=c.name,
                subject=obj,
            )


def _declares_ports(c: ContainerView) -> bool:
    ports = c.raw.get("ports")
    return isinstance(ports, list) and bool(ports)


# -- images --------------------------------------------------------------------------------
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")


def _images(obj: ObjectView) -> Iterator[tuple[ContainerView, ImageRef]]:
    if obj.workload is None:
        return
    for c in obj.workload.containers:
        ref = c.image_ref
        if ref is not None:
            yield c, ref


@rule(
    id="KM-606",
    title="Image without a tag or tagged latest",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    references=(IMAGES_DOC,),
    remediation="Reference a specific version tag (better: a digest) instead of `latest` or "
    "no tag.",
    kinds=POD_KINDS,
)
def mutable_image_tag(obj: ObjectView) -> Iterator[Violation]:
    """Flags images referenced without a tag or with `:latest`, unless pinned by digest.

    ## What it does
    Parses each container image reference properly: `host:5000/app` has no tag (the `:5000`
    is a registry port) and is reported; `host:5000/app:latest` is `latest`; an image with a
    digest (`app@sha256:...`, with or without a tag) is pinned and never reported.

    ## Why is this bad?
    No tag means `latest`. What `latest` points to changes without the manifest changing:
    nodes run different code depending on when they pulled, rollbacks do not roll back, and
    nobody can say which version is deployed.

    ## Example
    ```yaml
    image: registry.example:5000/shop/web
    ```

    ## Use instead
    ```yaml
    image: registry.example:5000/shop/web:2.1.0
    ```

    ## References
    - https://kubernetes.io/docs/concepts/containers/images/#image-names
    """
    for c, ref in _images(obj):
        if ref.digest:
            continue
        if ref.tag is None:
            problem = "has no tag (so it means latest)"
        elif ref.tag == "latest":
            problem = "uses the latest tag"
        else:
            continue
        yield Violation(
            f"image {ref.name} of container {c.name!r} in {obj.kind} {obj.name} {problem}; "
            "pin a version tag or digest",
            path=f"{c.path}.image",
            container=c.name,
        )


@rule(
    id="KM-607",
    title="Image not pinned by digest",
    severity=Severity.INFO,
    category=CATEGORY,
    references=(IMAGES_DOC,),
    remediation="Reference images by digest (`repo:tag@sha256:...`), e.g. with a tool that "
    "resolves tags at release time.",
    kinds=POD_KINDS,
)
def image_not_pinned(obj: ObjectView) -> Iterator[Violation]:
    """Flags images referenced by tag only, without a content digest.

    ## What it does
    Reports container images whose reference has no `@sha256:` (or other) digest.

    ## Why is this bad?
    Tags are mutable: a registry compromise or a re-pushed tag changes what runs without any
    change to the manifest. A digest names exactly one image.

    ## Example
    ```yaml
    image: registry.example/shop/web:2.1.0
    ```

    ## Use instead
    ```yaml
    image: registry.example/shop/web:2.1.0@sha256:4f9d...e1
    ```

    ## References
    - https://kubernetes.io/docs/concepts/containers/images/#image-names
    """
    for c, ref in _images(obj):
        if ref.digest is None or not _DIGEST.match(ref.digest):
            yield Violation(
                f"image {ref.name}{':' + ref.tag if ref.tag else ''} of container {c.name!r} "
                f"in {obj.kind} {obj.name} is not pinned by digest",
                path=f"{c.path}.image",
                container=c.name,
            )


# -- API versions --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ApiChange:
    """What happened to an apiVersion of a kind: removed in (or deprecated since) a release."""

    release: str
    replacement: str | None  # None: no replacement API
    note: str = ""


_APPS = ("Deployment", "DaemonSet", "ReplicaSet", "StatefulSet", "ControllerRevision")
_V1_22 = {
    "admissionregistration.k8s.io/v1beta1": (
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ),
    "apiextensions.k8s.io/v1beta1": ("CustomResourceDefinition",),
    "apiregistration.k8s.io/v1beta1": ("APIService",),
    "authentication.k8s.io/v1beta1": ("TokenReview",),
    "authorization.k8s.io/v1beta1": (
        "SubjectAccessReview",
        "LocalSubjectAccessReview",
        "SelfSubjectAccessReview",
    ),
    "certificates.k8s.io/v1beta1": ("CertificateSigningRequest",),
    "coordination.k8s.io/v1beta1": ("Lease",),
    "networking.k8s.io/v1beta1": ("Ingress", "IngressClass"),
    "rbac.authorization.k8s.io/v1beta1": (
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ),
    "rbac.authorization.k8s.io/v1alpha1": (
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ),
    "scheduling.k8s.io/v1beta1": ("PriorityClass",),
    "scheduling.k8s.io/v1alpha1": ("PriorityClass",),
    "storage.k8s.io/v1beta1": ("CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"),
}


def _removed_apis() -> dict[tuple[str, str], ApiChange]:
    table: dict[tuple[str, str], ApiChange] = {}
    for version in ("apps/v1beta1", "apps/v1beta2"):
        for kind in _APPS:
            table[(version, kind)] = ApiChange("1.16", "apps/v1")
    for kind in ("Deployment", "DaemonSet", "ReplicaSet"):
        table[("extensions/v1beta1", kind)] = ApiChange("1.16", "apps/v1")
    table[("extensions/v1beta1", "NetworkPolicy")] = ApiChange("1.16", "networking.k8s.io/v1")
    table[("extensions/v1beta1", "PodSecurityPolicy")] = ApiChange(
        "1.16", None, "PodSecurityPolicy was removed entirely in 1.25; use Pod Security Admission"
    )
    table[("extensions/v1beta1", "Ingress")] = ApiChange("1.22", "networking.k8s.io/v1")
    table[("settings.k8s.io/v1alpha1", "PodPreset")] = ApiChange("1.20", None)
    table[("batch/v2alpha1", "CronJob")] = ApiChange("1.21", "batch/v1")
    for version, kinds in _V1_22.items():
        for kind in kinds:
            table[(version, kind)] = ApiChange("1.22", version.split("/")[0] + "/v1")
    table[("batch/v1beta1", "CronJob")] = ApiChange("1.25", "batch/v1")
    table[("discovery.k8s.io/v1beta1", "EndpointSlice")] = ApiChange("1.25", "discovery.k8s.io/v1")
    table[("events.k8s.io/v1beta1", "Event")] = ApiChange("1.25", "events.k8s.io/v1")
    table[("autoscaling/v2beta1", "HorizontalPodAutoscaler")] = ApiChange("1.25", "autoscaling/v2")
    table[("policy/v1beta1", "PodDisruptionBudget")] = ApiChange("1.25", "policy/v1")
    table[("policy/v1beta1", "PodSecurityPolicy")] = ApiChange(
        "1.25", None, "use Pod Security Admission (namespace labels) or a policy engine"
    )
    table[("node.k8s.io/v1beta1", "RuntimeClass")] = ApiChange("1.25", "node.k8s.io/v1")
    table[("autoscaling/v2beta2", "HorizontalPodAutoscaler")] = ApiChange("1.26", "autoscaling/v2")
    table[("storage.k8s.io/v1beta1", "CSIStorageCapacity")] = ApiChange("1.27", "storage.k8s.io/v1")
    for version, release in (("v1beta1", "1.26"), ("v1beta2", "1.29"), ("v1beta3", "1.32")):
        for kind in ("FlowSchema", "PriorityLevelConfiguration"):
            table[(f"flowcontrol.apiserver.k8s.io/{version}", kind)] = ApiChange(
                release, "flowcontrol.apiserver.k8s.io/v1"
            )
    return table


REMOVED_APIS: Mapping[tuple[str, str], ApiChange] = _removed_apis()
# Superseded versions still served: (apiVersion, kind) -> the GA version and since when.
DEPRECATED_APIS: Mapping[tuple[str, str], ApiChange] = {
    **{
        ("admissionregistration.k8s.io/v1beta1", kind): ApiChange(
            "1.30", "admissionregistration.k8s.io/v1"
        )
        for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    },
    **{
        ("networking.k8s.io/v1beta1", kind): ApiChange("1.33", "networking.k8s.io/v1")
        for kind in ("IPAddress", "ServiceCIDR")
    },
    ("storage.k8s.io/v1beta1", "VolumeAttributesClass"): ApiChange("1.34", "storage.k8s.io/v1"),
    **{
        (f"resource.k8s.io/{version}", kind): ApiChange("1.34", "resource.k8s.io/v1")
        for version in ("v1beta1", "v1beta2")
        for kind in ("DeviceClass", "ResourceClaim", "ResourceClaimTemplate", "ResourceSlice")
    },
}
# The kinds and apiVersions KM-608 and KM-609 can report on (their tables' keys): declared as
# the rules' applicability, so that the engine does not run them on the other objects (every
# object of a scan, nearly all of them on a served version).
_REMOVED_KINDS = frozenset(kind for _version, kind in REMOVED_APIS)
_REMOVED_VERSIONS = frozenset(version for version, _kind in REMOVED_APIS)
_SUPERSEDED_KINDS = _REMOVED_KINDS | {kind for _version, kind in DEPRECATED_APIS}
_SUPERSEDED_VERSIONS = _REMOVED_VERSIONS | {version for version, _kind in DEPRECATED_APIS}


def _removed_by_next_minor(change: ApiChange, obj: ObjectView) -> bool:
    """Whether the API goes away exactly at the next minor of the object's cluster (only
    when the cluster's release is known: telemetry or `--kubernetes-version`)."""
    version = getattr(obj, "kubernetes_version", None)
    try:
        removed_in = psa.parse_version(change.release)
    except psa.VersionError:
        return False
    return version is not None and removed_in == (version[0], version[1] + 1)


def _removed_by(change: ApiChange, obj: ObjectView) -> bool:
    """Whether the object's cluster release (`--kubernetes-version`, default latest) no longer
    serves the API."""
    try:
        removed_in = psa.parse_version(change.release)
    except psa.VersionError:
        return True
    return removed_in is None or psa.cluster_version(obj) >= removed_in


@rule(
    id="KM-608",
    title="API version removed from Kubernetes",
    severity=Severity.HIGH,
    category=CATEGORY,
    references=(DEPRECATION_DOC,),
    remediation="Migrate the manifest to the replacement API version (`kubectl convert` "
    "helps) and review the field changes listed in the deprecation guide.",
    kinds=_REMOVED_KINDS,
    api_versions=_REMOVED_VERSIONS,
)
def removed_api_version(obj: ObjectView) -> Iterator[Violation]:
    """Flags manifests written against API versions Kubernetes no longer serves.

    ## What it does
    Looks up each object's `apiVersion` and `kind` in the removals of the Kubernetes
    deprecation guide (1.16 through 1.32): e.g. `extensions/v1beta1` Deployment and Ingress,
    `policy/v1beta1` PodSecurityPolicy and PodDisruptionBudget, `batch/v1beta1` CronJob,
    `autoscaling/v2beta1`/`v2beta2` HorizontalPodAutoscaler, `flowcontrol.apiserver.k8s.io`
    `v1beta1`-`v1beta3`. The message names the release that removed it and the replacement.
    Judged at the cluster's release (`k8smon scan --kubernetes-version`, default latest): an
    API a 1.21 cluster still serves is reported by KM-609 as going away instead.

    ## Why is this bad?
    The API server rejects these manifests: deployments from them fail, and the policy they
    encode (a PodSecurityPolicy, a PodDisruptionBudget) silently does not exist.

    ## Example
    ```yaml
    apiVersion: batch/v1beta1
    kind: CronJob
    ```

    ## Use instead
    ```yaml
    apiVersion: batch/v1
    kind: CronJob
    ```

    ## References
    - https://kubernetes.io/docs/reference/using-api/deprecation-guide/
    """
    change = REMOVED_APIS.get((obj.api_version, obj.kind))
    if change is None or not _removed_by(change, obj):
        return
    if change.replacement:
        advice = f"use {change.replacement}"
        if change.note:
            advice += f" ({change.note})"
    else:
        advice = change.note or "it has no replacement; remove the object"
    yield Violation(
        f"{obj.kind} {obj.name} uses {obj.api_version}, which Kubernetes {change.release} "
        f"stopped serving; {advice}",
        path="apiVersion",
    )


@rule(
    id="KM-609",
    title="Deprecated API version",
    severity=Severity.LOW,
    category=CATEGORY,
    references=(DEPRECATION_DOC,),
    remediation="Move the manifest to the stable API version before the deprecated one is removed.",
    kinds=_SUPERSEDED_KINDS,
    api_versions=_SUPERSEDED_VERSIONS,
)
def deprecated_api_version(obj: ObjectView) -> Iterator[Violation]:
    """Flags manifests using beta API versions superseded by a stable one that is available.

    ## What it does
    Reports objects whose `apiVersion` has a GA replacement in current Kubernetes
    (ValidatingAdmissionPolicy `v1beta1` → `admissionregistration.k8s.io/v1` since 1.30,
    ServiceCIDR/IPAddress `v1beta1` → `networking.k8s.io/v1` since 1.33,
    VolumeAttributesClass → `storage.k8s.io/v1` and DRA `resource.k8s.io` betas →
    `resource.k8s.io/v1` since 1.34). Under `k8smon scan --kubernetes-version X.Y` it also
    reports APIs that release still serves but a later one removed (KM-608's list), naming
    the release that stops serving them; an API removed by the cluster's next minor is
    reported as breaking at that upgrade ("will break when the cluster upgrades to
    Kubernetes 1.32"). On the server the release is the one the cluster's agent reports.

    ## Why is this bad?
    Deprecated versions are removed after a few releases; manifests still using them break
    at an upgrade, usually under time pressure.

    ## Example
    ```yaml
    apiVersion: admissionregistration.k8s.io/v1beta1
    kind: ValidatingAdmissionPolicy
    ```

    ## Use instead
    ```yaml
    apiVersion: admissionregistration.k8s.io/v1
    kind: ValidatingAdmissionPolicy
    ```

    ## References
    - https://kubernetes.io/docs/reference/using-api/deprecation-guide/
    """
    removal = REMOVED_APIS.get((obj.api_version, obj.kind))
    if removal is not None and not _removed_by(removal, obj):
        replacement = removal.replacement or "a supported API"
        if _removed_by_next_minor(removal, obj):
            message = (
                f"{obj.kind} {obj.name} uses {obj.api_version}: it will break when the "
                f"cluster upgrades to Kubernetes {removal.release} (its next minor), which "
                f"stops serving it; migrate to {replacement} before that upgrade"
            )
        else:
            message = (
                f"{obj.kind} {obj.name} uses {obj.api_version}, which Kubernetes "
                f"{removal.release} stops serving; migrate to {replacement} before upgrading"
            )
        yield Violation(message, path="apiVersion")
        return
    change = DEPRECATED_APIS.get((obj.api_version, obj.kind))
    if change is not None:
        yield Violation(
            f"{obj.kind} {obj.name} uses {obj.api_version}, superseded by "
            f"{change.replacement} (available since Kubernetes {change.release}); migrate "
            "before it is removed",
            path="apiVersion",
        )


# -- availability --------------------------------------------------------------------------
def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return default


def autoscaler_minimums(
    cluster: ClusterContext,
) -> Mapping[tuple[str | None, str, str], tuple[int, str]]:
    """(namespace, target kind, target name) -> (minimum replicas, autoscaler description)
    for every HorizontalPodAutoscaler and KEDA ScaledObject (one pass, once per context:
    four rules ask; read-only)."""
    return cluster.derived(_autoscaler_minimums)


def _autoscaler_minimums(
    cluster: ClusterContext,
) -> dict[tuple[str | None, str, str], tuple[int, str]]:
    out: dict[tuple[str | None, str, str], tuple[int, str]] = {}
    for kind, min_field, default in (
        ("HorizontalPodAutoscaler", "minReplicas", 1),
        ("ScaledObject", "minReplicaCount", 0),
    ):
        for scaler in cluster.by_kind(kind):
            target = _mapping(scaler.spec.get("scaleTargetRef"))
            key = (
                scaler.namespace,
                str(target.get("kind") or "Deployment"),
                str(target.get("name") or ""),
            )
            minimum = _int(scaler.spec.get(min_field), default)
            out[key] = (minimum, f"{kind} {scaler.name} has {min_field} {minimum}")
    return out


def min_replicas(
    obj: ObjectView, scalers: Mapping[tuple[str | None, str, str], tuple[int, str]]
) -> tuple[int, str]:
    """The fewest replicas the workload may run with, and where that number comes from."""
    scaler = scalers.get((obj.namespace, obj.kind, obj.name))
    if scaler is not None:
        return scaler
    if "replicas" not in obj.spec:
        return 1, "spec.replicas is unset and defaults to 1"
    count = _int(obj.spec.get("replicas"), 1)
    return count, f"spec.replicas is {count}"


@rule(
    id="KM-610",
    title="Deployment runs a single replica",
    severity=Severity.LOW,
    category=CATEGORY,
    scope="cluster",
    references=("https://kubernetes.io/docs/concepts/workloads/controllers/deployment/",),
    remediation="Run at least two replicas (or an autoscaler with minReplicas >= 2) spread "
    "across nodes.",
    kinds=("Deployment",),
)
def single_replica(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags Deployments that run (or may scale down to) one replica.

    ## What it does
    Reports Deployments whose replica count is 1, explicitly or by default. When a
    HorizontalPodAutoscaler or KEDA ScaledObject in the input targets the Deployment, its
    minimum (`minReplicas`, default 1; `minReplicaCount`, default 0) is used instead of
    `spec.replicas`, which the autoscaler overrides. Deployments scaled to 0 are
    intentionally stopped and not reported.

    ## Why is this bad?
    Every node drain, eviction, rollout or crash takes a single-replica service down.

    ## Example
    ```yaml
    kind: Deployment
    spec:
      replicas: 1
    ```

    ## Use instead
    ```yaml
    kind: Deployment
    spec:
      replicas: 3
    ```

    ## References
    - https://kubernetes.io/docs/concepts/workloads/controllers/deployment/
    """
    scalers = autoscaler_minimums(cluster)
    for obj in cluster.by_kind("Deployment"):
        count, source = min_replicas(obj, scalers)
        if count == 1:
            yield Violation(
                f"Deployment {obj.name} runs a single replica ({source}); any eviction or "
                "rollout is an outage — run at least two",
                path="spec.replicas",
                subject=obj,
            )


PodMatcher = Callable[[Mapping[str, Any]], bool]


def _selects_none(labels: Mapping[str, Any]) -> bool:
    return False


def _selects_all(labels: Mapping[str, Any]) -> bool:
    return True


def pdb_matcher(pdb: ObjectView) -> PodMatcher:
    """Whether the PDB selects pods with given labels, its selector parsed once (a rule
    matching it against every workload of its namespace calls this once per PDB)."""
    selector = pdb.spec.get("selector")
    if not is_map(selector):
        return _selects_none  # a null selector selects no pods
    match_labels = selector.get("matchLabels")
    if not match_labels and not selector.get("matchExpressions"):
        # policy/v1: an empty selector selects every pod of the namespace;
        # policy/v1beta1: it selects none.
        return _selects_all if pdb.api_version != "policy/v1beta1" else _selects_none
    if not selector.get("matchExpressions") and type(match_labels) is dict:
        labels = tuple(sorted(match_labels.items()))
        if all(type(key) is str and type(value) is str for key, value in labels):
            # The usual selector, `matchLabels` of text: one matcher per process for each
            # (several rules ask for the same PDB's, and PDBs repeat their selectors).
            return _labels_matcher(labels)
    try:
        parsed = parse_selector(selector)
    except (SelectorError, TypeError, AttributeError):
        return _selects_none
    return _matcher(parsed)


def _matcher(parsed: Selector) -> PodMatcher:
    def matches(labels: Mapping[str, Any]) -> bool:
        try:
            return parsed.matches(labels)
        except (SelectorError, TypeError, AttributeError):
            return False

    return matches


@functools.lru_cache(maxsize=4096)
def _labels_matcher(match_labels: tuple[tuple[str, str], ...]) -> PodMatcher:
    """`pdb_matcher` of a selector whose only requirement is `matchLabels` (its items,
    sorted): what `parse_selector({"matchLabels": ...}).matches` answers, with the same
    reads of the labels in the same order (`Requirement.matches` of each `In`), written
    out because the rules match every PDB against every workload of its namespace."""

    def matches(labels: Mapping[str, Any]) -> bool:
        try:
            labels = labels or {}
            return all(key in labels and str(labels[key]) == value for key, value in match_labels)
        except (SelectorError, TypeError, AttributeError):
            return False

    return matches


@rule(
    id="KM-611",
    title="Replicated workload without a PodDisruptionBudget",
    severity=Severity.LOW,
    category=CATEGORY,
    scope="cluster",
    references=(PDB_DOC,),
    remediation="Add a PodDisruptionBudget (policy/v1) selecting the workload's pods, e.g. "
    "`maxUnavailable: 1`.",
    kinds=("Deployment", "StatefulSet"),
)
def missing_pdb(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags Deployments and StatefulSets with more than one replica that no PDB covers.

    ## What it does
    For each Deployment and StatefulSet whose replica count (or autoscaler minimum) is
    above one, looks for a PodDisruptionBudget in the same namespace whose selector
    matches the pod template's labels. In `policy/v1` an empty selector (`{}`) matches every
    pod of the namespace; in `policy/v1beta1` it matches none, and a missing selector
    matches none in either.

    ## Why is this bad?
    Without a budget, a node drain or cluster upgrade may evict every replica at once: the
    redundancy the replicas were meant to give disappears exactly during maintenance.

    ## Example
    ```yaml
    kind: Deployment
    spec:
      replicas: 3
      template:
        metadata:
          labels: {app: web}
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
    pdbs: dict[str | None, list[PodMatcher]] = {}
    for pdb in cluster.by_kind("PodDisruptionBudget"):
        pdbs.setdefault(pdb.namespace, []).append(pdb_matcher(pdb))
    for kind in ("Deployment", "StatefulSet"):
        for obj in cluster.by_kind(kind):
            count, _ = min_replicas(obj, scalers)
            if count <= 1:
                continue
            labels = _mapping(obj.workload.pod_meta.get("labels")) if obj.workload else {}
            if any(selects(labels) for selects in pdbs.get(obj.namespace, ())):
                continue
            yield Violation(
                f"{kind} {obj.name} runs at least {count} replicas but no PodDisruptionBudget "
                "selects its pods; a drain may evict them all at once",
                path="spec.template.metadata.labels",
                subject=obj,
            )


@rule(
    id="KM-612",
    title="Pod without a priority class",
    severity=Severity.INFO,
    category=CATEGORY,
    scope="cluster",
    references=(PRIORITY_DOC,),
    remediation="Set `priorityClassName` to one of the cluster's PriorityClasses, or create "
    "a PriorityClass with `globalDefault: true`.",
    kinds=POD_KINDS,
)
def missing_priority_class(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags pod-bearing workloads that set no `priorityClassName`.

    ## What it does
    Reports every pod-bearing object whose pod spec has no `priorityClassName`, unless the
    input holds a PriorityClass with `globalDefault: true` (which then applies to such
    pods).

    ## Why is this bad?
    Without priorities, every pod has priority 0: under resource pressure the scheduler
    cannot preempt batch work for critical services, and eviction order ignores what
    matters.

    ## Example
    ```yaml
    spec:
      template:
        spec:
          containers: [...]
    ```

    ## Use instead
    ```yaml
    spec:
      template:
        spec:
          priorityClassName: business-critical
          containers: [...]
    ```

    ## References
    - https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/
    """
    if any(pc.manifest.get("globalDefault") is True for pc in cluster.by_kind("PriorityClass")):
        return
    for obj in cluster.workloads():
        w = obj.workload
        if w is not None and not w.spec.get("priorityClassName"):
            yield Violation(
                f"{obj.kind} {obj.name} sets no priorityClassName; its pods get priority 0",
                path=f"{w.spec_path}.priorityClassName",
                subject=obj,
            )
