"""The timeline of a cluster or of one resource: versions, removals, findings opened and
resolved (with the version that did it) and scans, newest first, one keyset page at a time.

Each source is read by its own bounded query (`LIMIT page + 1`, on an index that starts with
the cluster or the object) and the pages are merged here, so a page costs the same on a
cluster of ten objects and on one of ten thousand with years of history. The cursor is the
last entry's (time, source rank, row id): stable while new events arrive.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from contracts.resources import ResourceRef
from contracts.timeline import FindingEventKind, TimelineKind
from store.models import (
    Finding,
    FindingEvent,
    KubeObject,
    ManifestBody,
    ManifestVersion,
    ScanRun,
)

MAX_PAGE = 500
ALL_KINDS: frozenset[TimelineKind] = frozenset(TimelineKind)
# Ties on the same instant: findings after the change that caused them, scans last.
_RANK = {"scan": 0, "version": 1, "deleted": 2, "finding": 3}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_MAX_ID = 2**63 - 1  # a row id beyond BIGINT (and SQLite's INTEGER) is no cursor of ours


class CursorError(ValueError):
    """A `before` cursor that this module did not make."""


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """Where a page ends: (time, source rank, row id); the next page is strictly older."""

    at: datetime
    rank: int
    row_id: int

    def encode(self) -> str:
        micros = (self.at - _EPOCH) // _MICRO
        return f"{micros}.{self.rank}.{self.row_id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        parts = text.split(".")
        if len(parts) != 3 or not all(p.isdigit() and len(p) <= 20 for p in parts):
            raise CursorError("before: give the next_cursor of a previous page")
        micros, rank, row_id = (int(p) for p in parts)
        if rank not in _RANK.values() or row_id > _MAX_ID:
            raise CursorError("before: give the next_cursor of a previous page")
        try:
            at = _EPOCH + micros * _MICRO
        except OverflowError:
            raise CursorError("before: give the next_cursor of a previous page") from None
        return cls(at, rank, row_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """A manifest version and the one before it (None: the first stored version)."""

    object_id: int
    version_id: int
    previous_version_id: int | None
    first_seen: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingInfo:
    id: int
    rule_id: str
    title: str
    severity: str
    status: str
    path: str | None
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanInfo:
    id: int
    trigger: str
    state: str
    counts: dict[str, int]


@dataclass(slots=True, kw_only=True)
class Entry:
    """One thing that happened. `change` is the manifest change it is about (for a finding:
    the version current at the scan that opened or resolved it); `removed` marks a finding
    resolved because its resource left the cluster."""

    kind: TimelineKind
    at: datetime
    cursor: Cursor
    ref: ResourceRef | None = None
    object_id: int | None = None
    version_id: int | None = None
    change: Change | None = None
    finding: FindingInfo | None = None
    scan: ScanInfo | None = None
    removed: bool = False


@dataclass(slots=True)
class TimelinePage:
    entries: list[Entry] = field(default_factory=list)
    next_cursor: str | None = None


def _older(
    at: ColumnElement[datetime] | InstrumentedAttribute[datetime] | InstrumentedAttribute[Any],
    row_id: ColumnElement[int] | InstrumentedAttribute[int],
    *,
    rank: int,
    before: Cursor | None,
) -> ColumnElement[bool]:
    """Rows of one source strictly after `before` in newest-first order."""
    if before is None:
        return true()
    if rank < before.rank:
        return at <= before.at
    if rank > before.rank:
        return at < before.at
    return or_(at < before.at, and_(at == before.at, row_id < before.row_id))


def _ref_filter(ref: ResourceRef) -> list[ColumnElement[bool]]:
    return [
        Finding.api_version == ref.api_version,
        Finding.kind == ref.kind,
        Finding.name == ref.name,
        Finding.namespace.is_(None) if not ref.namespace else Finding.namespace == ref.namespace,
    ]


def _versions(
    session: Session, cluster_id: str, *, object_id: int | None, before: Cursor | None, size: int
) -> Iterable[Entry]:
    rank = _RANK["version"]
    query = (
        select(ManifestVersion.id, ManifestVersion.object_id, ManifestVersion.first_seen)
        .where(_older(ManifestVersion.first_seen, ManifestVersion.id, rank=rank, before=before))
        .order_by(ManifestVersion.first_seen.desc(), ManifestVersion.id.desc())
        .limit(size)
    )
    if object_id is not None:
        query = query.where(ManifestVersion.object_id == object_id)
    else:
        query = query.join(KubeObject, KubeObject.id == ManifestVersion.object_id).where(
            KubeObject.cluster_id == cluster_id
        )
    for version_id, oid, first_seen in session.execute(query):
        yield Entry(
            kind=TimelineKind.CHANGED,  # CREATED once the previous version is known to be none
            at=first_seen,
            cursor=Cursor(first_seen, rank, version_id),
            object_id=oid,
            version_id=version_id,
        )


def _deletions(
    session: Session, cluster_id: str, *, object_id: int | None, before: Cursor | None, size: int
) -> Iterable[Entry]:
    rank = _RANK["deleted"]
    deleted_at = KubeObject.deleted_at
    query = (
        select(KubeObject.id, KubeObject.deleted_at, KubeObject.ref_key)
        .where(
            KubeObject.cluster_id == cluster_id,
            deleted_at.is_not(None),
            _older(deleted_at, KubeObject.id, rank=rank, before=before),
        )
        .order_by(deleted_at.desc(), KubeObject.id.desc())
        .limit(size)
    )
    if object_id is not None:
        query = query.where(KubeObject.id == object_id)
    for oid, at, key in session.execute(query):
        assert at is not None  # filtered on
        yield Entry(
            kind=TimelineKind.DELETED,
            at=at,
            cursor=Cursor(at, rank, oid),
            ref=ResourceRef.from_key(key),
            object_id=oid,
        )


def _finding_events(
    session: Session,
    cluster_id: str,
    *,
    ref: ResourceRef | None,
    events: Collection[FindingEventKind],
    before: Cursor | None,
    size: int,
) -> Iterable[Entry]:
    rank = _RANK["finding"]
    query: Select[Any] = (
        select(FindingEvent.id, FindingEvent.at, FindingEvent.event, FindingEvent.version_id)
        .add_columns(
            Finding.id,
            Finding.rule_id,
            Finding.severity,
            Finding.status,
            Finding.path,
            Finding.message,
            Finding.details,
            Finding.api_version,
            Finding.kind,
            Finding.namespace,
            Finding.name,
        )
        .join(Finding, Finding.id == FindingEvent.finding_id)
        .where(
            FindingEvent.cluster_id == cluster_id,
            FindingEvent.event.in_([e.value for e in events]),
            _older(FindingEvent.at, FindingEvent.id, rank=rank, before=before),
        )
        .order_by(FindingEvent.at.desc(), FindingEvent.id.desc())
        .limit(size)
    )
    if ref is not None:
        query = query.where(Finding.cluster_id == cluster_id, *_ref_filter(ref))
    for row in session.execute(query):
        (event_id, at, event, version_id, fid, rule_id, severity, status, path, message) = row[:10]
        details, api_version, kind, namespace, name = row[10:]
        yield Entry(
            kind=TimelineKind.FINDING_OPENED
            if event == FindingEventKind.OPENED
            else TimelineKind.FINDING_RESOLVED,
            at=at,
            cursor=Cursor(at, rank, event_id),
            ref=ResourceRef(api_version, kind, namespace, name),
            version_id=version_id,
            finding=FindingInfo(
                id=fid,
                rule_id=rule_id,
                title=str((details or {}).get("title") or ""),
                severity=severity,
                status=str(status),
                path=path,
                message=message,
            ),
        )


def _scans(
    session: Session, cluster_id: str, *, before: Cursor | None, size: int
) -> Iterable[Entry]:
    rank = _RANK["scan"]
    query = (
        select(ScanRun)
        .where(
            ScanRun.cluster_id == cluster_id,
            _older(ScanRun.started_at, ScanRun.id, rank=rank, before=before),
        )
        .order_by(ScanRun.started_at.desc(), ScanRun.id.desc())
        .limit(size)
    )
    for run in session.scalars(query):
        counts = run.counts or {}
        yield Entry(
            kind=TimelineKind.SCAN,
            at=run.started_at,
            cursor=Cursor(run.started_at, rank, run.id),
            scan=ScanInfo(
                id=run.id,
                trigger=run.trigger,
                state=str(run.state),
                counts={
                    k: int(counts.get(k, 0))
                    for k in ("new", "resolved", "reopened", "open", "objects", "unchanged")
                },
            ),
        )


def _changes(session: Session, version_ids: Collection[int]) -> dict[int, Change]:
    """Each version with the one before it (one query; the index on object_id, first_seen)."""
    if not version_ids:
        return {}
    earlier = aliased(ManifestVersion)
    previous = (
        select(earlier.id)
        .where(
            earlier.object_id == ManifestVersion.object_id,
            or_(
                earlier.first_seen < ManifestVersion.first_seen,
                and_(
                    earlier.first_seen == ManifestVersion.first_seen,
                    earlier.id < ManifestVersion.id,
                ),
            ),
        )
        .order_by(earlier.first_seen.desc(), earlier.id.desc())
        .limit(1)
        .correlate(ManifestVersion)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            ManifestVersion.id,
            ManifestVersion.object_id,
            ManifestVersion.first_seen,
            previous,
        ).where(ManifestVersion.id.in_(list(version_ids)))
    )
    return {
        vid: Change(object_id=oid, version_id=vid, previous_version_id=prev, first_seen=seen)
        for vid, oid, seen, prev in rows
    }


def _object_refs(session: Session, object_ids: Collection[int]) -> dict[int, ResourceRef]:
    if not object_ids:
        return {}
    rows = session.execute(
        select(KubeObject.id, KubeObject.ref_key).where(KubeObject.id.in_(list(object_ids)))
    )
    return {oid: ResourceRef.from_key(key) for oid, key in rows}


def _objects_by_ref(
    session: Session, cluster_id: str, refs: Collection[ResourceRef]
) -> dict[ResourceRef, int]:
    """The live object of each ref, else its most recently deleted one."""
    if not refs:
        return {}
    rows = session.execute(
        select(KubeObject.id, KubeObject.ref_key)
        .where(KubeObject.cluster_id == cluster_id, KubeObject.ref_key.in_([r.key for r in refs]))
        .order_by(KubeObject.deleted_at.is_(None), KubeObject.id)
    )
    return {ResourceRef.from_key(key): oid for oid, key in rows}  # the last one wins


def _complete(session: Session, cluster_id: str, entries: list[Entry]) -> None:
    """Fill in each entry's change, resource and object (a few batched queries per page)."""
    changes = _changes(session, {e.version_id for e in entries if e.version_id is not None})
    refs = _object_refs(
        session,
        {e.object_id for e in entries if e.object_id is not None and e.ref is None},
    )
    unplaced = {
        e.ref
        for e in entries
        if e.ref is not None and e.object_id is None and e.version_id not in changes
    }
    objects = _objects_by_ref(session, cluster_id, unplaced)
    for entry in entries:
        entry.change = changes.get(entry.version_id) if entry.version_id is not None else None
        if entry.change is not None:
            entry.object_id = entry.change.object_id
            if entry.kind == TimelineKind.CHANGED and entry.change.previous_version_id is None:
                entry.kind = TimelineKind.CREATED
        if entry.ref is None and entry.object_id is not None:
            entry.ref = refs.get(entry.object_id)
        if entry.object_id is None and entry.ref is not None:
            entry.object_id = objects.get(entry.ref)
        entry.removed = entry.kind == TimelineKind.FINDING_RESOLVED and entry.version_id is None


def timeline(
    session: Session,
    cluster_id: str,
    *,
    obj: KubeObject | None = None,
    kinds: Collection[TimelineKind] = ALL_KINDS,
    before: Cursor | None = None,
    limit: int = 50,
) -> TimelinePage:
    """One page of a cluster's timeline, or of one object's (its versions, its removal and
    the findings on its reference), newest first."""
    size = max(1, min(limit, MAX_PAGE)) + 1
    object_id = obj.id if obj is not None else None
    ref = ResourceRef.from_key(obj.ref_key) if obj is not None else None
    sources: list[Iterable[Entry]] = []
    if {TimelineKind.CREATED, TimelineKind.CHANGED} & set(kinds):
        sources.append(
            _versions(session, cluster_id, object_id=object_id, before=before, size=size)
        )
    if TimelineKind.DELETED in kinds:
        sources.append(
            _deletions(session, cluster_id, object_id=object_id, before=before, size=size)
        )
    events = [
        event
        for event, kind in (
            (FindingEventKind.OPENED, TimelineKind.FINDING_OPENED),
            (FindingEventKind.RESOLVED, TimelineKind.FINDING_RESOLVED),
        )
        if kind in kinds
    ]
    if events:
        sources.append(
            _finding_events(session, cluster_id, ref=ref, events=events, before=before, size=size)
        )
    if TimelineKind.SCAN in kinds and obj is None:
        sources.append(_scans(session, cluster_id, before=before, size=size))
    merged = heapq.merge(
        *(list(source) for source in sources), key=lambda e: e.cursor, reverse=True
    )
    entries: list[Entry] = []
    for entry in merged:
        entries.append(entry)
        if len(entries) == size:
            break
    more = len(entries) == size
    entries = entries[: size - 1]
    _complete(session, cluster_id, entries)
    # Created and changed are one source: a version filter applies after its first page row.
    shown = [e for e in entries if e.kind in kinds or e.kind not in _VERSION_KINDS]
    return TimelinePage(shown, entries[-1].cursor.encode() if more and entries else None)


_VERSION_KINDS = (TimelineKind.CREATED, TimelineKind.CHANGED)


def version_bodies(session: Session, version_ids: Collection[int]) -> dict[int, dict[str, Any]]:
    """The manifest body of each version (one query)."""
    if not version_ids:
        return {}
    rows = session.execute(
        select(ManifestVersion.id, ManifestBody.body)
        .join(ManifestBody, ManifestBody.content_hash == ManifestVersion.content_hash)
        .where(ManifestVersion.id.in_(list(version_ids)))
    )
    return {vid: body for vid, body in rows}


def find_resource(
    session: Session,
    cluster_id: str,
    *,
    kind: str,
    name: str,
    namespace: str | None,
    api_version: str | None = None,
) -> KubeObject | None:
    """The object of that kind, namespace and name (and apiVersion when given): the live one,
    else the most recently deleted."""
    query = select(KubeObject).where(
        KubeObject.cluster_id == cluster_id,
        KubeObject.kind == kind,
        KubeObject.name == name,
        KubeObject.namespace == (namespace or ""),
    )
    if api_version:
        query = query.where(KubeObject.api_version == api_version)
    return session.scalar(
        query.order_by(KubeObject.deleted_at.is_not(None), KubeObject.id.desc()).limit(1)
    )
