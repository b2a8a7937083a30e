"""Findings across scans: the new / open / resolved / exempted lifecycle, persisted in bulk.

`reconcile_findings` merges one scan's observed violations into the cluster's findings:
a fingerprint seen for the first time is *new*; seen again it is *open*; a matching active
exemption makes it *exempted* (and the exemption's expiry turns it back to *open*); an active
finding no longer observed on an object that was evaluated is *resolved* (with resolved_at);
a resolved finding that comes back is *new* again. Objects that could not be evaluated in this
scan keep their findings untouched, so a failed shard never resolves anything.

Each opening (first sighting, or a resolved finding seen again) and each resolution is also
recorded as a `finding_events` row with the version of the finding's object current at that
scan (`versions`, by ref key): the change that introduced or resolved it (`store.timeline`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    String,
    any_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from contracts.findings import finding_fingerprint
from contracts.resources import ResourceRef
from contracts.states import FindingStatus
from contracts.timeline import FindingEventKind
from store.bulk import (
    Repeat,
    affected,
    chunked,
    copy_absent_columns,
    copy_columns,
    copy_rows,
    core_rows,
    insert_ignoring_conflicts,
    next_ids,
    table_of,
    update_rows_by_id,
)
from store.db import dump_json, on_postgresql
from store.models import Cluster, Finding, FindingEvent, KubeObject
from store.types import utcnow

ACTIVE_STATUSES = FindingStatus.active()
STATUSES = tuple(FindingStatus)


fingerprint = finding_fingerprint  # the one definition, shared with offline scans


class ObservedFinding(NamedTuple):
    """One violation seen by a scan, already matched against exemptions. (A named tuple, not a
    frozen dataclass: a cold scan makes thousands, and a frozen dataclass's constructor cost
    three times as much. Build it with keywords; `details` is never mutated.)"""

    fingerprint: str
    rule_id: str
    ref: ResourceRef
    container: str | None
    path: str | None
    content_hash: str | None
    severity: str
    message: str
    exempted: bool = False
    exemption_id: int | None = None
    details: dict[str, Any] = {}  # shared by every finding built without: read-only


@dataclass(slots=True)
class ReconcileResult:
    new: int = 0
    open: int = 0
    exempted: int = 0
    resolved: int = 0
    reopened: int = 0
    unexempted: int = 0
    kept_unevaluated: int = 0

    def as_counts(self) -> dict[str, int]:
        return {
            "new": self.new,
            "open": self.open,
            "exempted": self.exempted,
            "resolved": self.resolved,
            "reopened": self.reopened,
            "unexempted": self.unexempted,
            "kept_unevaluated": self.kept_unevaluated,
        }


class KnownFinding(NamedTuple):
    """The columns reconciliation compares (a light row: no ORM object, no details JSON)."""

    id: int
    fingerprint: str
    rule_id: str
    api_version: str
    kind: str
    namespace: str | None
    name: str
    status: str
    severity: str
    message: str
    content_hash: str | None

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(self.api_version, self.kind, self.namespace, self.name)


_KNOWN_COLUMNS = (
    Finding.id,
    Finding.fingerprint,
    Finding.rule_id,
    Finding.api_version,
    Finding.kind,
    Finding.namespace,
    Finding.name,
    Finding.status,
    Finding.severity,
    Finding.message,
    Finding.content_hash,
)


@dataclass(frozen=True, slots=True)
class FindingScope:
    """The active findings an incremental scan can change (`reconcile_findings(scope=…)`):
    those with one of `fingerprints`, those of objects with one of `ref_keys`, those of
    `rule_ids`, every exempted one, and those of objects no longer live in the cluster.

    The caller vouches for the others: those of `observed_rule_ids` would be observed again
    unchanged (not read, not written, not counted), the rest would be kept unevaluated (only
    counted, in one query)."""

    fingerprints: frozenset[str] = frozenset()
    ref_keys: frozenset[str] = frozenset()
    rule_ids: frozenset[str] = frozenset()
    observed_rule_ids: frozenset[str] = frozenset()


def _in_scope(session: Session, cluster_id: str, scope: FindingScope) -> ColumnElement[bool]:
    """The condition naming the findings of `scope` (both dialects; arrays on PostgreSQL)."""
    postgres = on_postgresql(session)

    def among(column: Any, values: frozenset[str], name: str) -> ColumnElement[bool]:
        if postgres:
            return column == any_(bindparam(name, sorted(values), type_=ARRAY(String)))
        return column.in_(sorted(values))  # type: ignore[no-any-return]

    key = (
        Finding.api_version
        + "|"
        + Finding.kind
        + "|"
        + func.coalesce(Finding.namespace, "")
        + "|"
        + Finding.name
    )
    live = select(KubeObject.ref_key).where(
        KubeObject.cluster_id == cluster_id, KubeObject.deleted_at.is_(None)
    )  # one hashed subplan, not a look-up per finding
    parts: list[ColumnElement[bool]] = [
        Finding.status == FindingStatus.EXEMPTED,
        key.not_in(live),
    ]
    if scope.fingerprints:
        parts.append(among(Finding.fingerprint, scope.fingerprints, "scope_fps"))
    if scope.ref_keys:
        parts.append(among(key, scope.ref_keys, "scope_keys"))
    if scope.rule_ids:
        parts.append(among(Finding.rule_id, scope.rule_ids, "scope_rules"))
    return or_(*parts)


def _kept_open(status: FindingStatus, current: KnownFinding, item: ObservedFinding) -> bool:
    """Whether a finding seen again stays open with the same severity and message (so its
    row differs at most in the object's body it was seen on, and new -> open)."""
    return (
        status == FindingStatus.OPEN
        and current.status in FindingStatus.unresolved()
        and current.severity == item.severity
        and current.message == item.message
    )


def active_findings(
    session: Session, *, rule_ids: Collection[str]
) -> dict[str, dict[str, KnownFinding]]:
    """Every cluster's active findings of `rule_ids`, by cluster and fingerprint, in one
    query (the fleet evaluation's: what `unchanged_outcome` compares with)."""
    found: dict[str, dict[str, KnownFinding]] = {}
    for cluster_id, *columns in core_rows(
        session,
        select(Finding.cluster_id, *_KNOWN_COLUMNS).where(
            Finding.rule_id.in_(sorted(rule_ids)), Finding.status.in_(ACTIVE_STATUSES)
        ),
    ):
        known = KnownFinding(*columns)
        found.setdefault(cluster_id, {})[known.fingerprint] = known
    return found


def unchanged_outcome(
    existing: Mapping[str, KnownFinding], observed: Iterable[ObservedFinding]
) -> ReconcileResult | None:
    """What `reconcile_findings` (with `rule_ids`, without `scope`) returns when it writes
    nothing, without running it; None when it could write something. `existing`: the
    cluster's active findings of those rules. It writes nothing when they are exactly the
    observed fingerprints, each open (not new: new -> open is written) and observed again
    unexempted with its severity, message and content hash: no insert, update, resolution or
    event, and every observation counts as open."""
    by_fp: dict[str, ObservedFinding] = {}
    for item in observed:
        by_fp.setdefault(item.fingerprint, item)
    if by_fp.keys() != existing.keys():
        return None
    for fp, item in by_fp.items():
        current = existing[fp]
        if (
            item.exempted
            or current.status != FindingStatus.OPEN
            or not _kept_open(FindingStatus.OPEN, current, item)
            or current.content_hash != item.content_hash
        ):
            return None
    return ReconcileResult(open=len(by_fp))


def _kept_outside(
    session: Session, cluster_id: str, scope: FindingScope, read: Iterable[KnownFinding]
) -> int:
    """Active findings outside `scope` that are not of its observed rules (kept unevaluated):
    those of the cluster less those `read` in scope."""
    conditions = [Finding.cluster_id == cluster_id, Finding.status.in_(ACTIVE_STATUSES)]
    if scope.observed_rule_ids:
        conditions.append(Finding.rule_id.not_in(sorted(scope.observed_rule_ids)))
    total = int(session.scalar(select(func.count()).where(*conditions)) or 0)
    return total - sum(
        1
        for known in read
        if known.status in ACTIVE_STATUSES and known.rule_id not in scope.observed_rule_ids
    )


def _existing(
    session: Session,
    cluster_id: str,
    fingerprints: Sequence[str],
    *,
    rule_ids: Collection[str] | None = None,
    scope: FindingScope | None = None,
) -> dict[str, KnownFinding]:
    """The cluster's active findings (of `rule_ids` only, when given; in `scope` only, when
    given) and its findings of any status with one of `fingerprints`."""
    active = [Finding.cluster_id == cluster_id, Finding.status.in_(ACTIVE_STATUSES)]
    if rule_ids is not None:
        active.append(Finding.rule_id.in_(sorted(rule_ids)))
    if scope is not None:
        active.append(_in_scope(session, cluster_id, scope))
    found = {
        row.fingerprint: KnownFinding(*row)
        for row in core_rows(session, select(*_KNOWN_COLUMNS).where(*active))
    }
    missing = [fp for fp in fingerprints if fp not in found]
    if missing and rule_ids is None and scope is None and not _has_inactive(session, cluster_id):
        # Every active finding was read and none of the cluster's is resolved: the others
        # are all new.
        return found
    if missing and on_postgresql(session):
        # One statement with an array parameter (a first scan's thousands of fingerprints
        # would otherwise be dozens of IN lists, each compiled and sent on its own).
        fps = bindparam("fps", missing, type_=ARRAY(String))
        for row in core_rows(
            session,
            select(*_KNOWN_COLUMNS).where(
                Finding.cluster_id == cluster_id, Finding.fingerprint == any_(fps)
            ),
        ):
            found[row.fingerprint] = KnownFinding(*row)
        return found
    for batch in chunked(missing):
        for row in session.execute(
            select(*_KNOWN_COLUMNS).where(
                Finding.cluster_id == cluster_id, Finding.fingerprint.in_(batch)
            )
        ):
            found[row.fingerprint] = KnownFinding(*row)
    return found


def _has_inactive(session: Session, cluster_id: str) -> bool:
    """Whether the cluster has a finding that is not active (one index probe: a cluster's
    first scan, which finds none, need not look its thousands of fingerprints up)."""
    return (
        session.scalar(
            select(Finding.id)
            .where(Finding.cluster_id == cluster_id, Finding.status.not_in(ACTIVE_STATUSES))
            .limit(1)
        )
        is not None
    )


def reconcile_findings(
    session: Session,
    cluster_id: str,
    *,
    scan_id: int | None,
    observed: Iterable[ObservedFinding],
    evaluated: Callable[[KnownFinding], bool],
    at: datetime | None = None,
    versions: Mapping[str, int | None] | None = None,
    rule_ids: Collection[str] | None = None,
    scope: FindingScope | None = None,
) -> ReconcileResult:
    """Merge one scan's violations into the cluster's findings (see the module docstring).

    `scan_id` is None for the fleet evaluation (`workers.services.fleet`), which is no scan.

    `rule_ids`: the only rules whose findings the caller observes and evaluates (the fleet
    evaluation's fleet rules): the cluster's active findings of other rules are not read at
    all (`evaluated` is not asked about them, nor are they counted as kept unevaluated).

    `versions` maps the ref key of each live object to its current manifest version id; the
    events of this scan name it (an object absent from it is gone, or not stored).

    `scope`: only the active findings it names can change (an incremental scan's, see
    `FindingScope`); `observed` must then hold every observation of those.

    `unchanged_outcome` says, without a query, when this would write nothing: keep the two
    in step."""
    now = at or utcnow()
    current_versions = versions or {}
    by_fp: dict[str, ObservedFinding] = {}
    for item in observed:
        by_fp.setdefault(item.fingerprint, item)
    existing = _existing(session, cluster_id, list(by_fp), rule_ids=rule_ids, scope=scope)
    result = ReconcileResult(
        kept_unevaluated=0
        if scope is None
        else _kept_outside(session, cluster_id, scope, existing.values())
    )

    inserts: list[tuple[ObservedFinding, FindingStatus]] = []
    row_updates: list[dict[str, Any]] = []
    moved: list[tuple[int, ObservedFinding]] = []
    still_open: list[int] = []
    reopened: list[tuple[int, ResourceRef]] = []
    for fp, item in by_fp.items():
        current = existing.get(fp)
        if current is None:
            status = FindingStatus.EXEMPTED if item.exempted else FindingStatus.NEW
            inserts.append((item, status))
            setattr(result, status, getattr(result, status) + 1)
            continue
        if item.exempted:
            status = FindingStatus.EXEMPTED
        elif current.status == FindingStatus.RESOLVED:
            status = FindingStatus.NEW
            result.reopened += 1
            reopened.append((current.id, current.ref))
        elif current.status == FindingStatus.EXEMPTED:
            status = FindingStatus.OPEN
            result.unexempted += 1
        else:
            status = FindingStatus.OPEN
        setattr(result, status, getattr(result, status) + 1)
        kept_open = _kept_open(status, current, item)
        if kept_open and current.content_hash == item.content_hash:
            # An open finding seen again is left alone (a write per finding per scan would make
            # scan cost grow with fleet size); only new -> open is written.
            if current.status == FindingStatus.NEW:
                still_open.append(current.id)
        elif kept_open:
            moved.append((current.id, item))  # only the object's body changed: `_write_moved`
        else:
            row_updates.append(
                {
                    "id": current.id,
                    "status": status,
                    "severity": item.severity,
                    "message": item.message,
                    "content_hash": item.content_hash,
                    "exemption_id": item.exemption_id if item.exempted else None,
                    "last_seen": now,
                    "last_scan_id": scan_id,
                    "resolved_at": None,
                    "details": item.details,
                    **({"first_seen": now} if current.status == FindingStatus.RESOLVED else {}),
                }
            )

    resolved_ids: list[int] = []
    resolved_refs: list[tuple[int, ResourceRef]] = []
    for fp, current in existing.items():
        if fp in by_fp or current.status not in ACTIVE_STATUSES:
            continue
        if evaluated(current):
            resolved_ids.append(current.id)
            resolved_refs.append((current.id, current.ref))
        else:
            result.kept_unevaluated += 1
    result.resolved = len(resolved_ids)

    opened = _write(
        session,
        cluster_id,
        scan_id=scan_id,
        at=now,
        inserts=inserts,
        row_updates=row_updates,
        moved=moved,
        still_open=still_open,
        resolved_ids=resolved_ids,
    )
    _record_events(
        session,
        cluster_id,
        scan_id=scan_id,
        at=now,
        versions=current_versions,
        events=[
            *((FindingEventKind.OPENED, pair) for pair in [*opened, *reopened]),
            *((FindingEventKind.RESOLVED, pair) for pair in resolved_refs),
        ],
    )
    return result


def _inserted(
    session: Session, cluster_id: str, items: Sequence[ObservedFinding], *, scan_id: int | None
) -> Iterable[tuple[int, ResourceRef]]:
    """(id, ref) of the findings just inserted for these observations (one query: rows this
    scan wrote as new or exempted)."""
    if not items:
        return
    refs = {item.fingerprint: item.ref for item in items}
    for finding_id, fp in core_rows(
        session,
        select(Finding.id, Finding.fingerprint).where(
            Finding.cluster_id == cluster_id,
            Finding.status.in_((FindingStatus.NEW, FindingStatus.EXEMPTED)),
            Finding.last_scan_id == scan_id,
        ),
    ):
        if fp in refs:
            yield finding_id, refs[fp]


def _record_events(
    session: Session,
    cluster_id: str,
    *,
    scan_id: int | None,
    at: datetime,
    versions: Mapping[str, int | None],
    events: Sequence[tuple[FindingEventKind, tuple[int, ResourceRef]]],
) -> None:
    if on_postgresql(session):
        # Events have no key but their id: nothing to conflict with, one plain COPY, given a
        # column at a time (a cold scan records thousands: no mapping per row).
        copy_columns(
            session,
            table_of(FindingEvent),
            {
                "cluster_id": Repeat(cluster_id),
                "finding_id": [finding_id for _kind, (finding_id, _ref) in events],
                "event": [kind.value for kind, _pair in events],
                "at": Repeat(at),
                "scan_id": Repeat(scan_id),
                "version_id": [versions.get(ref.key) for _kind, (_id, ref) in events],
            },
            count=len(events),
        )
        return
    rows = [
        {
            "cluster_id": cluster_id,
            "finding_id": finding_id,
            "event": kind.value,
            "at": at,
            "scan_id": scan_id,
            "version_id": versions.get(ref.key),
        }
        for kind, (finding_id, ref) in events
    ]
    copy_rows(session, table_of(FindingEvent), rows)


def _hold_cluster(session: Session, cluster_id: str) -> None:
    """What a foreign key on `findings.cluster_id` would check for every inserted row, once
    (migration 0016): the cluster exists, and is key-share locked, so that it cannot be
    deleted (its findings with it, by trigger) before this transaction ends."""
    held = session.scalar(
        select(Cluster.id).where(Cluster.id == cluster_id).with_for_update(key_share=True)
    )
    if held is None:
        raise LookupError(f"cluster {cluster_id} does not exist")


def _write(
    session: Session,
    cluster_id: str,
    *,
    scan_id: int | None,
    at: datetime,
    inserts: list[tuple[ObservedFinding, FindingStatus]],
    row_updates: list[dict[str, Any]],
    moved: Sequence[tuple[int, ObservedFinding]],
    still_open: list[int],
    resolved_ids: list[int],
) -> list[tuple[int, ResourceRef]]:
    """Store a reconciliation's changes; the (id, ref) of each finding inserted."""
    now = at
    opened = _insert_new(session, cluster_id, inserts, scan_id=scan_id, at=now)
    _write_moved(session, moved, scan_id=scan_id, at=now)
    if row_updates:
        # Rows differ in which keys they set; group them so each executemany is uniform.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in row_updates:
            groups.setdefault(tuple(sorted(row)), []).append(row)
        for rows in groups.values():
            update_rows_by_id(session, Finding, rows)
    for batch in chunked(still_open, 2000):
        session.execute(
            update(Finding)
            .where(Finding.id.in_(batch))
            .values(status=FindingStatus.OPEN, last_seen=now, last_scan_id=scan_id)
            .execution_options(synchronize_session=False)
        )
    for batch in chunked(resolved_ids, 2000):
        session.execute(
            update(Finding)
            .where(Finding.id.in_(batch))
            .values(
                status=FindingStatus.RESOLVED,
                resolved_at=now,
                last_scan_id=scan_id,
                exemption_id=None,
            )
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return opened


def _write_moved(
    session: Session,
    moved: Sequence[tuple[int, ObservedFinding]],
    *,
    scan_id: int | None,
    at: datetime,
) -> None:
    """Store the findings seen again, open, whose object's body changed and nothing else
    (same severity and message, new or open before: no exemption, no resolved_at): what the
    general row update would write, without the columns that cannot differ. PostgreSQL: one
    UPDATE from arrays, each distinct `details` sent once (a label round moves hundreds of
    findings of a few dozen rules; the general `update_rows_by_id` parsed every row's)."""
    if not moved:
        return
    if not on_postgresql(session):
        rows = [
            {
                "id": finding_id,
                "status": FindingStatus.OPEN,
                "content_hash": item.content_hash,
                "last_seen": at,
                "last_scan_id": scan_id,
                "details": item.details,
            }
            for finding_id, item in moved
        ]
        update_rows_by_id(session, Finding, rows)
        return
    documents: dict[int, int] = {}  # id() of a shared details mapping -> its 1-based index
    texts: list[str] = []
    indexes: list[int] = []
    for _id, item in moved:
        index = documents.get(id(item.details))
        if index is None:
            texts.append(dump_json(item.details))
            index = documents[id(item.details)] = len(texts)
        indexes.append(index)
    session.flush()
    session.execute(
        text(
            "UPDATE findings SET status = :status, content_hash = v.content_hash, "
            "last_seen = :at, last_scan_id = :scan_id, details = (CAST(:details AS jsonb[]))[v.i] "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:hashes AS text[]), CAST(:indexes AS int[])) "
            "AS v (id, content_hash, i) WHERE findings.id = v.id"
        ),
        {
            "status": FindingStatus.OPEN.value,
            "at": at,
            "scan_id": scan_id,
            "details": texts,
            "ids": [finding_id for finding_id, _item in moved],
            "hashes": [item.content_hash for _id, item in moved],
            "indexes": indexes,
        },
    )


def _insert_new(
    session: Session,
    cluster_id: str,
    inserts: Sequence[tuple[ObservedFinding, FindingStatus]],
    *,
    scan_id: int | None,
    at: datetime,
) -> list[tuple[int, ResourceRef]]:
    """Insert the findings `_existing` found none of; the (id, ref) of each one inserted.

    PostgreSQL: their ids are taken from the table's sequence first and COPYed with them, a
    column at a time, so no row mapping is built and none is read back; should one of the
    fingerprints have been stored meanwhile by another transaction (the COPY is then undone),
    the rows go the general way: `insert_ignoring_conflicts`, then the ids read back."""
    if not inserts:
        return []
    _hold_cluster(session, cluster_id)
    items = [item for item, _status in inserts]
    if on_postgresql(session):
        ids = next_ids(session, table_of(Finding), len(items))
        refs = [item.ref for item in items]
        raced = copy_absent_columns(
            session,
            table_of(Finding),
            {
                "id": ids,
                "cluster_id": Repeat(cluster_id),
                "fingerprint": [item.fingerprint for item in items],
                "rule_id": [item.rule_id for item in items],
                "api_version": [ref.api_version for ref in refs],
                "kind": [ref.kind for ref in refs],
                "namespace": [ref.namespace for ref in refs],
                "name": [ref.name for ref in refs],
                "container": [item.container for item in items],
                "path": [item.path for item in items],
                "content_hash": [item.content_hash for item in items],
                "severity": [item.severity for item in items],
                "message": [item.message for item in items],
                "status": [status for _item, status in inserts],
                "exemption_id": [item.exemption_id if item.exempted else None for item in items],
                "first_seen": Repeat(at),
                "last_seen": Repeat(at),
                "resolved_at": Repeat(None),
                "last_scan_id": Repeat(scan_id),
                "details": [item.details for item in items],
            },
            count=len(items),
        )
        if not raced:
            return list(zip(ids, refs, strict=True))
    rows = [
        _row(cluster_id, item, status=status, scan_id=scan_id, at=at) for item, status in inserts
    ]
    insert_ignoring_conflicts(session, table_of(Finding), rows)
    return list(_inserted(session, cluster_id, items, scan_id=scan_id))


def _row(
    cluster_id: str, item: ObservedFinding, *, status: str, scan_id: int | None, at: datetime
) -> dict[str, Any]:
    return {
        "cluster_id": cluster_id,
        "fingerprint": item.fingerprint,
        "rule_id": item.rule_id,
        "api_version": item.ref.api_version,
        "kind": item.ref.kind,
        "namespace": item.ref.namespace,
        "name": item.ref.name,
        "container": item.container,
        "path": item.path,
        "content_hash": item.content_hash,
        "severity": item.severity,
        "message": item.message,
        "status": status,
        "exemption_id": item.exemption_id if item.exempted else None,
        "first_seen": at,
        "last_seen": at,
        "resolved_at": None,
        "last_scan_id": scan_id,
        "details": item.details,
    }


def status_counts(session: Session, cluster_id: str) -> dict[str, int]:
    """A cluster's findings per status, every status present (`finding_counts`' first part)."""
    return finding_counts(session, cluster_id)[0]


def settle_new(session: Session, cluster_id: str, *, scan_id: int) -> int:
    """A scan that saw no change: last scan's new findings are now simply open."""
    result = session.execute(
        update(Finding)
        .where(Finding.cluster_id == cluster_id, Finding.status == FindingStatus.NEW)
        .values(status=FindingStatus.OPEN, last_scan_id=scan_id)
        .execution_options(synchronize_session=False)
    )
    return affected(result)


def finding_counts(session: Session, cluster_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """A cluster's findings per status (every status present) and its new and open ones per
    severity, from one read of its findings (a scan's finalize records both)."""
    statuses: dict[str, int] = dict.fromkeys(STATUSES, 0)
    severities: dict[str, int] = {}
    unresolved = FindingStatus.unresolved()
    for status, severity, n in session.execute(
        select(Finding.status, Finding.severity, func.count())
        .where(Finding.cluster_id == cluster_id)
        .group_by(Finding.status, Finding.severity)
    ):
        statuses[status] = statuses.get(status, 0) + int(n)
        if status in unresolved:
            severities[severity] = severities.get(severity, 0) + int(n)
    return statuses, severities
