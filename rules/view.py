"""Normalised, read-only views of manifests: ObjectView for any object, WorkloadView and
ContainerView for every pod-bearing kind, with the kubelet's securityContext precedence.

Views never copy the manifest: they hold references into it and compute JSON paths as text.
Rules must treat everything reachable from a view as read-only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any, TypeGuard

from contracts.images import ImageRef, parse_image
from contracts.resources import CLUSTER_SCOPED_KINDS, ResourceRef, object_namespace, resource_key
from rules.schema import SchemaProblem, validate

EMPTY: Mapping[str, Any] = {}
_UNPARSED: Any = object()  # ContainerView.image_ref not computed yet

# Where the pod spec lives in each pod-bearing kind: (path to pod metadata, path to pod spec).
POD_SPEC_LOCATIONS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Pod": (("metadata",), ("spec",)),
    "Deployment": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "StatefulSet": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "DaemonSet": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "ReplicaSet": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "ReplicationController": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    # OpenShift's apps.openshift.io/v1 DeploymentConfig keeps its pod template where a
    # Deployment does.
    "DeploymentConfig": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "Job": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "CronJob": (
        ("spec", "jobTemplate", "spec", "template", "metadata"),
        ("spec", "jobTemplate", "spec", "template", "spec"),
    ),
    "PodTemplate": (("template", "metadata"), ("template", "spec")),
}
POD_KINDS: frozenset[str] = frozenset(POD_SPEC_LOCATIONS)
# Where the pod template (the mapping holding the pod's `metadata` and `spec`) lives in each
# pod-bearing kind: the manifest itself for a Pod.
_TEMPLATE_KEYS: Mapping[str, tuple[str, ...]] = {
    kind: spec[:-1] for kind, (_meta, spec) in POD_SPEC_LOCATIONS.items()
}
assert all(  # every kind keeps its pod's metadata and spec side by side
    meta == (*_TEMPLATE_KEYS[kind], "metadata") and spec == (*_TEMPLATE_KEYS[kind], "spec")
    for kind, (meta, spec) in POD_SPEC_LOCATIONS.items()
)
# (pod metadata, pod spec, pod securityContext) paths of each pod-bearing kind, as text.
_JOINED_PATHS = {
    kind: (".".join(meta), ".".join(spec), ".".join((*spec, "securityContext")))
    for kind, (meta, spec) in POD_SPEC_LOCATIONS.items()
}

# Both of the above per kind, for `WorkloadView` (one look-up).
_LAYOUTS = {kind: (_TEMPLATE_KEYS[kind], _JOINED_PATHS[kind]) for kind in POD_SPEC_LOCATIONS}

# Container groups in the order the pod-security-admission visitor walks them.
CONTAINER_GROUPS = ("initContainers", "containers", "ephemeralContainers")

# securityContext fields a container inherits from the pod's when it does not set them
# (kubelet's DetermineEffectiveSecurityContext). `windowsOptions` merges field by field.
INHERITED_FIELDS = frozenset(
    {
        "runAsUser",
        "runAsGroup",
        "runAsNonRoot",
        "seLinuxOptions",
        "seccompProfile",
        "appArmorProfile",
    }
)
WINDOWS_OPTION_FIELDS = frozenset(
    {"gmsaCredentialSpecName", "gmsaCredentialSpec", "runAsUserName", "hostProcess"}
)


# Types of parsed JSON/YAML values that are not mappings: answered without the Mapping ABC's
# instance check (the usual `is_map` question is about an optional field that is null).
_SCALARS_AND_LISTS = frozenset({type(None), str, int, float, bool, list})


def is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """A mapping; parsed manifests hold plain dicts, so test that (cheap) before the ABC."""
    kind = type(value)
    if kind is dict:
        return True
    return kind not in _SCALARS_AND_LISTS and isinstance(value, Mapping)


def _dig(obj: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _mapping(value: Any) -> Mapping[str, Any]:
    # Manifests are parsed JSON/YAML: plain dicts. (isinstance on the Mapping ABC is several
    # times slower and this runs a dozen times per object.)
    return value if isinstance(value, dict) else EMPTY


def make_ref(manifest: Mapping[str, Any]) -> ResourceRef:
    """The ResourceRef of a manifest, tolerant of missing fields (never raises)."""
    meta = _mapping(manifest.get("metadata"))
    name = meta.get("name") or (f"{meta['generateName']}*" if meta.get("generateName") else "")
    kind = str(manifest.get("kind") or "")
    return ResourceRef(
        api_version=str(manifest.get("apiVersion") or ""),
        kind=kind,
        namespace=object_namespace(kind, meta.get("namespace")),
        name=str(name),
    )


class ObjectView:
    """One manifest as rules see it. `workload` is set for every pod-bearing kind.

    `namespace` is None for cluster-scoped kinds whatever the manifest says (the API server
    ignores a stray `metadata.namespace` there). `kubernetes_version` is the (major, minor)
    of the cluster the object is judged for and `policy_version` the Pod Security policy
    version that applies to it (the namespace's `enforce-version` pin, else the cluster's);
    both None mean "the newest release the catalogue knows" (`rules.psa.LATEST`). The engine
    sets them before rules run; rules read them through `rules.psa.policy_version(obj)`.
    """

    __slots__ = (
        "_key",
        "_problems",
        "_ref",
        "annotations",
        "api_version",
        "kind",
        "kubernetes_version",
        "labels",
        "manifest",
        "metadata",
        "name",
        "namespace",
        "policy_version",
        "spec",
        "workload",
    )

    def __init__(self, manifest: Mapping[str, Any]) -> None:
        # Built for every object of a scan: the `_mapping` and `object_namespace` steps are
        # written out here rather than called (same values).
        self.manifest = manifest
        kind = manifest.get("kind")
        kind = kind if type(kind) is str else str(kind or "")
        self.kind: str = kind
        api_version = manifest.get("apiVersion")
        self.api_version: str = api_version if type(api_version) is str else str(api_version or "")
        metadata = manifest.get("metadata")
        if not isinstance(metadata, dict):
            metadata = EMPTY
        self.metadata: Mapping[str, Any] = metadata
        name = metadata.get("name")
        self.name: str = name if type(name) is str else str(name or "")
        namespace = metadata.get("namespace")
        self.namespace: str | None = (
            None if not namespace or kind in CLUSTER_SCOPED_KINDS else str(namespace)
        )
        self.kubernetes_version: tuple[int, int] | None = None
        self.policy_version: tuple[int, int] | None = None
        self._problems: tuple[SchemaProblem, ...] | None = None
        labels = metadata.get("labels")
        self.labels: Mapping[str, str] = labels if isinstance(labels, dict) else EMPTY
        annotations = metadata.get("annotations")
        self.annotations: Mapping[str, str] = (
            annotations if isinstance(annotations, dict) else EMPTY
        )
        self._ref: ResourceRef | None = None
        self._key: str | None = None
        spec = manifest.get("spec")
        # `spec` as a mapping (empty when absent or not a mapping): rules read it often.
        self.spec: Mapping[str, Any] = spec if isinstance(spec, dict) else EMPTY
        self.workload: WorkloadView | None = (
            WorkloadView(manifest, kind) if kind in POD_SPEC_LOCATIONS else None
        )

    @property
    def problems(self) -> tuple[SchemaProblem, ...]:
        """Structural problems against the Kubernetes OpenAPI schema of its kind at the
        object's release (`rules.schema.validate`; computed once). Rules never see an
        object that has any: the engine reports it as `invalid` instead."""
        if self._problems is None:
            self._problems = validate(self.manifest, self.kubernetes_version)
        return self._problems

    def known_valid(self) -> None:
        """Record that the manifest has no structural problems, as a caller that validated
        the same body at the same release before knows (`problems` is then not computed)."""
        self._problems = ()

    @property
    def ref(self) -> ResourceRef:
        """apiVersion, kind, namespace and name (computed on first use)."""
        if self._ref is None:
            self._ref = ResourceRef(
                self.api_version,
                self.kind,
                self.namespace,
                self.name or make_ref(self.manifest).name,
            )
        return self._ref

    @property
    def key(self) -> str:
        """`ref.key`, without building the ref (computed on first use): a scan asks every
        object's key (controller dedup) and builds refs only for objects with findings."""
        key = self._key
        if key is None:
            ref = self._ref
            key = self._key = (
                ref.key
                if ref is not None
                else resource_key(
                    self.api_version,
                    self.kind,
                    self.namespace,
                    self.name or make_ref(self.manifest).name,
                )
            )
        return key

    def get(self, *keys: str) -> Any:
        """The value at a key path (None when any step is missing or not a mapping)."""
        return _dig(self.manifest, keys)

    def __repr__(self) -> str:
        return f"ObjectView({self.ref})"


class WorkloadView:
    """The pod template inside any pod-bearing object, with its containers unwrapped.

    `spec_path` is the JSON path of the pod spec inside the object (e.g.
    `spec.template.spec`, or `spec` for a Pod); every path a rule reports is built from it.
    A malformed object (no template) gives an empty pod spec and no containers.
    """

    __slots__ = (
        "_containers",
        "is_windows",
        "meta_path",
        "pod_meta",
        "pod_sc",
        "pod_sc_path",
        "spec",
        "spec_path",
    )

    def __init__(self, manifest: Mapping[str, Any], kind: str) -> None:
        keys, (self.meta_path, self.spec_path, self.pod_sc_path) = _LAYOUTS[kind]
        template: Any = manifest
        for key in keys:  # `_dig`, written out: built for every workload
            template = template.get(key) if isinstance(template, dict) else None
        if isinstance(template, dict):  # `_dig` of its metadata and of its spec, in one walk
            meta = template.get("metadata")  # (`_mapping`, written out)
            self.pod_meta: Mapping[str, Any] = meta if isinstance(meta, dict) else EMPTY
            spec = template.get("spec")
            if not isinstance(spec, dict):
                spec = EMPTY
        else:
            self.pod_meta = spec = EMPTY
        self.spec: Mapping[str, Any] = spec
        pod_sc = spec.get("securityContext")
        self.pod_sc: Mapping[str, Any] = pod_sc if isinstance(pod_sc, dict) else EMPTY
        os_field = spec.get("os")
        self.is_windows: bool = isinstance(os_field, dict) and os_field.get("name") == "windows"
        self._containers: tuple[ContainerView, ...] | None = None

    @property
    def containers(self) -> tuple[ContainerView, ...]:
        """initContainers, containers, then ephemeralContainers (the PSA visiting order),
        unwrapped on first use: a scan never asks for those of the objects controller dedup
        drops (a Deployment's ReplicaSets and Pods)."""
        found = self._containers
        if found is None:
            found = self._containers = self._unwrap()
        return found

    def _unwrap(self) -> tuple[ContainerView, ...]:
        spec = self.spec
        found: list[ContainerView] = []
        for group in CONTAINER_GROUPS:
            items = spec.get(group)
            if not isinstance(items, list):
                continue
            for index, raw in enumerate(items):
                if isinstance(raw, dict):
                    found.append(ContainerView(self, raw, group, index))
        return tuple(found)

    def spec_field(self, name: str) -> Any:
        return self.spec.get(name)

    def path(self, *parts: str | int) -> str:
        """JSON path under the pod spec: `path("volumes", 0, "hostPath")`."""
        return join_path(self.spec_path, *parts)

    @property
    def host_users(self) -> bool | None:
        """`spec.hostUsers`: False means the pod runs in its own user namespace."""
        value = self.spec.get("hostUsers")
        return value if isinstance(value, bool) else None

    @property
    def volumes(self) -> Iterator[tuple[int, Mapping[str, Any]]]:
        items = self.spec.get("volumes")
        if isinstance(items, list):
            for index, volume in enumerate(items):
                if isinstance(volume, dict):
                    yield index, volume

    @property
    def annotations(self) -> Mapping[str, str]:
        """The pod template's annotations (AppArmor/seccomp annotations live here)."""
        return _mapping(self.pod_meta.get("annotations"))


# (pod spec path, container group, index) -> (container path, its securityContext path).
_CONTAINER_PATHS: dict[tuple[str, str, int], tuple[str, str]] = {}
_MAX_CONTAINER_PATHS = 4096  # pods rarely have more than a few containers


# `parse_image` of the images a process sees (a cluster runs the same few images in many
# containers); ImageRef is immutable, so one instance serves every container naming it.
_parsed_image = functools.lru_cache(maxsize=4096)(parse_image)


class ContainerView:
    """One container of a workload, with its effective (kubelet) security settings."""

    __slots__ = (
        "_caps",
        "_image_ref",
        "group",
        "index",
        "name",
        "path",
        "pod_sc",
        "pod_sc_path",
        "raw",
        "sc",
        "sc_path",
    )

    def __init__(
        self, workload: WorkloadView, raw: Mapping[str, Any], group: str, index: int
    ) -> None:
        # The pod-level settings, not the workload itself: a reference back to the workload
        # (which holds its containers) would make every view a cycle, freed only by the
        # cyclic collector, which a scan pauses.
        self.pod_sc = workload.pod_sc
        self.pod_sc_path = workload.pod_sc_path
        self.raw = raw
        self.group = group
        self.index = index
        name = raw.get("name")
        self.name: str = name if type(name) is str and name else str(name or f"{group}[{index}]")
        # The same few paths for every workload of a kind: built once per process.
        place = (workload.spec_path, group, index)
        paths = _CONTAINER_PATHS.get(place)
        if paths is None:
            path = f"{workload.spec_path}.{group}[{index}]"
            paths = (path, f"{path}.securityContext")
            if len(_CONTAINER_PATHS) < _MAX_CONTAINER_PATHS:
                _CONTAINER_PATHS[place] = paths
        self.path, self.sc_path = paths
        sc = raw.get("securityContext")
        self.sc: Mapping[str, Any] = sc if isinstance(sc, dict) else EMPTY
        self._caps: dict[str, list[tuple[int, str]]] | None = None
        self._image_ref: ImageRef | None = _UNPARSED

    def field_path(self, *parts: str | int) -> str:
        return join_path(self.path, *parts)

    def effective(self, name: str) -> tuple[Any, str]:
        """(value, JSON path) of a securityContext field after kubelet precedence.

        Container-level settings win; the pod-level value applies only when the container
        does not set the field (for the inherited fields: runAsUser, runAsGroup, runAsNonRoot,
        seLinuxOptions, seccompProfile, appArmorProfile). When neither sets it, the value is
        None and the path is where the container should set it.
        """
        value = self.sc.get(name)
        if value is not None:
            return value, f"{self.sc_path}.{name}"
        if name in INHERITED_FIELDS:
            pod_value = self.pod_sc.get(name)
            if pod_value is not None:
                return pod_value, f"{self.pod_sc_path}.{name}"
        return None, f"{self.sc_path}.{name}"

    def effective_windows(self, name: str) -> tuple[Any, str]:
        """A `windowsOptions` field: merged field by field, container over pod."""
        value = _mapping(self.sc.get("windowsOptions")).get(name)
        if value is not None:
            return value, f"{self.sc_path}.windowsOptions.{name}"
        pod_value = _mapping(self.pod_sc.get("windowsOptions")).get(name)
        if pod_value is not None:
            return pod_value, f"{self.pod_sc_path}.windowsOptions.{name}"
        return None, f"{self.sc_path}.windowsOptions.{name}"

    @property
    def capabilities(self) -> Mapping[str, Any]:
        return _mapping(self.sc.get("capabilities"))

    def raw_capabilities(self, which: str) -> list[tuple[int, str]]:
        """(index, name) for `add` or `drop` exactly as written (Pod Security admission
        compares these names verbatim)."""
        declared = self.sc.get("capabilities")
        items = declared.get(which) if isinstance(declared, dict) else None
        if not isinstance(items, list):
            return []
        return [(i, c if isinstance(c, str) else str(c)) for i, c in enumerate(items)]

    def capability_list(self, which: str) -> list[tuple[int, str]]:
        """(index, CAPABILITY) for `add` or `drop`, upper-cased without a CAP_ prefix."""
        caps = self._caps
        if caps is None:
            caps = self._caps = {"add": [], "drop": []}
            declared = self.sc.get("capabilities")
            if isinstance(declared, dict):
                for key in ("add", "drop"):
                    items = declared.get(key)
                    if isinstance(items, list):
                        caps[key] = [
                            (i, str(c).upper().removeprefix("CAP_")) for i, c in enumerate(items)
                        ]
        return caps.get(which, [])

    @property
    def image(self) -> str:
        return str(self.raw.get("image") or "")

    @property
    def image_ref(self) -> ImageRef | None:
        """`image` parsed (`contracts.images.parse_image`), or None when it is empty or
        blank. Computed once: several rules read it."""
        ref = self._image_ref
        if ref is _UNPARSED:
            image = self.image.strip()
            ref = self._image_ref = _parsed_image(image) if image else None
        return ref

    @property
    def is_ephemeral(self) -> bool:
        return self.group == "ephemeralContainers"

    @property
    def is_init(self) -> bool:
        return self.group == "initContainers"

    def __repr__(self) -> str:
        return f"ContainerView({self.name!r} at {self.path})"


def join_path(base: str, *parts: str | int) -> str:
    """Append keys (`.key`) and list indexes (`[i]`) to a JSON path."""
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = part
    return out
