"""Read the current state of clusters and the version history of objects (index lookups only)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    any_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from contracts.resources import ResourceRef
from store.bulk import chunked, core_rows, streamed_rows
from store.db import on_postgresql
from store.models import BodyImage, Cluster, KubeObject, ManifestBody, ManifestVersion


@dataclass(frozen=True, slots=True)
class CurrentManifest:
    object_id: int
    cluster_id: str
    ref: ResourceRef
    content_hash: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class VersionRecord:
    version_id: int
    content_hash: str
    first_seen: datetime
    last_seen: datetime
    superseded_at: datetime | None
    body: dict[str, Any]


def _scoped(
    query: Select[Any], *, cluster_id: str | None, kind: str | None, namespace: str | None
) -> Select[Any]:
    """The query narrowed to one cluster, kind and namespace (each when given)."""
    if cluster_id is not None:
        query = query.where(KubeObject.cluster_id == cluster_id)
    if kind is not None:
        query = query.where(KubeObject.kind == kind)
    if namespace is not None:
        query = query.where(KubeObject.namespace == namespace)
    return query


def _current_during(since: datetime, until: datetime) -> tuple[ColumnElement[bool], ...]:
    """A version current at some instant of [since, until]: seen by `until`, not yet
    superseded at `since`."""
    return (
        ManifestVersion.first_seen <= until,
        or_(ManifestVersion.superseded_at.is_(None), ManifestVersion.superseded_at > since),
    )


def current_manifests(
    session: Session,
    *,
    cluster_id: str | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    batch_size: int = 1000,
) -> Iterator[CurrentManifest]:
    """Stream the live manifests of one cluster or of every cluster, optionally of one kind.

    Served by the partial indexes on live objects; rows are fetched in batches.
    """
    query = (
        select(
            KubeObject.id,
            KubeObject.cluster_id,
            KubeObject.ref_key,
            KubeObject.current_hash,
            ManifestBody.body,
        )
        .join(ManifestBody, ManifestBody.content_hash == KubeObject.current_hash)
        .where(KubeObject.deleted_at.is_(None))
        .order_by(KubeObject.id)
        .execution_options(yield_per=batch_size)
    )
    query = _scoped(query, cluster_id=cluster_id, kind=kind, namespace=namespace)
    for object_id, cid, key, chash, body in session.execute(query):
        yield CurrentManifest(object_id, cid, ResourceRef.from_key(key), chash, body)


# A cluster's live bodies by object id: (content hash, body) (`live_bodies_by_id`), read by
# the step that uses them or ahead of it (`workers.body_prefetch`).
PrefetchedBodies = Mapping[int, tuple[str, Any]]


def live_bodies_by_id(
    session: Session, cluster_id: str, *, batch_size: int = 1000
) -> dict[int, tuple[str, Any]]:
    """Object id -> (content hash, body) of one cluster's live objects: what a scan reads of
    every object (`current_manifests` without the per-row record)."""
    query = (
        select(KubeObject.id, KubeObject.current_hash, ManifestBody.body)
        .join(ManifestBody, ManifestBody.content_hash == KubeObject.current_hash)
        .where(KubeObject.cluster_id == cluster_id, KubeObject.deleted_at.is_(None))
        .order_by(KubeObject.id)
    )
    # Plain rows: neither the ORM's nor Core's result processing (a scan reads every body).
    rows = streamed_rows(session, query, batch_size=batch_size)
    return {object_id: (chash, body) for object_id, chash, body in rows}


@dataclass(frozen=True, slots=True)
class PastManifest:
    """A version of an object that was current during a period, and when it was current."""

    cluster_id: str
    ref: ResourceRef
    first_seen: datetime
    superseded_at: datetime | None  # None: still the object's current version
    body: dict[str, Any]


def manifests_during(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    cluster_id: str | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    batch_size: int = 1000,
) -> Iterator[PastManifest]:
    """Stream the versions current at some instant of [since, until], of every object that
    existed then (deleted ones too): first seen by `until`, not superseded by `since`.

    A version is current from its `first_seen` until its `superseded_at` (when the next version
    replaced it, or its object left the cluster), exclusive; None means it still is.
    """
    query = (
        select(
            KubeObject.cluster_id,
            KubeObject.ref_key,
            ManifestVersion.first_seen,
            ManifestVersion.superseded_at,
            ManifestBody.body,
        )
        .join(KubeObject, KubeObject.id == ManifestVersion.object_id)
        .join(ManifestBody, ManifestBody.content_hash == ManifestVersion.content_hash)
        .where(
            *_current_during(since, until),
        )
        .order_by(ManifestVersion.id)
        .execution_options(yield_per=batch_size)
    )
    query = _scoped(query, cluster_id=cluster_id, kind=kind, namespace=namespace)
    for cid, key, first_seen, superseded_at, body in session.execute(query):
        yield PastManifest(cid, ResourceRef.from_key(key), first_seen, superseded_at, body)


@dataclass(frozen=True, slots=True)
class IndexedImages:
    """The image-index rows (`store.image_index`) of one live object's body, or of one
    version's (then with when it was current), in `$..image` order: (shape, value) pairs."""

    cluster_id: str
    ref: ResourceRef
    first_seen: datetime | None
    superseded_at: datetime | None
    images: list[tuple[str, Any]]


def _grouped(rows: Any, *, history: bool) -> Iterator[IndexedImages]:
    """Rows ordered by (unit id, ord) grouped per unit (object or version)."""
    current: IndexedImages | None = None
    unit = None
    for row in rows:
        if current is None or row[0] != unit:
            if current is not None:
                yield current
            unit = row[0]
            first_seen, superseded_at = (row[3], row[4]) if history else (None, None)
            current = IndexedImages(
                row[1], ResourceRef.from_key(row[2]), first_seen, superseded_at, []
            )
        current.images.append((row[-2], row[-1]))
    if current is not None:
        yield current


def current_images(
    session: Session,
    *,
    cluster_id: str | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    batch_size: int = 5000,
) -> Iterator[IndexedImages]:
    """Like `current_manifests`, the indexed images of each live object instead of its body;
    objects whose body holds none are left out."""
    query = (
        select(
            KubeObject.id,
            KubeObject.cluster_id,
            KubeObject.ref_key,
            BodyImage.shape,
            BodyImage.value,
        )
        .join(BodyImage, BodyImage.content_hash == KubeObject.current_hash)
        .where(KubeObject.deleted_at.is_(None))
        .order_by(KubeObject.id, BodyImage.ord)
        .execution_options(yield_per=batch_size)
    )
    query = _scoped(query, cluster_id=cluster_id, kind=kind, namespace=namespace)
    yield from _grouped(session.execute(query), history=False)


def images_during(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    cluster_id: str | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    batch_size: int = 5000,
) -> Iterator[IndexedImages]:
    """Like `manifests_during`, the indexed images of each version current at some instant of
    [since, until]; versions whose body holds none are left out."""
    query = (
        select(
            ManifestVersion.id,
            KubeObject.cluster_id,
            KubeObject.ref_key,
            ManifestVersion.first_seen,
            ManifestVersion.superseded_at,
            BodyImage.shape,
            BodyImage.value,
        )
        .join(KubeObject, KubeObject.id == ManifestVersion.object_id)
        .join(BodyImage, BodyImage.content_hash == ManifestVersion.content_hash)
        .where(
            *_current_during(since, until),
        )
        .order_by(ManifestVersion.id, BodyImage.ord)
        .execution_options(yield_per=batch_size)
    )
    query = _scoped(query, cluster_id=cluster_id, kind=kind, namespace=namespace)
    yield from _grouped(session.execute(query), history=True)


def current_refs(session: Session, cluster_id: str) -> Sequence[tuple[int, str, str]]:
    """(object id, ref key, content hash) of every live object of a cluster, without bodies."""
    return session.execute(
        select(KubeObject.id, KubeObject.ref_key, KubeObject.current_hash)
        .where(KubeObject.cluster_id == cluster_id, KubeObject.deleted_at.is_(None))
        .order_by(KubeObject.id)
    ).all()


def bodies_by_hash(session: Session, hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The bodies with these content hashes (those stored). On PostgreSQL the hashes go as
    one array parameter: a statement compiled once, not an IN list of hundreds of them.
    No hashes, no statement (a scan step asks for the few bodies it lacks, mostly none)."""
    if not hashes:
        return {}
    wanted = (
        ManifestBody.content_hash == any_(bindparam("hashes", list(hashes), type_=ARRAY(String)))
        if on_postgresql(session)
        else ManifestBody.content_hash.in_(list(hashes))
    )
    rows = core_rows(session, select(ManifestBody.content_hash, ManifestBody.body).where(wanted))
    return {content_hash: body for content_hash, body in rows}


def bodies_and_labels(
    session: Session, hashes: Sequence[str], *, labels_of: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """In one read, the bodies with the content hashes `hashes` and the `metadata.labels` of
    the bodies with the content hashes `labels_of` (those stored; a label map as stored,
    None: absent, or its parent not an object). On PostgreSQL only the labels of the
    latter leave the database, not their bodies."""
    whole, wanted = set(hashes), set(hashes) | set(labels_of)
    bodies: dict[str, Any] = {}
    labels: dict[str, Any] = {}
    if on_postgresql(session):
        body = ManifestBody.body
        rows = core_rows(
            session,
            select(
                ManifestBody.content_hash,
                case(
                    (
                        ManifestBody.content_hash
                        == any_(bindparam("whole", sorted(whole), type_=ARRAY(String))),
                        body,
                    )
                ),
                body.op("->")(literal("metadata", String)).op("->")(literal("labels", String)),
            ).where(
                ManifestBody.content_hash
                == any_(bindparam("wanted", sorted(wanted), type_=ARRAY(String)))
            ),
        )
        for content_hash, found, labels_found in rows:
            if content_hash in whole:
                bodies[content_hash] = found
            labels[content_hash] = labels_found
    else:
        for content_hash, found in core_rows(
            session,
            select(ManifestBody.content_hash, ManifestBody.body).where(
                ManifestBody.content_hash.in_(sorted(wanted))
            ),
        ):
            if content_hash in whole:
                bodies[content_hash] = found
            meta = found.get("metadata") if isinstance(found, dict) else None
            labels[content_hash] = meta.get("labels") if isinstance(meta, dict) else None
    return bodies, {h: labels[h] for h in labels_of if h in labels}


def current_metadata(
    session: Session, wanted: Mapping[str, Iterable[str]], *, annotation: str
) -> dict[str, dict[str, tuple[Any, Any]]]:
    """(`metadata.labels`, `metadata.annotations[annotation]`) of each named live object whose
    body is a JSON object, by cluster and ref key (`wanted`: the ref keys of each cluster; a
    missing one: absent), each value as stored (None: absent, or its parent not an object).
    One read for every cluster: on PostgreSQL one statement, the (cluster, ref key) pairs
    going as two array parameters, and only those two values leave the database, not the
    bodies; on SQLite the pairs go in pages of `chunked`."""
    pairs = sorted({(cluster_id, key) for cluster_id, keys in wanted.items() for key in keys})
    found: dict[str, dict[str, tuple[Any, Any]]] = {}
    if not pairs:
        return found
    live = KubeObject.deleted_at.is_(None)
    if on_postgresql(session):
        named = (
            func.unnest(
                bindparam("clusters", [c for c, _k in pairs], type_=ARRAY(String)),
                bindparam("keys", [k for _c, k in pairs], type_=ARRAY(String)),
            )
            .table_valued("cluster_id", "ref_key")
            .render_derived(name="wanted")
        )
        # Each pair looked up in the identity index (a LATERAL subquery the planner keeps:
        # OFFSET 0): joined, it chose to sort every live object of the fleet instead, in
        # parallel workers, for the same rows.
        live_object = (
            select(KubeObject.cluster_id, KubeObject.ref_key, KubeObject.current_hash)
            .where(
                KubeObject.cluster_id == named.c.cluster_id,
                KubeObject.ref_key == named.c.ref_key,
                live,
            )
            .offset(0)
            .lateral("live_object")
        )
        body = ManifestBody.body
        metadata = body.op("->")(literal("metadata", String))
        rows = core_rows(
            session,
            select(
                live_object.c.cluster_id,
                live_object.c.ref_key,
                metadata.op("->")(literal("labels", String)),
                metadata.op("->")(literal("annotations", String)).op("->")(
                    literal(annotation, String)
                ),
            )
            .select_from(named)
            .join(live_object, true())
            .join(ManifestBody, ManifestBody.content_hash == live_object.c.current_hash)
            .where(func.jsonb_typeof(body) == "object"),
        )
        for cluster_id, key, labels, value in rows:
            found.setdefault(cluster_id, {})[key] = (labels, value)
        return found
    for batch in chunked(pairs):
        for cluster_id, key, whole in core_rows(
            session,
            select(KubeObject.cluster_id, KubeObject.ref_key, ManifestBody.body)
            .join(ManifestBody, ManifestBody.content_hash == KubeObject.current_hash)
            .where(live, tuple_(KubeObject.cluster_id, KubeObject.ref_key).in_(batch)),
        ):
            if not isinstance(whole, dict):
                continue
            meta = whole.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            notes = meta.get("annotations")
            found.setdefault(cluster_id, {})[key] = (
                meta.get("labels"),
                notes.get(annotation) if isinstance(notes, dict) else None,
            )
    return found


def find_object(session: Session, cluster_id: str, ref: ResourceRef) -> KubeObject | None:
    """The live object with that reference, else the most recently deleted one."""
    return session.scalar(
        select(KubeObject)
        .where(KubeObject.cluster_id == cluster_id, KubeObject.ref_key == ref.key)
        .order_by(KubeObject.deleted_at.is_not(None), KubeObject.id.desc())
        .limit(1)
    )


def object_history(session: Session, object_id: int) -> list[VersionRecord]:
    """Every stored version of one object, oldest first (index on object_id, first_seen).

    A version that ended (superseded, or its object deleted) carries the last_seen stored then;
    the current version of a live object was last seen in the cluster's latest applied state
    (`clusters.state_updated_at`), which ingest records once per push instead of per object.
    """
    live_until = session.execute(
        select(KubeObject.deleted_at, Cluster.state_updated_at)
        .join(Cluster, Cluster.id == KubeObject.cluster_id)
        .where(KubeObject.id == object_id)
    ).first()
    latest = live_until[1] if live_until is not None and live_until[0] is None else None
    rows = session.execute(
        select(ManifestVersion, ManifestBody.body)
        .join(ManifestBody, ManifestBody.content_hash == ManifestVersion.content_hash)
        .where(ManifestVersion.object_id == object_id)
        .order_by(ManifestVersion.first_seen, ManifestVersion.id)
    )
    return [
        VersionRecord(
            v.id,
            v.content_hash,
            v.first_seen,
            max(v.last_seen, latest)
            if latest is not None and v.superseded_at is None
            else v.last_seen,
            v.superseded_at,
            body,
        )
        for v, body in rows
    ]
