"""Every container image in the fleet's workloads, each counted once per workload.

A workload is the top of an object's controller chain: a Pod owned by a ReplicaSet owned by
a Deployment, the ReplicaSets and the Deployment's own pod template all belong to the one
Deployment, so its image counts once (not once per Pod and ReplicaSet revision). Images come
from `containers`, `initContainers` and `ephemeralContainers` of Pods and of the pod template
of every workload kind, including a CronJob's `jobTemplate`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from contracts.resources import ResourceRef
from store.manifests import current_manifests
from store.search import SearchTimeout

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
        return {
            "image": self.image,
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


def pod_spec_images(kind: str, body: dict[str, Any]) -> set[str]:
    """The images of every container kind in the object's pod spec (empty: not a workload)."""
    spec = _dig(body, POD_SPEC_PATHS.get(kind, ("-",)))
    images: set[str] = set()
    if not isinstance(spec, dict):
        return images
    for list_name in CONTAINER_LISTS:
        containers = spec.get(list_name)
        if not isinstance(containers, list):
            continue
        for container in containers:
            image = container.get("image") if isinstance(container, dict) else None
            if isinstance(image, str) and image:
                images.add(image)
    return images


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
    rows = _postgres_rows if session.get_bind().dialect.name == "postgresql" else _python_rows
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
