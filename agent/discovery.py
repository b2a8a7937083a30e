"""Discovery of every served, listable resource type (preferred versions, CRDs included).

An included type that its group serves only at a non-preferred version (say `batch/v1beta1`
CronJobs on an old cluster) is looked up there (`add_fallback_types`); an include entry found
at no version is reported, never silently dropped.

Secrets are refused here by construction: a type whose resource is `secrets` or whose kind is
`Secret` never becomes a ResourceType, whatever the configuration asks for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.kube import KubeApi, KubeError
from contracts.wire import FORBIDDEN_KINDS

NEVER_COLLECTED_RESOURCES = frozenset({"secrets"})


@dataclass(frozen=True, slots=True, order=True)
class ResourceType:
    """One listable resource type at its preferred version."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def name(self) -> str:
        """`plural.group` (just `plural` for the core group), as kubectl spells types."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def list_path(self, namespace: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None and self.namespaced:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"

    def matches(self, names: Iterable[str]) -> bool:
        """Whether a configured name (plural, plural.group, kind or kind.group) means this type."""
        aliases = {self.plural, self.kind.lower()}
        if self.group:
            aliases |= {f"{self.plural}.{self.group}", f"{self.kind.lower()}.{self.group}"}
        return not aliases.isdisjoint(name.lower() for name in names)


def is_forbidden(*, plural: str, kind: str) -> bool:
    """Secrets (by resource name or kind, in any group) are never requested."""
    return plural in NEVER_COLLECTED_RESOURCES or kind in FORBIDDEN_KINDS


@dataclass
class Discovery:
    """The outcome of one discovery pass."""

    types: list[ResourceType] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    kubernetes_version: str = ""
    # Served but not kept: a kind another (preferred) group already serves.
    duplicates: list[ResourceType] = field(default_factory=list)
    # Group versions other than each group's preferred one, in the server's priority order.
    other_versions: list[tuple[str, str]] = field(default_factory=list)


def _is_builtin_group(group: str) -> bool:
    return "." not in group or group.endswith(".k8s.io")


def discover(api: KubeApi) -> Discovery:
    """List every served resource type that supports `list`, at its group's preferred version.

    A group whose discovery document fails (an aggregated API that is down, say) is skipped and
    reported. A kind served by two built-in groups (or sharing a storage version hash) is kept
    once: the first in the server's priority order, core group first.
    """
    result = Discovery()
    try:
        version = api.get("/version")
        result.kubernetes_version = str(version.get("gitVersion", ""))
    except KubeError as exc:
        result.errors["/version"] = str(exc)
    group_versions: list[tuple[str, str]] = []
    try:
        core = api.get("/api")
        if "v1" in core.get("versions", []):
            group_versions.append(("", "v1"))
    except KubeError as exc:
        result.errors["/api"] = str(exc)
    try:
        groups = api.get("/apis").get("groups", [])
    except KubeError as exc:
        result.errors["/apis"] = str(exc)
        groups = []
    group_versions.extend(_preferred_versions(groups, others=result.other_versions))

    seen_builtin_kinds: set[str] = set()
    seen_storage_hashes: set[str] = set()
    seen_types: set[tuple[str, str]] = set()
    for group_name, version_name in group_versions:
        path = f"/apis/{group_name}/{version_name}" if group_name else f"/api/{version_name}"
        try:
            listing = api.get(path)
        except KubeError as exc:
            result.errors[path] = str(exc)
            continue
        for resource in listing.get("resources", []):
            rtype = _resource_type(resource, group=group_name, version=version_name)
            if rtype is None or (rtype.group, rtype.kind) in seen_types:
                continue
            storage_hash = str(resource.get("storageVersionHash") or "")
            builtin = _is_builtin_group(group_name)
            if (builtin and rtype.kind in seen_builtin_kinds) or (
                storage_hash and storage_hash in seen_storage_hashes
            ):
                result.duplicates.append(rtype)
                continue
            if builtin:
                seen_builtin_kinds.add(rtype.kind)
            if storage_hash:
                seen_storage_hashes.add(storage_hash)
            seen_types.add((rtype.group, rtype.kind))
            result.types.append(rtype)
    return result


def _preferred_versions(groups: object, *, others: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(group, preferred version) of each well-formed group; other versions go to `others`."""
    preferred_versions = []
    for group in groups if isinstance(groups, list) else []:
        if not isinstance(group, dict) or not group.get("name"):
            continue
        preferred = group.get("preferredVersion") or (group.get("versions") or [{}])[0]
        version_name = preferred.get("version") if isinstance(preferred, dict) else None
        if version_name:
            preferred_versions.append((str(group["name"]), str(version_name)))
        for entry in group.get("versions") or []:
            other = entry.get("version") if isinstance(entry, dict) else None
            if other and other != version_name:
                others.append((str(group["name"]), str(other)))
    return preferred_versions


def _entry_group(name: str) -> str | None:
    """The group an include entry names (`cronjobs.batch` -> `batch`); None when it names none."""
    return name.split(".", 1)[1].lower() if "." in name else None


def add_fallback_types(api: KubeApi, found: Discovery, *, include: frozenset[str]) -> list[str]:
    """Add included types that their group serves only at a non-preferred version.

    Only entries that name their group (`cronjobs.batch`) are looked up in that group's other
    versions, in the server's priority order. Returns the include entries that discovery did
    not find at any version, sorted (reported as `details.unserved_types`).
    """
    served = [*found.types, *found.duplicates]
    missing = {
        name
        for name in include
        if not any(t.matches({name}) for t in served)
        and not is_forbidden(plural=name.split(".", 1)[0].lower(), kind="")
        and name.split(".", 1)[0].lower() != "secret"
    }
    wanted_groups = {_entry_group(name) for name in missing} - {None}
    builtin_kinds = {t.kind for t in served if _is_builtin_group(t.group)}
    for group_name, version_name in found.other_versions:
        if group_name not in wanted_groups or not missing:
            continue
        path = f"/apis/{group_name}/{version_name}"
        try:
            listing = api.get(path)
        except KubeError:
            continue  # an unreachable fallback leaves the entry reported as unserved
        for resource in listing.get("resources", []):
            rtype = _resource_type(resource, group=group_name, version=version_name)
            if rtype is None:
                continue
            hits = {name for name in missing if rtype.matches({name})}
            if not hits or (_is_builtin_group(rtype.group) and rtype.kind in builtin_kinds):
                continue
            found.types.append(rtype)
            if _is_builtin_group(rtype.group):
                builtin_kinds.add(rtype.kind)
            missing -= hits
    return sorted(missing)


def _resource_type(resource: object, *, group: str, version: str) -> ResourceType | None:
    if not isinstance(resource, dict):
        return None
    plural = str(resource.get("name", ""))
    kind = str(resource.get("kind", ""))
    verbs = resource.get("verbs") or []
    if not plural or not kind or "/" in plural or "list" not in verbs:
        return None
    if is_forbidden(plural=plural, kind=kind):
        return None
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=bool(resource.get("namespaced", False)),
    )


def select(
    types: Iterable[ResourceType], *, include: frozenset[str], exclude: frozenset[str]
) -> list[ResourceType]:
    """Types to collect: those included (all when `include` is empty) minus those excluded."""
    return [
        rtype
        for rtype in types
        if (not include or rtype.matches(include))
        and not rtype.matches(exclude)
        and not is_forbidden(plural=rtype.plural, kind=rtype.kind)
    ]
