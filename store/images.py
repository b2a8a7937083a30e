"""Every container image in the fleet's workloads, each counted once per workload.

A workload is the top of an object's controller chain: a Pod owned by a ReplicaSet owned by
a Deployment, the ReplicaSets and the Deployment's own pod template all belong to the one
Deployment, so its image counts once (not once per Pod and ReplicaSet revision). Images come
from `containers`, `initContainers` and `ephemeralContainers` of Pods and of the pod template
of every workload kind, including a CronJob's `jobTemplate`.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, delete, exists, func, literal, select, text, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from contracts.images import ImageRef, VersionError, digest_of, parse_image, parse_version
from contracts.resources import ResourceRef
from contracts.states import SnapshotState
from store.bulk import affected, chunked, dialect_insert, table_of
from store.db import on_postgresql
from store.image_index import image_occurrences, quoted
from store.manifests import current_manifests
from store.models import (
    Cluster,
    KubeObject,
    ManifestBody,
    ManifestVersion,
    RuleResultCache,
    Snapshot,
)
from store.rule_cache import (
    INVENTORY_CACHE,
    cluster_inventory_key,
    inventory_row_of,
    inventory_version,
)
from store.search import SearchTimeout
from store.types import CachedJson, UtcDateTime, utcnow

# kind -> where its pod spec is
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
MAX_OWNER_DEPTH = 8

# (cluster, namespace, kind, name)
Key = tuple[str, str | None, str, str]


@dataclass(slots=True)
class FleetImage:
    image: str
    workloads: set[Key] = field(default_factory=set)

    @property
    def clusters(self) -> list[str]:
        return sorted({w[0] for w in self.workloads})

    def as_json(self) -> dict[str, Any]:
        ref = parse_image(self.image)
        return {
            "image": self.image,
            "repository": ref.repository,
            "tag": ref.tag,
            "digest": ref.digest,
            "workloads": len(self.workloads),
            "clusters": self.clusters,
            "cluster_count": len(self.clusters),
            "kinds": sorted({w[2] for w in self.workloads}),
        }


def _dig(body: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


# kind -> the shapes (store.image_index) of its pod spec's container images
POD_SPEC_SHAPES: dict[str, frozenset[str]] = {
    kind: frozenset(
        "".join(quoted(part) for part in (*path, group)) + "[]" + quoted("image")
        for group in CONTAINER_LISTS
    )
    for kind, path in POD_SPEC_PATHS.items()
}


def pod_spec_images(kind: str, body: dict[str, Any]) -> set[str]:
    """The images of every container kind in the object's pod spec (empty: not a workload):
    the body's image members (`store.image_index`, the one extraction) at its pod spec's
    container lists."""
    shapes = POD_SPEC_SHAPES.get(kind)
    if shapes is None:
        return set()
    return {
        value
        for shape, value in image_occurrences(body, jsonb_order=False)
        if shape in shapes and isinstance(value, str) and value
    }


def _controller(body: dict[str, Any]) -> tuple[str, str] | None:
    metadata = body.get("metadata") or {}
    refs = metadata.get("ownerReferences") if isinstance(metadata, dict) else None
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, dict) and ref.get("controller") and ref.get("kind") and ref.get("name"):
            return str(ref["kind"]), str(ref["name"])
    return None


def _infer_deployment(owner: tuple[str, str], body: dict[str, Any]) -> tuple[str, str]:
    """A Pod's ReplicaSet that is not stored: its Deployment from the pod-template-hash."""
    kind, name = owner
    labels = (body.get("metadata") or {}).get("labels") or {}
    suffix = labels.get("pod-template-hash") if isinstance(labels, dict) else None
    if kind == "ReplicaSet" and isinstance(suffix, str) and name.endswith(f"-{suffix}"):
        return "Deployment", name.removesuffix(f"-{suffix}")
    return owner


Row = tuple[str, ResourceRef, dict[str, Any], set[str]]  # cluster, ref, metadata, images


def _python_rows(session: Session, kind: str, cluster_id: str | None) -> Iterator[Row]:
    for manifest in current_manifests(session, cluster_id=cluster_id, kind=kind):
        body = manifest.body if isinstance(manifest.body, dict) else {}
        metadata = body.get("metadata")
        images = pod_spec_images(kind, body)
        yield (
            manifest.cluster_id,
            manifest.ref,
            metadata if isinstance(metadata, dict) else {},
            images,
        )


def _postgres_rows(session: Session, kind: str, cluster_id: str | None) -> Iterator[Row]:
    """Only what the listing needs leaves the database: owner references, the
    pod-template-hash label and the images (not whole manifests)."""
    spec = "$." + ".".join(POD_SPEC_PATHS[kind])
    paths = {f"p{i}": f"lax {spec}.{name}[*].image" for i, name in enumerate(CONTAINER_LISTS)}
    images = " || ".join(
        f"jsonb_path_query_array(b.body, CAST(:{key} AS jsonpath))" for key in paths
    )
    where = "o.deleted_at IS NULL AND o.kind = :kind"
    if cluster_id is not None:
        where += " AND o.cluster_id = :cluster_id"
    sql = f"""
        SELECT o.cluster_id, o.ref_key,
               jsonb_build_object(
                   'ownerReferences', b.body #> '{{metadata,ownerReferences}}',
                   'labels', jsonb_build_object(
                       'pod-template-hash', b.body #> '{{metadata,labels,pod-template-hash}}')),
               {images}
        FROM objects o JOIN manifest_bodies b ON b.content_hash = o.current_hash
        WHERE {where}
    """  # noqa: S608 - only fixed text is interpolated; every value is bound
    # A server-side cursor, planned (unlike `store.bulk.streamed_rows`) for its first tenth
    # of rows (`cursor_tuple_fraction` 0.1); planning it for every row would not help. On
    # the fleet-scale bench's database: one cluster, the same plan either way (its objects by
    # index, each current body by primary key). Fleet-wide at 50 clusters (350,000
    # Deployments, 1,700,000 bodies), 0.1 gives that nested loop (15.5-16 s) and 1 a hash
    # join that scans every stored body (every version's) and spills to temp files (19-30 s,
    # 2 GB), interleaved at load 9; at 250 clusters (8,500,000 bodies) the planner chooses
    # that hash join under either (a known cost of the fleet-wide read at fleet size).
    statement = text(sql).execution_options(stream_results=True, yield_per=2000)
    result = session.execute(statement, {**paths, "kind": kind, "cluster_id": cluster_id})
    for cid, key, metadata, found in result:
        yield (
            cid,
            ResourceRef.from_key(key),
            metadata,
            {i for i in found if isinstance(i, str) and i},
        )


def fleet_images(
    session: Session,
    *,
    timeout_seconds: float,
    cluster_ids: Sequence[str] | None = None,
    limit: int = 10_000,
) -> tuple[list[FleetImage], bool]:
    """Images ordered by how many workloads run them (then by name), and whether `limit` cut.

    Runs under the search time limit (raises `SearchTimeout` past it), checked between rows.
    """
    deadline = time.monotonic() + timeout_seconds
    wanted = set(cluster_ids or ())
    owners: dict[Key, Key] = {}
    uses: list[tuple[Key, set[str]]] = []
    one = next(iter(wanted)) if len(wanted) == 1 else None
    rows = _postgres_rows if on_postgresql(session) else _python_rows
    for kind in POD_SPEC_PATHS:
        for cluster_id, ref, metadata, images in rows(session, kind, one):
            if time.monotonic() > deadline:
                raise SearchTimeout(timeout_seconds)
            if wanted and cluster_id not in wanted:
                continue
            key: Key = (cluster_id, ref.namespace, ref.kind, ref.name)
            body = {"metadata": metadata}
            owner = _controller(body)
            if owner is not None:
                owner = _infer_deployment(owner, body)
                owners[key] = (cluster_id, ref.namespace, owner[0], owner[1])
            if images:
                uses.append((key, images))
    found: dict[str, FleetImage] = {}
    for key, images in uses:
        top = key
        for _ in range(MAX_OWNER_DEPTH):
            parent = owners.get(top)
            if parent is None:
                break
            top = parent
            if top not in owners:
                break
        for image in images:
            found.setdefault(image, FleetImage(image)).workloads.add(top)
    ordered = sorted(found.values(), key=lambda i: (-len(i.workloads), i.image))
    return ordered[:limit], len(ordered) > limit


# -- the running-image inventory (fleet rules, `k8smon images --workloads`) -----------------
@dataclass(frozen=True, slots=True)
class ImageUse:
    """One container of one workload and the image it runs, with the digests its Pods report
    and since when the workload has run that image without interruption (stored history)."""

    cluster_id: str
    workload: ResourceRef
    container: str
    path: str
    image: str
    digests: tuple[str, ...] = ()
    since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        ref = parse_image(self.image)
        try:
            version: str | None = str(parse_version(ref.tag))
            problem = None
        except VersionError as refused:
            version, problem = None, str(refused)
        return {
            "image": self.image,
            "repository": ref.repository,
            "tag": ref.tag,
            "digest": ref.digest or (self.digests[0] if len(self.digests) == 1 else None),
            "digests": list(self.digests),
            "version": version,
            "version_error": problem,
            "cluster_id": self.cluster_id,
            "namespace": self.workload.namespace,
            "kind": self.workload.kind,
            "name": self.workload.name,
            "api_version": self.workload.api_version,
            "container": self.container,
            "path": self.path,
            "since": self.since.isoformat() if self.since else None,
        }


@functools.lru_cache(maxsize=4096)
def image_ref(image: str) -> ImageRef:
    """`parse_image(image)`, each image parsed once a process (the last 4,096 kept): a fleet
    runs few distinct images, each in many containers (`ImageRef` is immutable)."""
    return parse_image(image)


@dataclass(slots=True)
class _Row:
    object_id: int
    cluster_id: str
    ref: ResourceRef
    owner: tuple[str, str, str] | None  # apiVersion, kind, name
    containers: list[tuple[str, int, str, str]]  # group, index, name, image
    statuses: dict[str, str]  # container name -> digest (Pods)


def _owner(metadata: Any) -> tuple[str, str, str] | None:
    refs = metadata.get("ownerReferences") if isinstance(metadata, dict) else None
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, dict) and ref.get("controller") and ref.get("kind") and ref.get("name"):
            return str(ref.get("apiVersion") or ""), str(ref["kind"]), str(ref["name"])
    return None


def _containers(kind: str, body: Any) -> list[tuple[str, int, str, str]]:
    spec = _dig(body, POD_SPEC_PATHS.get(kind, ("-",)))
    found: list[tuple[str, int, str, str]] = []
    if not isinstance(spec, dict):
        return found
    for group in CONTAINER_LISTS:
        entries = spec.get(group)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict) and isinstance(entry.get("image"), str) and entry["image"]:
                name = entry.get("name")
                found.append((group, index, name if isinstance(name, str) else "", entry["image"]))
    return found


def _status_digests(statuses: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in statuses if isinstance(statuses, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            digest = digest_of(entry.get("imageID"))
            if digest:
                found[entry["name"]] = digest
    return found


def _body_row(object_id: int, cluster_id: str, ref: ResourceRef, body: Any) -> _Row:
    """The inventory row of a stored object of a kind with a pod spec, from its body (what
    `_postgres_row` makes of the columns `_inventory_columns` extracts)."""
    body = body if isinstance(body, dict) else {}
    status = body.get("status") if ref.kind == "Pod" else None
    statuses: list[Any] = []
    if isinstance(status, dict):
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            value = status.get(key)
            statuses += value if isinstance(value, list) else []
    return _Row(
        object_id,
        cluster_id,
        ref,
        _owner(body.get("metadata")),
        _containers(ref.kind, body),
        _status_digests(statuses),
    )


def _python_inventory_rows(session: Session, kind: str, cluster_id: str | None) -> Iterator[_Row]:
    for manifest in current_manifests(session, cluster_id=cluster_id, kind=kind):
        yield _body_row(manifest.object_id, manifest.cluster_id, manifest.ref, manifest.body)


def _pg_array(path: str) -> str:
    """SQL: the JSON array at `path` of b.body, or [] when it is absent or not an array."""
    return (
        f"CASE WHEN jsonb_typeof(b.body #> '{{{path}}}') = 'array' "
        f"THEN b.body #> '{{{path}}}' ELSE '[]'::jsonb END"
    )


def _inventory_columns(kind: str) -> str:
    """SQL: the owner references, the containers (group, index, name, image) and, of Pods,
    the status image ids of `b.body`, an object of `kind`."""
    spec = ",".join(POD_SPEC_PATHS[kind])
    lists = []
    for group in CONTAINER_LISTS:
        lists.append(
            f"""(SELECT coalesce(jsonb_agg(jsonb_build_array('{group}', c.n - 1,
                        c.value -> 'name', c.value -> 'image')), '[]'::jsonb)
                 FROM jsonb_array_elements({_pg_array(f"{spec},{group}")})
                      WITH ORDINALITY AS c(value, n))"""  # noqa: S608 - fixed text
        )
    statuses = "'[]'::jsonb"
    if kind == "Pod":
        statuses = " || ".join(
            f"""(SELECT coalesce(jsonb_agg(jsonb_build_object('name', s.value -> 'name',
                        'imageID', s.value -> 'imageID')), '[]'::jsonb)
                 FROM jsonb_array_elements({_pg_array(f"status,{key}")}) AS s(value))"""  # noqa: S608
            for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses")
        )
    return f"""b.body #> '{{metadata,ownerReferences}}' AS owners,
               {" || ".join(lists)} AS containers,
               {statuses} AS found"""


def _postgres_row(oid: int, cid: str, key: str, owners: Any, containers: Any, found: Any) -> _Row:
    return _Row(
        oid,
        cid,
        ResourceRef.from_key(key),
        _owner({"ownerReferences": owners}),
        [
            (g, int(i), n if isinstance(n, str) else "", img)
            for g, i, n, img in containers
            if isinstance(img, str) and img
        ],
        _status_digests(found),
    )


def _postgres_inventory_rows(session: Session, kind: str, cluster_id: str | None) -> Iterator[_Row]:
    """Only owner references, container names and images and (Pods) status image ids leave
    the database, never whole manifests."""
    where = "o.deleted_at IS NULL AND o.kind = :kind"
    if cluster_id is not None:
        where += " AND o.cluster_id = :cluster_id"
    sql = f"""
        SELECT o.id, o.cluster_id, o.ref_key, {_inventory_columns(kind)}
        FROM objects o JOIN manifest_bodies b ON b.content_hash = o.current_hash
        WHERE {where}
    """  # noqa: S608 - only fixed text is interpolated; every value is bound
    # Planned for its first rows, as `_postgres_rows` (whose comment says why).
    statement = text(sql).execution_options(stream_results=True, yield_per=2000)
    for row in session.execute(statement, {"kind": kind, "cluster_id": cluster_id}):
        yield _postgres_row(*row)


# -- one cluster's inventory rows, cached per cluster state --------------------------------
def _postgres_cluster_rows(session: Session, cluster_id: str) -> tuple[str | None, list[_Row]]:
    """The cluster's state digest and its inventory rows (kind by kind, in object id order),
    read by one statement, so that the rows are those of the state the digest names."""
    # Each body is detoasted once, by the subquery (`|| '{}'`: an object itself, and for
    # anything else every column is empty either way, each path starting with a member
    # name): `_inventory_columns` refers to the body up to 13 times, and each reference to a
    # stored (TOASTed) body fetched and decompressed it again (a Pod's, over 2 kB, is stored
    # so). On the pipeline bench's data: half the buffer reads, a fifth less PostgreSQL CPU.
    parts = [
        f"""SELECT {index} AS k, b.id, b.ref_key, {_inventory_columns(kind)}
            FROM (SELECT o.id, o.ref_key, m.body || '{{}}'::jsonb AS body
                  FROM objects o JOIN manifest_bodies m ON m.content_hash = o.current_hash
                  WHERE o.cluster_id = c.id AND o.deleted_at IS NULL AND o.kind = :kind{index}
                  OFFSET 0) b"""  # noqa: S608
        for index, kind in enumerate(POD_SPEC_PATHS)
    ]
    sql = f"""
        SELECT c.current_digest, r.k, r.id, r.ref_key, r.owners, r.containers, r.found
        FROM clusters c LEFT JOIN LATERAL ({" UNION ALL ".join(parts)}) r ON true
        WHERE c.id = :cluster_id
        ORDER BY r.k, r.id
    """  # noqa: S608 - only fixed text is interpolated; every value is bound
    params = {f"kind{index}": kind for index, kind in enumerate(POD_SPEC_PATHS)}
    digest: str | None = None
    rows: list[_Row] = []
    for found_digest, k, oid, key, owners, containers, found in session.execute(
        text(sql), {**params, "cluster_id": cluster_id}
    ):
        digest = found_digest
        if k is not None:
            rows.append(_postgres_row(oid, cluster_id, key, owners, containers, found))
    return digest, rows


def _python_cluster_rows(session: Session, cluster_id: str) -> tuple[str | None, list[_Row]]:
    """`_postgres_cluster_rows` by reading the bodies (SQLite); the digest is None (the rows
    are not cached) when the state changed while they were read."""
    digest = session.scalar(select(Cluster.current_digest).where(Cluster.id == cluster_id))
    rows = [
        row for kind in POD_SPEC_PATHS for row in _python_inventory_rows(session, kind, cluster_id)
    ]
    after = session.scalar(select(Cluster.current_digest).where(Cluster.id == cluster_id))
    return (digest if digest == after else None), rows


def cache_cluster_inventory(
    session: Session,
    cluster_id: str,
    *,
    state: InventoryState,
    objects: Iterable[tuple[int, ResourceRef, Any]],
    timeout_seconds: float,
) -> None:
    """Cache the cluster's uses in the state `state` (a digest, reached by applying a
    snapshot), with their since values (`_store_uses`, under the search time limit), from its live
    objects' (id, ref, body) in that state, in object id order: what a scan that decoded
    every body has in hand, so that the fleet evaluation after it finds them cached instead
    of reading the bodies again (`cached_inventory_uses`, whose rows these are: kind by
    kind, by id). Nothing is written unless the cluster is still in that state when the row
    is (`InventoryState`)."""
    order = {kind: n for n, kind in enumerate(POD_SPEC_PATHS)}
    rows = sorted(
        (
            (order[ref.kind], _body_row(object_id, cluster_id, ref, body))
            for object_id, ref, body in objects
            if ref.kind in order
        ),
        key=lambda ranked: ranked[0],  # stable: by id within a kind
    )
    fleet = _Fleet()
    for _rank, row in rows:
        fleet.add(row)
    _store_uses(
        session,
        cluster_id,
        state,
        fleet.uses(),
        deadline=time.monotonic() + timeout_seconds,
        timeout_seconds=timeout_seconds,
    )


@dataclass(frozen=True, slots=True)
class InventoryState:
    """The state a cluster's cached uses are of: its digest, and the snapshot whose applying
    made it the cluster's (the history their since values read is the one up to it)."""

    digest: str
    snapshot_id: int

    def key(self, cluster_id: str) -> str:
        """The uses' cache key (`cluster_inventory_key`)."""
        return cluster_inventory_key(cluster_id, self.digest, snapshot_id=self.snapshot_id)

    def still_current(self, cluster_id: str) -> ColumnElement[bool]:
        """The condition that the cluster is still in this state: a row of the uses is
        written under it, by the statement that writes it (one round trip, and no state
        applied between a check and the write)."""
        return exists().where(
            Cluster.id == cluster_id,
            Cluster.current_digest == self.digest,
            Cluster.current_snapshot_id == self.snapshot_id,
        )


@dataclass(frozen=True, slots=True)
class CarriedState:
    """What `carry_cluster_inventory` carries a cluster's cached uses over between: the
    state before (`before`, its digest), the version watermark up to which the changed
    objects' versions were those of that state, and the new state."""

    before: str
    watermark: int
    state: InventoryState


# A cluster's uses (`_Fleet.uses` of its rows alone: a workload's controller chain never
# leaves its cluster, so the fleet's uses are the union of its clusters'), by (workload,
# container, image): its ref, image path, objects and digests.
Uses = dict[tuple[Key, str, str], dict[str, Any]]


def _use_order(use: ImageUse) -> tuple[str, str, str, str]:
    return use.cluster_id, use.workload.key, use.container, use.image


def _built(uses: Uses, history: _History) -> list[ImageUse]:
    """The uses as `ImageUse`s, each since the earliest start of its objects' runs, in
    (cluster, workload key, container, image) order."""
    since = history.since
    found = []
    for (top, name, image), entry in uses.items():
        starts = [since[(o, image)] for o in entry["objects"] if (o, image) in since]
        found.append(
            ImageUse(
                top[0],
                entry["ref"],
                name,
                entry["path"],
                image,
                tuple(sorted(entry["digests"])),
                min(starts) if starts else None,
            )
        )
    found.sort(key=_use_order)
    return found


def _history_wanted(uses: Uses) -> dict[int, set[str]]:
    """object id -> the images whose since `_since` must find."""
    wanted: dict[int, set[str]] = {}
    for (_top, _name, image), entry in uses.items():
        for object_id in entry["objects"]:
            wanted.setdefault(object_id, set()).add(image)
    return wanted


# The stored form of a cluster's `ImageUse`s (`rule_result_cache`, `INVENTORY_CACHE`): the
# workloads once each (`refs`: apiVersion, kind, namespace, name), every other text once
# (`texts`: containers, paths, images, digests, since values in ISO 8601), and each use, in
# `_use_order`, as [ref, container, path, image, [digest, ...], since or null], by index;
# the versions the since values rest on (`_History.watched`); and the objects whose history
# they read (`read`: `_history_wanted`'s, for `carry_cluster_inventory`). A fleet's uses share few
# texts: half the size of writing them out, each decoded once.
def _encoded(
    uses: list[ImageUse], watched: Collection[int], read: Collection[int]
) -> list[dict[str, Any]]:
    refs: dict[ResourceRef, int] = {}
    texts: dict[str, int] = {}
    rows = []
    for use in uses:
        since = None
        if use.since is not None:
            since = texts.setdefault(use.since.isoformat(), len(texts))
        rows.append(
            [
                refs.setdefault(use.workload, len(refs)),
                texts.setdefault(use.container, len(texts)),
                texts.setdefault(use.path, len(texts)),
                texts.setdefault(use.image, len(texts)),
                [texts.setdefault(d, len(texts)) for d in use.digests],
                since,
            ]
        )
    return [
        {
            "refs": [[r.api_version, r.kind, r.namespace, r.name] for r in refs],
            "texts": list(texts),
            "uses": rows,
            "watched": sorted(watched),
            "read": sorted(read),
        }
    ]


def uses_digest(stored: list[dict[str, Any]]) -> str:
    """The digest of the uses a stored form holds (their workloads, texts and uses, not the
    history bookkeeping): equal uses, equal digest. An inventory row keeps it in its
    `uses_digest` column, which a fleet evaluation compares without reading the rows."""
    part = stored[0]
    encoded = orjson.dumps([part["refs"], part["texts"], part["uses"]])
    return hashlib.sha256(encoded).hexdigest()


# The digest of the uses of a cluster no snapshot was applied to yet: it has no objects, so
# none (an agent registered but not pushed yet leaves the fleet's inputs comparable).
UNPUSHED = "unpushed"


@dataclass(frozen=True, slots=True)
class ClusterUses:
    """One cluster's uses (in `_use_order`) and the digest of them (`uses_digest`) its row
    holds: None when they were not cached (its state moved on while they were worked out)."""

    cluster_id: str
    uses: list[ImageUse]
    digest: str | None


def _decoded(cluster_id: str, stored: list[dict[str, Any]]) -> list[ImageUse]:
    part = stored[0]
    refs = [ResourceRef(*fields) for fields in part["refs"]]
    texts: list[str] = part["texts"]
    moments: dict[int, datetime] = {}
    found = []
    for ref, container, path, image, digests, since in part["uses"]:
        moment = None
        if since is not None:
            moment = moments.get(since)
            if moment is None:
                moment = moments[since] = datetime.fromisoformat(texts[since])
        found.append(
            ImageUse(
                cluster_id,
                refs[ref],
                texts[container],
                texts[path],
                texts[image],
                tuple([texts[d] for d in digests]) if digests else (),
                moment,
            )
        )
    return found


def _watched(stored: list[dict[str, Any]]) -> list[int]:
    watched: list[int] = stored[0]["watched"]
    return watched


def _purged(session: Session, watched: dict[str, list[int]]) -> set[str]:
    """The clusters (of `watched`: cluster -> version ids) some of whose versions are no
    longer stored."""
    stored = _stored_versions(session, sorted({v for ids in watched.values() for v in ids}))
    return {cid for cid, ids in watched.items() if not stored.keys() >= set(ids)}


def cached_inventory_uses(
    session: Session, cluster_ids: Sequence[str], *, deadline: float, timeout_seconds: float
) -> Iterator[ClusterUses]:
    """The `ImageUse`s of the given clusters, cluster by cluster in id order (each in
    `_use_order`, with their digest): a cluster's are worked out from its bodies and its
    history once and cached (`rule_result_cache`, one row per cluster), so that a fleet
    evaluation after a few clusters changed reads only theirs and decodes the others'.

    The uses are a function of the state: the objects' ids, ref keys and bodies, which a
    state digest fixes (an object's identity includes its uid, which its body holds). Their
    since values are a function of the stored history, which changes in two ways only:
    applying a snapshot writes versions (and makes it the cluster's current snapshot: a state
    that comes back, A -> B -> A, has its digest again but not its snapshot), and the
    retention purge deletes old ones. So a cluster's row is keyed by its digest and current
    snapshot, and read only while every version its since values rest on (`_History.watched`)
    is still stored; when the purge deleted one, the cluster is worked out again, and its
    since values are what the remaining history says (a run whose first versions were
    purged starts at its oldest stored version), as `image_uses` without the cache gives."""
    ids = sorted(set(cluster_ids))
    states = _current_states(session, ids)
    cached_states = _cacheable(states)
    keys = {cid: state.key(cid) for cid, state in cached_states.items()}
    cached = {
        key: (results, digest)
        for key, results, digest in _inventory_rows(
            session, keys.values(), RuleResultCache.results, RuleResultCache.uses_digest
        )
    }
    hits = {cid: cached[key] for cid, key in keys.items() if key in cached}
    for cluster_id in _purged(session, {cid: _watched(s) for cid, (s, _d) in hits.items()}):
        del hits[cluster_id]
    read = _postgres_cluster_rows if on_postgresql(session) else _python_cluster_rows
    for cluster_id in ids:
        if time.monotonic() > deadline:
            raise SearchTimeout(timeout_seconds)
        if cluster_id in hits:
            stored, digest = hits[cluster_id]
            yield ClusterUses(cluster_id, _decoded(cluster_id, stored), digest)
            continue
        if states.get(cluster_id, (None, None))[0] is None:
            yield ClusterUses(cluster_id, [], UNPUSHED)  # no state: no objects to read
            continue
        digest, rows = read(session, cluster_id)
        fleet = _Fleet()
        for row in rows:
            fleet.add(row)
        yield _store_uses(
            session,
            cluster_id,
            cached_states.get(cluster_id) if digest == states[cluster_id][0] else None,
            fleet.uses(),
            deadline=deadline,
            timeout_seconds=timeout_seconds,
        )


def inventory_digests(session: Session, cluster_ids: Sequence[str]) -> dict[str, str]:
    """The digest of the uses (`uses_digest`) of each of these clusters whose current state
    has its row cached, without reading the rows (`UNPUSHED` for one without a state yet).
    Whether the versions its since values rest on are all still stored is not checked here:
    the purge moves the history epoch (`store.fleet_state`) instead."""
    current = _current_states(session, sorted(set(cluster_ids)))
    clusters = {state.key(cid): cid for cid, state in _cacheable(current).items()}
    found = {cid: UNPUSHED for cid, (digest, _snapshot) in current.items() if digest is None}
    for key, digest in _inventory_rows(session, clusters, RuleResultCache.uses_digest):
        if digest is not None:
            found[clusters[key]] = digest
    return found


def _current_states(
    session: Session, ids: Sequence[str]
) -> dict[str, tuple[str | None, int | None]]:
    """Each cluster's current state digest and snapshot id."""
    states: dict[str, tuple[str | None, int | None]] = {}
    for batch in chunked(ids):
        for cid, digest, snapshot in session.execute(
            select(Cluster.id, Cluster.current_digest, Cluster.current_snapshot_id).where(
                Cluster.id.in_(batch)
            )
        ):
            states[cid] = (digest, snapshot)
    return states


def _cacheable(states: Mapping[str, tuple[str | None, int | None]]) -> dict[str, InventoryState]:
    """The states a cluster's uses can be cached in (reached by applying a snapshot)."""
    return {
        cid: InventoryState(digest, snapshot)
        for cid, (digest, snapshot) in states.items()
        if digest and snapshot is not None
    }


def _inventory_rows(
    session: Session, keys: Iterable[str], *columns: InstrumentedAttribute[Any]
) -> Iterator[tuple[Any, ...]]:
    """(key, *columns) of the inventory rows of these keys."""
    for batch in chunked(sorted(keys)):
        rows = session.execute(
            select(RuleResultCache.content_hash, *columns).where(
                RuleResultCache.content_hash.in_(batch),
                RuleResultCache.catalogue_version.startswith(INVENTORY_CACHE),
            )
        )
        yield from (tuple(row) for row in rows)


def _store_uses(
    session: Session,
    cluster_id: str,
    state: InventoryState | None,
    uses: Uses,
    *,
    deadline: float,
    timeout_seconds: float,
) -> ClusterUses:
    """The cluster's uses as `ImageUse`s, their since values read from its history, cached
    under the key of `state` (the state and the current snapshot the uses and the history
    are of; None: not cached, and no digest) while the cluster is still in it. The row
    replaces the cluster's (another state's, or this state's when the purge deleted a version
    it rests on); when the cluster left the state meanwhile, nothing is written (its row
    stays) and the uses have no digest: no row holds them."""
    wanted = _history_wanted(uses)
    history = _since(session, wanted, deadline=deadline, timeout=timeout_seconds)
    found = _built(uses, history)
    if state is None:
        return ClusterUses(cluster_id, found, None)
    still = state.still_current(cluster_id)
    session.execute(delete(RuleResultCache).where(inventory_row_of(cluster_id), still))
    stored = _encoded(found, history.watched, wanted)
    digest = uses_digest(stored)
    values: dict[str, ColumnElement[Any]] = {
        "content_hash": literal(state.key(cluster_id)),
        "catalogue_version": literal(inventory_version(cluster_id)),
        "results": literal(stored, CachedJson),
        "created_at": literal(utcnow(), UtcDateTime()),
        "uses_digest": literal(digest),
    }
    row = select(*values.values()).where(still)  # no row when the cluster left the state
    insert = dialect_insert(session, table_of(RuleResultCache)).from_select(list(values), row)
    written = session.execute(insert.on_conflict_do_nothing())
    return ClusterUses(cluster_id, found, digest if affected(written) > 0 else None)


def carry_cluster_inventory(
    session: Session,
    cluster_id: str,
    *,
    carried: CarriedState,
    changed: Mapping[int, tuple[ResourceRef, Any]],
    timeout_seconds: float,
) -> bool:
    """Cache the cluster's uses in its state `carried.state` (while it is still the
    cluster's: the write checks) from the cached row of the state `carried.before` the
    cluster was in when the objects `changed` (object id -> ref and current body) had their
    versions at `carried.watermark`, when those objects changed nothing the uses read (the
    caller knows each changed only labels, which `_body_row` never reads): the uses are that
    row's, and only the changed objects' history is read again. Returns whether it cached
    them (False: nothing was written, the fleet evaluation works them out).

    Exact, so the row is what `cache_cluster_inventory` would store:
    - The row must be of `before` at its latest snapshot before the current one (every
      version up to the watermark, which a state of that digest held, existed then), so
      objects not changed since the watermark have the same history as the row read, and
      none of its watched versions may have been purged since.
    - Each changed object whose history the since values read (the row's `read`) must have
      each image's run start at or before the watermark: then every later version holds the
      image, and its since value is the row's (whatever the row saw of those versions).
      Its watched versions are those of its history now (the run start is no longer its
      newest version once the object changed); the other objects' are the row's."""
    previous = session.scalar(
        select(func.max(Snapshot.id)).where(
            Snapshot.cluster_id == cluster_id,
            Snapshot.digest == carried.before,
            Snapshot.state == SnapshotState.PROCESSED,
            Snapshot.id < carried.state.snapshot_id,
        )
    )
    if previous is None:
        return False
    # The state before's row, by its primary key (another state's is not carried over).
    version = inventory_version(cluster_id)
    old_key = cluster_inventory_key(cluster_id, carried.before, snapshot_id=previous)
    stored = session.scalar(
        select(RuleResultCache.results).where(
            RuleResultCache.content_hash == old_key,
            RuleResultCache.catalogue_version == version,
        )
    )
    if stored is None:
        return False
    part = dict(stored[0])
    watched = _stored_versions(session, part["watched"])
    if len(watched) != len(part["watched"]):
        return False  # the purge deleted one: worked out again when read
    read = set(part["read"])
    wanted: dict[int, set[str]] = {}
    for object_id, (ref, body) in changed.items():
        if object_id in read:
            wanted[object_id] = {image for _g, _i, _n, image in _containers(ref.kind, body)}
    history = _since(
        session,
        wanted,
        deadline=time.monotonic() + timeout_seconds,
        timeout=timeout_seconds,
    )
    starts = history.starts
    if any(
        (object_id, image) not in starts
        or (start := starts[(object_id, image)]) is None
        or start > carried.watermark
        for object_id, images in wanted.items()
        for image in images
    ):
        return False
    kept = {vid for vid, object_id in watched.items() if object_id not in changed}
    part["watched"] = sorted(kept | history.watched)
    moved = session.execute(
        update(RuleResultCache)
        .where(
            RuleResultCache.catalogue_version == version,
            RuleResultCache.content_hash == old_key,
            carried.state.still_current(cluster_id),
        )
        .values(content_hash=carried.state.key(cluster_id), results=[part], created_at=utcnow())
    )
    return affected(moved) > 0


def _stored_versions(session: Session, version_ids: Sequence[int]) -> dict[int, int]:
    """Version id -> object id of those of the versions still stored."""
    found: dict[int, int] = {}
    for batch in chunked(list(version_ids), 10_000):
        found.update(
            (vid, object_id)
            for vid, object_id in session.execute(
                select(ManifestVersion.id, ManifestVersion.object_id).where(
                    ManifestVersion.id.in_(batch)
                )
            )
        )
    return found


_SPEC_PREFIXES = sorted({".".join(path) for path in POD_SPEC_PATHS.values()})
_VERSION_IMAGES = " || ".join(
    f"jsonb_path_query_array(b.body, 'lax $.{prefix}.{group}[*].image')"
    for prefix in _SPEC_PREFIXES
    for group in CONTAINER_LISTS
)


def _version_images(
    session: Session, batch: list[int]
) -> Iterator[tuple[int, int, datetime, set[str] | None]]:
    """(object id, version id, first_seen, images) of every stored version of the objects,
    newest first per object; on PostgreSQL only the images leave the database. The images of
    an object's current version are not read (None): the images `_since` looks for are those
    of its current body, which that version holds (its body is not even fetched: for a
    cluster whose objects have one version each, the statement reads no body)."""
    if on_postgresql(session):
        statement = text(
            f"""SELECT v.object_id, v.id, v.first_seen,
                       CASE WHEN v.id = o.current_version_id THEN NULL
                            ELSE {_VERSION_IMAGES} END
                FROM manifest_versions v
                JOIN objects o ON o.id = v.object_id
                LEFT JOIN manifest_bodies b
                  ON b.content_hash = v.content_hash
                 AND v.id IS DISTINCT FROM o.current_version_id
                WHERE v.object_id = ANY(:ids)
                ORDER BY v.object_id, v.first_seen DESC, v.id DESC"""  # noqa: S608 - fixed text
        )
        for object_id, version_id, first_seen, images in session.execute(statement, {"ids": batch}):
            yield (
                object_id,
                version_id,
                first_seen,
                None if images is None else {i for i in images if isinstance(i, str)},
            )
        return
    rows = session.execute(
        select(
            ManifestVersion.object_id,
            ManifestVersion.id,
            KubeObject.kind,
            ManifestVersion.first_seen,
            KubeObject.current_version_id,
            ManifestBody.body,
        )
        .join(KubeObject, KubeObject.id == ManifestVersion.object_id)
        .join(ManifestBody, ManifestBody.content_hash == ManifestVersion.content_hash)
        .where(ManifestVersion.object_id.in_(batch))
        .order_by(
            ManifestVersion.object_id, ManifestVersion.first_seen.desc(), ManifestVersion.id.desc()
        )
    )
    for object_id, version_id, kind, first_seen, current, body in rows:
        if version_id == current:
            yield object_id, version_id, first_seen, None
        else:
            images = pod_spec_images(kind, body if isinstance(body, dict) else {})
            yield object_id, version_id, first_seen, images


@dataclass(slots=True)
class _History:
    """What `_since` found: for each (object id, image) the first_seen of its run's first
    version, and the versions the purge could delete that would move one (`watched`): each
    run's first version unless it is its object's newest (a live object's current version is
    never purged), and the version before the run (without the image), whose deletion would
    join the run to an older one."""

    since: dict[tuple[int, str], datetime] = field(default_factory=dict)
    watched: set[int] = field(default_factory=set)
    # (object id, image) -> the id of its run's first version (None: the object's newest)
    starts: dict[tuple[int, str], int | None] = field(default_factory=dict)


def _since(
    session: Session, wanted: dict[int, set[str]], *, deadline: float, timeout: float
) -> _History:
    """For each (object id, image): the first_seen of the earliest version in the unbroken
    run of the object's newest versions whose pod spec holds that image. `wanted`: each
    object's images in its current body (so its current version holds every one of them:
    `_version_images` does not read them)."""
    found = _History()
    starts = found.starts
    broken: set[tuple[int, str]] = set()
    for batch in chunked(sorted(wanted), 1000):
        if time.monotonic() > deadline:
            raise SearchTimeout(timeout)
        previous = None
        for object_id, version_id, first_seen, images in _version_images(session, batch):
            newest = object_id != previous
            previous = object_id
            for image in wanted[object_id]:
                key = (object_id, image)
                if key in broken:
                    continue
                if images is None or image in images:  # None: the current version
                    found.since[key] = first_seen
                    starts[key] = None if newest else version_id
                else:
                    broken.add(key)
                    found.watched.add(version_id)
    found.watched.update(v for v in starts.values() if v is not None)
    return found


@dataclass(slots=True)
class _Fleet:
    """The inventory's rows with their controller chains resolved to workloads."""

    rows: list[_Row] = field(default_factory=list)
    owners: dict[Key, Key] = field(default_factory=dict)
    owner_versions: dict[Key, str] = field(default_factory=dict)
    stored: dict[Key, _Row] = field(default_factory=dict)

    def add(self, row: _Row) -> None:
        key: Key = (row.cluster_id, row.ref.namespace, row.ref.kind, row.ref.name)
        self.stored[key] = row
        if row.owner is not None:
            api_version, owner_kind, owner_name = row.owner
            parent: Key = (row.cluster_id, row.ref.namespace, owner_kind, owner_name)
            self.owners[key] = parent
            self.owner_versions.setdefault(parent, api_version)
        self.rows.append(row)

    def top_of(self, key: Key) -> Key:
        top = key
        for _ in range(MAX_OWNER_DEPTH):
            parent = self.owners.get(top)
            if parent is None:
                break
            top = parent
        return top

    def ref_of(self, top: Key) -> ResourceRef:
        row = self.stored.get(top)
        if row is not None:
            return row.ref
        return ResourceRef(self.owner_versions.get(top) or "apps/v1", top[2], top[1], top[3])

    def uses(self) -> dict[tuple[Key, str, str], dict[str, Any]]:
        """(workload, container, image) -> its ref, image path, objects and digests."""
        uses: dict[tuple[Key, str, str], dict[str, Any]] = {}
        pods: list[tuple[Key, _Row]] = []
        for row in self.rows:
            key = (row.cluster_id, row.ref.namespace, row.ref.kind, row.ref.name)
            top = self.top_of(key)
            if row.statuses:
                pods.append((top, row))
            if top != key and top in self.stored:
                continue  # the stored top's own template says what the workload runs
            spec_path = ".".join(POD_SPEC_PATHS[row.ref.kind])
            for group, index, name, image in row.containers:
                entry = uses.setdefault(
                    (top, name, image),
                    {
                        "ref": self.ref_of(top),
                        "path": f"{spec_path}.{group}[{index}].image",
                        "objects": set(),
                        "digests": set(),
                    },
                )
                entry["objects"].add(row.object_id)
                digest = digest_of(parse_image(image).digest)
                if digest:
                    entry["digests"].add(digest)
        for top, pod in pods:
            images = {name: image for _g, _i, name, image in pod.containers}
            for name, digest in pod.statuses.items():
                known = uses.get((top, name, images.get(name, "")))
                if known is not None:
                    known["digests"].add(digest)
        return uses


def image_uses(
    session: Session,
    *,
    timeout_seconds: float,
    cluster_ids: Sequence[str] | None = None,
    repositories: Collection[str] | None = None,
    cached: bool = False,
) -> list[ImageUse]:
    """Every container image the fleet's workloads run, once per (workload, container).

    A workload is the top of the controller chain; its own pod template says what it runs
    (so an old ReplicaSet revision does not count for its Deployment), while its Pods add
    the digests their status reports. An object whose controller is not stored (a Pod of an
    uncollected ReplicaSet) counts for that controller. `repositories` (canonical, as
    `parse_image` gives them) keeps only the images of those repositories (uncached: before
    their history is read). Runs under the search time limit. `cached` (with `cluster_ids`):
    the clusters' uses and since values come from `cached_inventory_uses` (worked out from
    the bodies and the history only for clusters whose state or history changed since they
    were cached), with the same outcome.
    """
    deadline = time.monotonic() + timeout_seconds
    wanted = set(cluster_ids or ())
    kept = None if repositories is None else set(repositories)
    if cached and cluster_ids is not None:
        found: list[ImageUse] = []
        for part in cached_inventory_uses(
            session, sorted(wanted), deadline=deadline, timeout_seconds=timeout_seconds
        ):
            found.extend(part.uses)  # clusters in id order, each's uses in order: all in order
        return found if kept is None else _of_repositories(found, kept)
    one = next(iter(wanted)) if len(wanted) == 1 else None
    source = _postgres_inventory_rows if on_postgresql(session) else _python_inventory_rows
    fleet = _Fleet()
    for kind in POD_SPEC_PATHS:
        for row in source(session, kind, one):
            if time.monotonic() > deadline:
                raise SearchTimeout(timeout_seconds)
            if not wanted or row.cluster_id in wanted:
                fleet.add(row)
    uses = fleet.uses()
    if kept is not None:
        uses = {k: v for k, v in uses.items() if image_ref(k[2]).repository in kept}
    history = _since(session, _history_wanted(uses), deadline=deadline, timeout=timeout_seconds)
    return _built(uses, history)


def _of_repositories(uses: list[ImageUse], kept: set[str]) -> list[ImageUse]:
    return [u for u in uses if image_ref(u.image).repository in kept]
