"""Snapshots: stage a pushed snapshot durably, then materialise it into the cluster's state.

`stage_snapshot` runs inside the ingest request: after checking the snapshot against the
cluster's latest state (duplicate, delta base) and its own digest, it stores the snapshot row
and the document itself, as one compressed row (`snapshot_documents`), committed before the
push is acknowledged. `apply_pending` runs in the `process_snapshot` task: it splits each
pending snapshot's document, in arrival order, into the content-addressed manifest bodies (each
distinct body once, with its image index rows) and the objects/manifest_versions tables, then
drops the document, so storage grows with change only.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from contracts.hashing import (
    canonical_json,
    hash_of_canonical,
    state_digest,
    strip_server_noise,
)
from contracts.resources import ResourceRef
from contracts.states import SnapshotState
from store.bulk import chunked, insert_absent, insert_binary_row, table_of
from store.clusters import get_cluster
from store.db import on_postgresql
from store.errors import InvalidSnapshot, UnknownBaseSnapshot
from store.image_index import index_bodies
from store.image_presence import record_ended, record_started
from store.models import (
    Cluster,
    KubeObject,
    ManifestBody,
    ManifestVersion,
    Snapshot,
    SnapshotDocument,
    SnapshotItem,
)
from store.types import utcnow


@dataclass(frozen=True, slots=True)
class StagedSnapshot:
    snapshot_id: int
    digest: str
    duplicate: bool  # same digest as the cluster's latest snapshot: nothing new was stored


@dataclass(slots=True)
class ApplyResult:
    applied: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    added: int = 0
    changed: int = 0
    removed: int = 0


@dataclass(frozen=True, slots=True)
class PreparedObject:
    ref: ResourceRef
    uid: str
    content_hash: str
    body: dict[str, Any]
    size_bytes: int
    canonical: bytes = b""  # the canonical JSON `content_hash` is the hash of


def _canonical_without_floats(value: Any) -> bytes:
    """`contracts.hashing.canonical_json` of a value that holds no float, four times faster.

    For such values orjson writes the same bytes: keys sorted by code point, no whitespace,
    only `"`, `\\` and control characters escaped. Floats are what the two spell differently
    (`1e-05` against `0.00001`), so the caller must know there are none (the ingest's parser
    does). What orjson refuses (integers beyond 64 bits, keys that are no strings, lone
    surrogates) goes to `canonical_json`, which encodes or refuses it as ever.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return canonical_json(value)


def prepare_objects(
    objects: Iterable[Mapping[str, Any]], *, floats: bool = True
) -> list[PreparedObject]:
    """Strip server noise, hash, and identify each manifest; duplicates are an error.

    `floats=False` promises that no manifest holds a float (the canonical JSON the hashes are
    of is then written by orjson: same bytes, a fraction of the time).
    """
    encode = canonical_json if floats else _canonical_without_floats
    prepared: list[PreparedObject] = []
    seen: set[str] = set()
    for raw in objects:
        body = strip_server_noise(dict(raw))
        ref = ResourceRef.of(body)
        key = ref.key
        if key in seen:
            raise InvalidSnapshot(f"object {ref} appears twice in the snapshot")
        seen.add(key)
        encoded = encode(body)
        prepared.append(
            PreparedObject(
                ref=ref,
                uid=str((body.get("metadata") or {}).get("uid") or ""),
                content_hash=hash_of_canonical(encoded),
                body=body,
                size_bytes=len(encoded),
                canonical=encoded,
            )
        )
    return prepared


def latest_snapshot(session: Session, cluster_id: str) -> Snapshot | None:
    """The cluster's newest snapshot that did not fail."""
    return session.scalar(
        select(Snapshot)
        .where(Snapshot.cluster_id == cluster_id, Snapshot.state != SnapshotState.FAILED)
        .order_by(Snapshot.id.desc())
        .limit(1)
    )


def store_bodies(session: Session, prepared: Sequence[PreparedObject]) -> int:
    """Insert the bodies not yet stored, with their rows of the image index
    (`store.image_index`); returns how many bodies were new."""
    wanted = {p.content_hash: p for p in prepared}
    existing: set[str] = set()
    for batch in chunked(list(wanted)):
        existing.update(
            session.scalars(
                select(ManifestBody.content_hash).where(ManifestBody.content_hash.in_(batch))
            )
        )
    now = utcnow()
    # PostgreSQL's COPY takes each body as its canonical JSON text, already written for the
    # hash (jsonb keeps the value, not the text: the same stored body as from the dict).
    encoded = on_postgresql(session)
    rows = [
        {
            "content_hash": h,
            "body": p.canonical if encoded and p.canonical else p.body,
            "size_bytes": p.size_bytes,
            "created_at": now,
        }
        for h, p in wanted.items()
        if h not in existing
    ]
    insert_absent(session, table_of(ManifestBody), rows)
    # Only bodies with a member named `image` have index rows: in canonical JSON (no spaces)
    # such a member is the text `"image":`, which a string value cannot hold unescaped.
    index_bodies(
        session,
        {
            h: p.body
            for h, p in wanted.items()
            if h not in existing and (not p.canonical or b'"image":' in p.canonical)
        },
    )
    return len(rows)


# Compression of a document staged from a parsed envelope (a caller without the pushed bytes,
# or a push sent without gzip): fast; the worker reads it once.
DOCUMENT_GZIP_LEVEL = 1


def encode_document(envelope: Mapping[str, Any]) -> bytes:
    """A snapshot envelope as a staged document: its JSON, one gzip member (the standard
    library's encoder for what orjson refuses: nesting deeper than 255, integers beyond 64 bits)."""
    try:
        encoded = orjson.dumps(envelope)
    except TypeError:
        encoded = json.dumps(envelope, ensure_ascii=False).encode()
    return gzip.compress(encoded, compresslevel=DOCUMENT_GZIP_LEVEL, mtime=0)


def decode_document(document: bytes) -> dict[str, Any]:
    """The envelope a staged document holds (`encode_document`, or the pushed gzip body).

    The ingest parsed the same bytes strictly before storing them: orjson reads them the same
    (a float as the same float; no integer beyond 64 bits was let in).
    """
    text = zlib.decompress(document, wbits=16 + zlib.MAX_WBITS)
    try:
        envelope: dict[str, Any] = orjson.loads(text)
    except orjson.JSONDecodeError:  # nesting deeper than orjson reads: the standard library
        envelope = json.loads(text)
    return envelope


def stage_snapshot(
    session: Session,
    cluster_id: str,
    *,
    envelope: Mapping[str, Any],
    received_at: datetime | None = None,
    floats: bool = True,
    document: bytes | None = None,
) -> StagedSnapshot:
    """Durably store a validated snapshot envelope for later materialisation (`apply_pending`).

    `floats=False` promises that the envelope's objects hold no float (`prepare_objects`).
    `document`: the envelope's JSON as one gzip member, as pushed (parsed into `envelope`);
    without it the envelope is encoded here (`encode_document`).

    Everything that can refuse the snapshot is checked here, before it is stored: raises
    UnknownBaseSnapshot when a delta's base is not the latest stored state, and
    InvalidSnapshot when an object appears twice, is both changed and removed, or a full
    snapshot's digest does not match its objects.
    """
    # Serialise pushes of one cluster (row lock on PostgreSQL), so two identical pushes
    # arriving together are stored once and deltas see the latest stored state.
    if session.scalar(select(Cluster.id).where(Cluster.id == cluster_id).with_for_update()) is None:
        get_cluster(session, cluster_id)  # raises ClusterNotFound
    kind = envelope["type"]
    digest = envelope["digest"]
    latest = latest_snapshot(session, cluster_id)
    if latest is not None and latest.digest == digest:
        return StagedSnapshot(snapshot_id=latest.id, digest=digest, duplicate=True)
    if kind == "delta" and (latest is None or latest.digest != envelope.get("base_digest")):
        raise UnknownBaseSnapshot(str(envelope.get("base_digest")))

    prepared, removed = _checked_contents(envelope, floats=floats)
    snapshot = Snapshot(
        cluster_id=cluster_id,
        received_at=received_at or utcnow(),
        digest=digest,
        type=kind,
        base_digest=envelope.get("base_digest"),
        object_count=len(prepared),
        removed_count=len(removed),
        collected_at=envelope.get("collected_at"),
        agent_version=envelope.get("agent_version"),
        state=SnapshotState.PENDING,
    )
    session.add(snapshot)
    session.flush()
    insert_binary_row(
        session,
        table_of(SnapshotDocument),
        {
            "snapshot_id": snapshot.id,
            "floats": floats,
            "document": document if document is not None else encode_document(envelope),
        },
    )
    return StagedSnapshot(snapshot_id=snapshot.id, digest=digest, duplicate=False)


def _checked_contents(
    envelope: Mapping[str, Any], *, floats: bool
) -> tuple[list[PreparedObject], list[ResourceRef]]:
    """The envelope's objects (prepared) and removed references, checked against each other
    and, for a full snapshot, against its digest (InvalidSnapshot)."""
    prepared = prepare_objects(envelope.get("objects") or [], floats=floats)
    removed = [ResourceRef.from_dict(r) for r in envelope.get("removed") or []]
    if envelope["type"] == "full":
        computed = state_digest((p.ref.key, p.content_hash) for p in prepared)
        if computed != envelope["digest"]:
            raise InvalidSnapshot(
                f"digest {envelope['digest']} does not match the objects ({computed})"
            )
    overlap = {p.ref.key for p in prepared} & {r.key for r in removed}
    if overlap:
        raise InvalidSnapshot(f"objects both changed and removed: {sorted(overlap)[:3]}")
    return prepared, removed


def pending_snapshot_ids(session: Session, *, limit: int = 1000) -> Sequence[tuple[int, str]]:
    """(snapshot id, cluster id) of snapshots stored but not yet applied, oldest first."""
    return session.execute(
        select(Snapshot.id, Snapshot.cluster_id)
        .where(Snapshot.state == SnapshotState.PENDING)
        .order_by(Snapshot.id)
        .limit(limit)
    ).all()


@dataclass(slots=True)
class _Live:
    object_id: int
    uid: str
    content_hash: str
    version_id: int | None


def _live_state(session: Session, cluster_id: str) -> dict[str, _Live]:
    rows = session.execute(
        select(
            KubeObject.ref_key,
            KubeObject.id,
            KubeObject.uid,
            KubeObject.current_hash,
            KubeObject.current_version_id,
        ).where(KubeObject.cluster_id == cluster_id, KubeObject.deleted_at.is_(None))
    )
    return {key: _Live(oid, uid, chash, vid) for key, oid, uid, chash, vid in rows}


def apply_pending(session: Session, cluster_id: str) -> ApplyResult:
    """Apply every pending snapshot of one cluster, oldest first. Idempotent.

    Takes a row lock on the cluster (PostgreSQL) so two workers never apply concurrently.
    """
    result = ApplyResult()
    cluster = session.scalar(select(Cluster).where(Cluster.id == cluster_id).with_for_update())
    if cluster is None:
        return result
    pending = session.scalars(
        select(Snapshot)
        .where(Snapshot.cluster_id == cluster_id, Snapshot.state == SnapshotState.PENDING)
        .order_by(Snapshot.id)
    ).all()
    for snapshot in pending:
        savepoint = session.begin_nested()
        try:
            counts = _apply_one(session, cluster, snapshot)
        except InvalidSnapshot as problem:
            savepoint.rollback()
            snapshot.state = SnapshotState.FAILED
            snapshot.error = str(problem)
            snapshot.processed_at = utcnow()
            _drop_staged(session, snapshot.id)
            result.failed.append(snapshot.id)
            continue
        savepoint.commit()
        result.applied.append(snapshot.id)
        result.added += counts[0]
        result.changed += counts[1]
        result.removed += counts[2]
    session.flush()
    return result


def _staged_items(session: Session, snapshot_id: int) -> list[tuple[str, str | None, str | None]]:
    """The snapshot's (ref key, uid, content hash) items, content hash None for a removal.

    From its staged document: split here, its new bodies stored (with their image index
    rows), the same checks as when it was staged repeated. A snapshot staged before
    migration 0014 has its items in `snapshot_items` instead (its bodies already stored).
    """
    staged = session.get(SnapshotDocument, snapshot_id)
    if staged is None:
        return [
            (key, uid, chash)
            for key, uid, chash in session.execute(
                select(SnapshotItem.ref_key, SnapshotItem.uid, SnapshotItem.content_hash).where(
                    SnapshotItem.snapshot_id == snapshot_id
                )
            )
        ]
    try:
        envelope = decode_document(staged.document)
    except (zlib.error, ValueError) as problem:  # JSONDecodeError is a ValueError
        raise InvalidSnapshot(f"the staged document cannot be read: {problem}") from None
    prepared, removed = _checked_contents(envelope, floats=staged.floats)
    del envelope
    store_bodies(session, prepared)
    items: list[tuple[str, str | None, str | None]] = [
        (p.ref.key, p.uid, p.content_hash) for p in prepared
    ]
    items.extend((r.key, None, None) for r in removed)
    return items


def _drop_staged(session: Session, snapshot_id: int) -> None:
    """Delete what a snapshot left to apply (its document, or its items), once it is done."""
    session.execute(delete(SnapshotDocument).where(SnapshotDocument.snapshot_id == snapshot_id))
    session.execute(delete(SnapshotItem).where(SnapshotItem.snapshot_id == snapshot_id))


def _apply_one(session: Session, cluster: Cluster, snapshot: Snapshot) -> tuple[int, int, int]:
    if snapshot.type == "delta" and cluster.current_digest != snapshot.base_digest:
        raise InvalidSnapshot(
            f"delta base {snapshot.base_digest} is not the applied state {cluster.current_digest}"
        )
    # Applied as of when it was received, never before the state it replaces: receipt times
    # can run backwards between ingest processes (or a loader's), and a version superseded
    # before it began would leave the history with an interval that ends before it starts.
    now = snapshot.received_at
    if cluster.state_updated_at is not None and now < cluster.state_updated_at:
        now = cluster.state_updated_at
    items = _staged_items(session, snapshot.id)
    live = _live_state(session, cluster.id)

    upserts = [(key, uid or "", chash) for key, uid, chash in items if chash is not None]
    removals = {key for key, _uid, chash in items if chash is None}
    if snapshot.type == "full":
        removals = set(live) - {key for key, _uid, _chash in upserts}

    result_state = {key: entry.content_hash for key, entry in live.items()}
    gone_objects: list[int] = []
    gone_versions: list[int] = []
    for key in removals:
        entry = live.get(key)
        if entry is None:
            continue
        gone_objects.append(entry.object_id)
        if entry.version_id is not None:
            gone_versions.append(entry.version_id)
        result_state.pop(key, None)

    new_objects: list[tuple[str, str, str]] = []
    changed: list[tuple[_Live, str]] = []
    for key, uid, chash in upserts:
        entry = live.get(key)
        result_state[key] = chash
        if entry is None:
            new_objects.append((key, uid, chash))
        elif entry.uid != uid and entry.uid and uid:
            # Same name, new uid: the object was deleted and recreated.
            gone_objects.append(entry.object_id)
            if entry.version_id is not None:
                gone_versions.append(entry.version_id)
            new_objects.append((key, uid, chash))
        elif entry.content_hash != chash:
            changed.append((entry, chash))

    if state_digest(result_state.items()) != snapshot.digest:
        raise InvalidSnapshot("the resulting state does not match the snapshot digest")

    for batch in chunked(gone_objects):
        session.execute(
            update(KubeObject).where(KubeObject.id.in_(batch)).values(deleted_at=now, last_seen=now)
        )
    for batch in chunked(gone_versions):
        session.execute(
            update(ManifestVersion)
            .where(ManifestVersion.id.in_(batch))
            .values(superseded_at=now, last_seen=now)
        )
    started = _create_objects(session, cluster.id, new_objects, at=now)
    started += _create_versions(session, changed, at=now)
    session.flush()
    record_ended(
        session, gone_versions + [e.version_id for e, _ in changed if e.version_id is not None]
    )
    record_started(session, started)

    # Every object still present was seen now. That is recorded once, as the cluster's
    # state_updated_at, which is what `last_seen` means for a live object and its current
    # version (store.manifests reads it so); rewriting both rows of every object on every push
    # cost 2 x N row versions of churn. An object or version stores its last_seen when it ends.
    _drop_staged(session, snapshot.id)
    snapshot.state = SnapshotState.PROCESSED
    snapshot.processed_at = utcnow()
    cluster.current_digest = snapshot.digest
    cluster.current_snapshot_id = snapshot.id
    cluster.state_updated_at = now
    session.flush()
    return len(new_objects), len(changed), len(removals)


def _create_objects(
    session: Session, cluster_id: str, new_objects: list[tuple[str, str, str]], *, at: datetime
) -> list[int]:
    """Create objects (with their first version); an object that comes back is revived.
    Returns the new versions' ids."""
    created: list[int] = []
    for batch in chunked(new_objects):
        returning = {
            (obj.ref_key, obj.uid): obj
            for obj in session.scalars(
                select(KubeObject).where(
                    KubeObject.cluster_id == cluster_id,
                    KubeObject.ref_key.in_([key for key, _, _ in batch]),
                    KubeObject.deleted_at.is_not(None),
                )
            )
        }
        objects = []
        for key, uid, chash in batch:
            obj = returning.get((key, uid))
            if obj is not None:
                obj.deleted_at = None
                obj.last_seen = at
                obj.current_hash = chash
            else:
                ref = ResourceRef.from_key(key)
                obj = KubeObject(
                    cluster_id=cluster_id,
                    ref_key=key,
                    api_version=ref.api_version,
                    kind=ref.kind,
                    namespace=ref.namespace or "",
                    name=ref.name,
                    uid=uid,
                    first_seen=at,
                    last_seen=at,
                    current_hash=chash,
                )
                session.add(obj)
            objects.append(obj)
        session.flush()
        versions = [
            ManifestVersion(
                object_id=o.id, content_hash=o.current_hash, first_seen=at, last_seen=at
            )
            for o in objects
        ]
        session.add_all(versions)
        session.flush()
        for obj, version in zip(objects, versions, strict=True):
            obj.current_version_id = version.id
            created.append(version.id)
        session.flush()
    return created


def _create_versions(
    session: Session, changed: list[tuple[_Live, str]], *, at: datetime
) -> list[int]:
    """New versions of changed objects (the old ones superseded); returns their ids."""
    created: list[int] = []
    for batch in chunked(changed):
        old_versions = [entry.version_id for entry, _ in batch if entry.version_id is not None]
        if old_versions:
            session.execute(
                update(ManifestVersion)
                .where(ManifestVersion.id.in_(old_versions))
                .values(superseded_at=at, last_seen=at)
            )
        versions = [
            ManifestVersion(
                object_id=entry.object_id, content_hash=chash, first_seen=at, last_seen=at
            )
            for entry, chash in batch
        ]
        session.add_all(versions)
        session.flush()
        for (entry, chash), version in zip(batch, versions, strict=True):
            session.execute(
                update(KubeObject)
                .where(KubeObject.id == entry.object_id)
                .values(current_hash=chash, current_version_id=version.id)
            )
            created.append(version.id)
    return created


def count_bodies(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ManifestBody)) or 0
