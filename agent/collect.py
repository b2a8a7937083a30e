"""Collection: list every selected type page by page, normalise and hash each object.

Memory stays bounded by one page of parsed JSON plus, per collected object, its canonical JSON
bytes and content hash (never the parsed model).
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agent.discovery import (
    Discovery,
    ResourceType,
    add_fallback_types,
    discover,
    is_forbidden,
    select,
)
from agent.kube import KubeApi, KubeError
from agent.normalise import normalise
from contracts.hashing import canonical_json
from contracts.resources import ResourceRef

MAX_LIST_RESTARTS = 3
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_GONE = 410


@dataclass(frozen=True, slots=True)
class Entry:
    """One collected object: its content hash and its canonical JSON, deflate-packed.

    Packing (zlib level 1, raw deflate) keeps a big cluster's bodies at about a quarter of
    their size between listing and pushing; `body` unpacks on demand.
    """

    content_hash: str
    packed: bytes

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> Entry:
        # contracts.hashing.content_hash is SHA-256 of canonical_json: hashing the bytes we keep
        # anyway serialises each object once instead of twice (tests hold the two equal).
        body = canonical_json(manifest)
        packer = zlib.compressobj(1, zlib.DEFLATED, -15)
        return cls(hashlib.sha256(body).hexdigest(), packer.compress(body) + packer.flush())

    @property
    def body(self) -> bytes:
        return unpack(self.packed)


def unpack(packed: bytes) -> bytes:
    """The canonical JSON bytes of a packed body."""
    return zlib.decompress(packed, -15)


FAILED = "failed"
FORBIDDEN = "forbidden"


@dataclass(frozen=True, slots=True)
class Gap:
    """A part of the cluster one collection could not list: its objects are unknown, not gone.

    `kind` empty means every kind of `api_version` (its discovery document failed); `namespace`
    empty means every namespace. `required` gaps make the collection incomplete whatever the
    agent holds: transient failures, and 403s on types the configuration names explicitly.
    """

    name: str
    reason: str
    api_version: str
    kind: str = ""
    namespace: str = ""
    required: bool = True

    def covers(self, key: str) -> bool:
        """Whether the object named by a reference key lies in this gap."""
        api_version, kind, namespace, _name = key.split("|", 3)
        return (
            api_version == self.api_version
            and (not self.kind or kind == self.kind)
            and (not self.namespace or namespace == self.namespace)
        )


@dataclass
class Collection:
    """The result of one collection pass over the cluster."""

    entries: dict[str, Entry] = field(default_factory=dict)
    object_counts: Counter[str] = field(default_factory=Counter)
    errors: dict[str, str] = field(default_factory=dict)
    forbidden: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    malformed: Counter[str] = field(default_factory=Counter)
    gaps: list[Gap] = field(default_factory=list)
    unserved_types: list[str] = field(default_factory=list)
    list_restarts: int = 0
    kubernetes_version: str = ""
    node_count: int | None = None
    namespace_count: int | None = None
    provider_ids: set[str] = field(default_factory=set)
    duration_s: float = 0.0

    @property
    def failed_kinds(self) -> frozenset[tuple[str, str]]:
        """(apiVersion, kind) of the types whose listing failed (not a 403) this round."""
        return frozenset(
            (g.api_version, g.kind) for g in self.gaps if g.reason == FAILED and g.kind
        )

    @property
    def failed_api_versions(self) -> frozenset[str]:
        """Group versions whose discovery document failed this round."""
        return frozenset(g.api_version for g in self.gaps if not g.kind)

    @property
    def not_collected(self) -> dict[str, str]:
        """Each gap's name and reason (`failed` or `forbidden`), for telemetry and logs."""
        return {g.name: g.reason for g in self.gaps}

    def hashes(self) -> dict[str, str]:
        return {key: entry.content_hash for key, entry in self.entries.items()}

    def failed(self, key: str) -> bool:
        """Whether the object named by `key` could not be listed this round (kept as it was)."""
        return any(gap.covers(key) for gap in self.gaps)

    def incomplete(self, held: Iterable[str] = ()) -> list[str]:
        """Names of the gaps that forbid a full snapshot: every required gap, and any other
        gap (a 403 on a type not named explicitly) that covers objects the agent holds."""
        optional = [g for g in self.gaps if not g.required]
        blocking = {g.name for g in self.gaps if g.required}
        for key in held if optional else ():
            blocking.update(g.name for g in optional if g.covers(key))
        return sorted(blocking)


@dataclass(frozen=True, kw_only=True)
class CollectOptions:
    include_types: frozenset[str] = frozenset()
    exclude_types: frozenset[str] = frozenset()
    include_namespaces: frozenset[str] = frozenset()
    exclude_namespaces: frozenset[str] = frozenset()
    page_size: int = 500


class CollectionFailed(RuntimeError):
    """The API server could not be enumerated at all; nothing may be pushed from this round."""


class _ListExpired(Exception):
    """A continue token went stale (410) too many times in a row."""


def list_pages(
    api: KubeApi, path: str, *, page_size: int, on_restart: Callable[[], None]
) -> Iterator[dict[str, Any]]:
    """Yield the items of a list, page by page; a 410 on a continue token restarts the list.

    `on_restart` is called before the items are yielded again from the start, so the caller can
    discard what it received from the expired list.
    """
    restarts = 0
    token: str | None = None
    while True:
        query = [("limit", str(page_size))]
        if token:
            query.append(("continue", token))
        try:
            page = api.get(path, query=query)
        except KubeError as exc:
            if exc.status == HTTP_GONE and token:
                restarts += 1
                if restarts > MAX_LIST_RESTARTS:
                    raise _ListExpired(path) from exc
                token = None
                on_restart()
                continue
            raise
        items = page.get("items") or []
        yield from items
        token = (page.get("metadata") or {}).get("continue") or None
        if not token:
            return


def _prepare(item: Any, rtype: ResourceType) -> dict[str, Any]:
    """Fill in apiVersion/kind (typed lists omit them on items); reject what has no identity."""
    if not isinstance(item, dict):
        raise ValueError("list item is not an object")
    meta = item.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ValueError("object has no metadata.name")
    if "apiVersion" not in item or "kind" not in item:
        item = {"apiVersion": rtype.api_version, "kind": rtype.kind, **item}
    return item


def collect(
    api: KubeApi,
    options: CollectOptions,
    *,
    discovery: Discovery | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Collection:
    """Discover, select and list every type; per-type failures are recorded, never fatal.

    Raises CollectionFailed when the core discovery documents cannot be read (pushing an empty
    state then would tell the server every object was deleted).
    """
    started = time.monotonic()
    found = discovery if discovery is not None else discover(api)
    if "/api" in found.errors or "/apis" in found.errors or not found.types:
        raise CollectionFailed("; ".join(f"{k}: {v}" for k, v in found.errors.items()) or "empty")
    result = Collection(kubernetes_version=found.kubernetes_version)
    result.errors.update({f"discovery {path}": msg for path, msg in found.errors.items()})
    for path in found.errors:
        if path.startswith(("/apis/", "/api/")):
            parts = path.strip("/").split("/")
            result.gaps.append(
                Gap(name=f"discovery {path}", reason=FAILED, api_version="/".join(parts[1:]))
            )
    result.unserved_types = add_fallback_types(api, found, include=options.include_types)
    selected = select(found.types, include=options.include_types, exclude=options.exclude_types)
    for rtype in selected:
        if should_stop is not None and should_stop():
            break
        _collect_type(api, rtype, options=options, into=result)
    for rtype in found.types:  # telemetry counts even when Nodes/Namespaces are not collected
        if not rtype.group and rtype.kind in ("Node", "Namespace") and rtype not in selected:
            _count_only(api, rtype, options=options, into=result)
    result.duration_s = time.monotonic() - started
    return result


def _count_only(
    api: KubeApi, rtype: ResourceType, *, options: CollectOptions, into: Collection
) -> None:
    """Count a type's objects (and note node provider ids) without keeping them."""
    count = 0

    def restart() -> None:
        nonlocal count
        count = 0

    try:
        for item in list_pages(
            api, rtype.list_path(), page_size=options.page_size, on_restart=restart
        ):
            count += 1
            if isinstance(item, dict):
                _observe(rtype, item, into)
    except (KubeError, _ListExpired):
        return  # counts are best effort: a 403 here just leaves them unknown
    if rtype.kind == "Node":
        into.node_count = count
    else:
        into.namespace_count = count


def _namespaces_to_list(rtype: ResourceType, options: CollectOptions) -> list[str | None]:
    if rtype.namespaced and options.include_namespaces:
        return [*sorted(options.include_namespaces - options.exclude_namespaces)]
    return [None]


def _collect_type(
    api: KubeApi, rtype: ResourceType, *, options: CollectOptions, into: Collection
) -> None:
    if is_forbidden(plural=rtype.plural, kind=rtype.kind):  # defence in depth
        return
    buffered: dict[str, Entry] = {}
    malformed = 0
    for namespace in _namespaces_to_list(rtype, options):
        path = rtype.list_path(namespace)
        prefix = f"{rtype.api_version}|{rtype.kind}|{namespace}|" if namespace else None

        def restart(prefix: str | None = prefix) -> None:
            into.list_restarts += 1
            for key in [k for k in buffered if prefix is None or k.startswith(prefix)]:
                del buffered[key]

        try:
            for item in list_pages(api, path, page_size=options.page_size, on_restart=restart):
                try:
                    obj = _prepare(item, rtype)
                    _observe(rtype, obj, into)
                    if rtype.namespaced and _namespace_excluded(obj, options):
                        continue
                    clean = normalise(obj)
                    key = ResourceRef.of(clean).key
                    entry = Entry.of(clean)
                except (ValueError, TypeError, KeyError, RecursionError):
                    malformed += 1
                    continue
                buffered[key] = entry
        except KubeError as exc:
            if exc.status == HTTP_FORBIDDEN:
                # Namespace by namespace, RBAC may allow some namespaces and not others. What
                # cannot be read is unknown, not empty: its last known objects are kept.
                where = f"{rtype.name} in {namespace}" if namespace else rtype.name
                into.forbidden.append(where)
                into.errors[where] = f"forbidden: {exc.message or exc.reason}"
                into.gaps.append(
                    _gap(rtype, where, FORBIDDEN, namespace=namespace, options=options)
                )
                if namespace:
                    continue
                return
            if exc.status == HTTP_NOT_FOUND:
                into.vanished.append(rtype.name)
                return
            into.errors[rtype.name] = str(exc)
            into.gaps.append(_gap(rtype, rtype.name, FAILED, options=options))
            return
        except _ListExpired:
            into.errors[rtype.name] = "continue token expired repeatedly"
            into.gaps.append(_gap(rtype, rtype.name, FAILED, options=options))
            return
    if malformed:
        into.malformed[rtype.name] += malformed
    into.entries.update(buffered)
    if buffered:
        into.object_counts[rtype.kind] += len(buffered)
    if not rtype.group and rtype.kind == "Node":
        into.node_count = len(buffered)
    elif not rtype.group and rtype.kind == "Namespace":
        into.namespace_count = len(buffered)


def _gap(
    rtype: ResourceType,
    name: str,
    reason: str,
    *,
    namespace: str | None = None,
    options: CollectOptions,
) -> Gap:
    # A 403 on a type the configuration names is a gap in what the agent must hold; with no
    # include list a 403 on a type the agent never held is simply out of its view.
    return Gap(
        name=name,
        reason=reason,
        api_version=rtype.api_version,
        kind=rtype.kind,
        namespace=namespace or "",
        required=reason == FAILED or bool(options.include_types),
    )


def _namespace_excluded(obj: dict[str, Any], options: CollectOptions) -> bool:
    namespace = (obj.get("metadata") or {}).get("namespace")
    if options.include_namespaces and namespace not in options.include_namespaces:
        return True
    return namespace in options.exclude_namespaces


def _observe(rtype: ResourceType, obj: dict[str, Any], into: Collection) -> None:
    """Telemetry facts seen in passing: the provider id schemes of nodes (`aws://`, ...)."""
    if not rtype.group and rtype.kind == "Node":
        provider = (obj.get("spec") or {}).get("providerID")
        if isinstance(provider, str) and "://" in provider:
            into.provider_ids.add(provider.split("://", 1)[0] + "://")
